"""Run models over a prompt set: the one code path behind `bench`, `stats` and the app's Stats tab."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
import torch

from cllm import stats
from cllm.decode import decode_prompt, encode_prompt
from cllm.stats import has_repeat
from cllm.jacobi import JacobiConfig, _inference, check_inputs
from cllm.models import LoadedModel
from cllm.trajectory import Trajectory

Progress = Callable[[int, int, str], None]  # (done, total, what) -> None
SWEEP_NS = (4, 8, 16, 32, 64)
PROMPT_COLUMNS = ["model", "prompt", "tokens", "forward_passes", "tpf", "fast_forwarded", "ff_rate", "stationary",
                  "decode_seconds", "ar_seconds", "speedup", "matches_ar", "token_run", "looping"]
LOOP_LINE_TIMES = 3  # the project's looping flag: one non-blank line 3 or more times in a continuation
AUTHORS_TOKEN_RUN = 10  # the authors' exclusion: a run whose output holds 10 identical consecutive tokens
EXCLUDE = ("none", "token_run", "looping", "either")  # which flagged runs an aggregate leaves out
PAPER_TABLE3 = (2.0, 6.8)  # the paper's Table 3: CLLM / target ratios of both counts, across its datasets


def looping_lines(lines: list[str], times: int = LOOP_LINE_TIMES) -> set[str]:
    """The non-blank lines (stripped) that occur `times` or more times."""
    stripped = [ln.strip() for ln in lines if ln.strip()]
    return {ln for ln in set(stripped) if stripped.count(ln) >= times}


def repeated_line(text: str, times: int = LOOP_LINE_TIMES) -> bool:
    """Degenerate repetition: one non-blank line occurring `times` or more times in a continuation."""
    return bool(looping_lines(text.splitlines(), times))


def token_run(tokens: list[int], eos_token_id: int | None) -> bool:
    """The authors' exclusion rule (their detect_repetitive_patterns, named for n-grams but checking one
    token): AUTHORS_TOKEN_RUN identical consecutive tokens before the first EOS."""
    end = tokens.index(eos_token_id) if eos_token_id in tokens else len(tokens)
    return has_repeat(tokens[:end], AUTHORS_TOKEN_RUN)


def loop_flags(traj: Trajectory) -> list[bool]:
    """Per output token: does it sit inside a loop, i.e. a line occurring LOOP_LINE_TIMES+ times or a run
    of AUTHORS_TOKEN_RUN identical tokens?"""
    tokens = traj.tokens
    pieces = [traj.token_text.get(t, "") for t in tokens]
    lines = _token_lines(pieces)
    texts = ["".join(pieces[k] for k in line) for line in lines]
    loops, flags = looping_lines(texts), [False] * len(tokens)
    for line, text in zip(lines, texts):
        for k in line:
            flags[k] = flags[k] or text.strip() in loops
    for start in range(len(tokens) - AUTHORS_TOKEN_RUN + 1):
        if len(set(tokens[start:start + AUTHORS_TOKEN_RUN])) == 1:
            flags[start:start + AUTHORS_TOKEN_RUN] = [True] * AUTHORS_TOKEN_RUN
    return flags


def _token_lines(pieces: list[str]) -> list[list[int]]:
    """Token indices of each line; a token holding a newline closes its line."""
    lines, current = [], []
    for i, piece in enumerate(pieces):
        current.append(i)
        if "\n" in piece:
            lines.append(current)
            current = []
    return lines + [current]


def evaluate(loaded: LoadedModel, prompts: list[str], config: JacobiConfig, progress: Progress | None = None,
             label: str | None = None) -> list[Trajectory]:
    """Jacobi + greedy AR on every prompt; each trajectory carries its AR tokens and time."""
    label = label or loaded.name
    check_all_fit(loaded, prompts, config.max_new_tokens)
    # Warm-up, untimed: a model's first calls pay one-off costs (on a GPU, kernel loading), for AR and Jacobi alike
    decode_prompt(loaded, prompts[0], replace(config, max_new_tokens=min(8, config.max_new_tokens)), check_ar=True)
    out = []
    for i, prompt in enumerate(prompts):
        out.append(decode_prompt(loaded, prompt, config, check_ar=True))
        if progress:
            progress(i + 1, len(prompts), label)
    return out


def check_all_fit(loaded: LoadedModel, prompts: list[str], max_new_tokens: int) -> None:
    """Every prompt must fit the model's context with the token budget: say which one does not, before
    minutes of decoding end in an error."""
    for i, prompt in enumerate(prompts, 1):
        try:
            check_inputs(loaded.model, encode_prompt(loaded, prompt), max_new_tokens)
        except ValueError as e:
            raise ValueError(f"prompt {i} of {len(prompts)}: {e}") from None


def prompt_frame(trajs: list[Trajectory], model: str) -> pd.DataFrame:
    """One row per prompt with the run's headline numbers."""
    rows = []
    for i, traj in enumerate(trajs):
        s = stats.run_summary(traj)
        flags = {"token_run": token_run(traj.tokens, traj.meta.eos_token_id),
                 "looping": repeated_line(traj.text_of(traj.tokens))}
        rows.append({"model": model, "prompt": i} | {k: s[k] for k in PROMPT_COLUMNS[2:-2]} | flags)
    return pd.DataFrame(rows, columns=PROMPT_COLUMNS)


def kept(frame: pd.DataFrame, exclude: str) -> pd.DataFrame:
    """The per-prompt rows left once runs flagged by `exclude` (one of EXCLUDE) are dropped."""
    if exclude not in EXCLUDE:
        raise ValueError(f"exclude must be one of {', '.join(EXCLUDE)}; got {exclude!r}")
    if exclude == "none":
        return frame
    drop = frame["token_run"] | frame["looping"] if exclude == "either" else frame[exclude]
    return frame[~drop.astype(bool)]


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model: totals, TPF over all tokens, wall-clock speedup over all time, share matching AR; the
    paper's counts as the authors average them (ff_rate and stationary per run, over runs); flagged runs."""
    g = frame.groupby("model", sort=False)
    out = pd.DataFrame({
        "prompts": g.size(), "tokens": g["tokens"].sum(), "forward_passes": g["forward_passes"].sum(),
        "fast_forwarded": g["fast_forwarded"].sum(), "stationary": g["stationary"].sum(),
        "ff_rate": g["ff_rate"].mean(), "stationary_per_run": g["stationary"].mean(),
        "decode_seconds": g["decode_seconds"].sum(), "ar_seconds": g["ar_seconds"].sum(),
        "matches_ar": g["matches_ar"].mean(), "token_runs": g["token_run"].sum(), "looping": g["looping"].sum(),
    })
    out.insert(3, "tpf", out["tokens"] / out["forward_passes"])
    out["tokens_per_s"] = out["tokens"] / out["decode_seconds"]
    out["speedup"] = out["ar_seconds"] / out["decode_seconds"]
    return out.reset_index()


def compare_pair(base: LoadedModel, cllm: LoadedModel, prompts: list[str], config: JacobiConfig,
                 progress: Progress | None = None) -> tuple[dict[str, list[Trajectory]], pd.DataFrame]:
    """Both models over the same prompts: their trajectories and the per-prompt table."""
    trajs = {role: evaluate(m, prompts, config, progress, role) for role, m in (("base", base), ("cllm", cllm))}
    return trajs, pair_frame(trajs)


def pair_frame(trajs: dict[str, list[Trajectory]]) -> pd.DataFrame:
    """The per-prompt table of both models' runs ({"base": [...], "cllm": [...]}), base rows first."""
    return pd.concat([prompt_frame(t, role) for role, t in trajs.items()], ignore_index=True)


@dataclass(frozen=True)
class Table3Row:
    metric: str
    base: float  # mean per run over the kept runs
    cllm: float
    ratio: float  # cllm / base (inf when base is 0, NaN when a side has no kept run)
    paper: str  # the paper's published ratio range where the metric is Table 3's; "-" where it is not


@dataclass(frozen=True)
class Table3:
    """The paper's Table 3 for a pair over a prompt set: its two counts as its code averages them, base
    vs CLLM, beside the published range; plus TPF and the surplus count, which Table 3 does not hold."""
    rows: list[Table3Row]
    exclude: str  # which flagged runs were left out (EXCLUDE)
    runs: dict[str, int]  # kept runs per model

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(r) for r in self.rows], columns=["metric", "base", "cllm", "ratio", "paper"])


NO_RATIO = "none (base is 0)"  # "inf" beside the paper's 2.0-6.8x would read as a result far beyond it


def ratio_shown(ratio: pd.Series) -> pd.Series:
    """Table 3's ratios as a reader sees them (the app and the CLI): a base of 0 gives no ratio, said in words."""
    return ratio.astype(object).where(ratio != math.inf, NO_RATIO)


TABLE3_METRICS = (  # (row label, per-prompt column, in the paper's Table 3?)
    ("ff_rate (paper: tokens per pass)", "ff_rate", True),
    ("stationary (paper: per run)", "stationary", True),
    ("tpf (per run)", "tpf", False),
    ("fast_forwarded surplus (per run)", "fast_forwarded", False),
)


def table3(frame: pd.DataFrame, exclude: str = "none") -> Table3:
    """Table 3 over the per-prompt frame of compare_pair (models "base" and "cllm")."""
    means = kept(frame, exclude).groupby("model")
    rows = []
    for label, column, in_paper in TABLE3_METRICS:
        base, cllm = (float(means[column].mean().get(role, math.nan)) for role in ("base", "cllm"))
        ratio = cllm / base if base else (math.inf if cllm else math.nan)
        rows.append(Table3Row(label, base, cllm, ratio, f"{PAPER_TABLE3[0]}-{PAPER_TABLE3[1]}x" if in_paper else "-"))
    runs = {role: int((kept(frame, exclude)["model"] == role).sum()) for role in ("base", "cllm")}
    return Table3(rows, exclude, runs)


def rate_breakdown(trajs: dict[str, list[Trajectory]], frame: pd.DataFrame, exclude: str = "none"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper rate of the kept runs broken down, one column per model: by block index (mean per-block
    rate over runs) and by pass index (mean tokens the j-th pass adds, over the blocks that reach it)."""
    keep = kept(frame, exclude)
    blocks, passes = [], []
    for role, i in zip(keep["model"], keep["prompt"]):
        for k, block in enumerate(trajs[role][i].blocks):
            gains = stats.paper_passes(block)
            if gains:
                blocks.append({"model": role, "block": k, "ff_rate": sum(gains) / len(gains)})
            passes += [{"model": role, "pass": j, "tokens": g} for j, g in enumerate(gains, 1)]
    by_block = pd.DataFrame(blocks, columns=["model", "block", "ff_rate"])
    by_pass = pd.DataFrame(passes, columns=["model", "pass", "tokens"])
    return (by_block.pivot_table(index="block", columns="model", values="ff_rate", aggfunc="mean"),
            by_pass.pivot_table(index="pass", columns="model", values="tokens", aggfunc="mean"))


def n_sweep(models: dict[str, LoadedModel], prompts: list[str], config: JacobiConfig, ns=SWEEP_NS,
            progress: Progress | None = None) -> pd.DataFrame:
    """TPF and wall-clock speedup against n for each model (the paper's Fig. 3 on our models)."""
    rows = []
    for n in ns:
        for role, loaded in models.items():
            trajs = evaluate(loaded, prompts, replace(config, n=n), progress, f"{role}, n={n}")
            agg = aggregate(prompt_frame(trajs, role)).iloc[0]
            rows.append({"model": role, "n": n, "tpf": agg["tpf"], "speedup": agg["speedup"],
                         "matches_ar": agg["matches_ar"]})
    return pd.DataFrame(rows)


def perplexity(model, texts: list[list[int]], batch_size: int = 8) -> float:
    """exp(mean next-token NLL) over every token of every text (token-weighted), right-padded batches."""
    total, count = 0.0, 0
    with _inference(model):
        for i in range(0, len(texts), batch_size):
            rows = [t for t in texts[i: i + batch_size] if len(t) >= 2]
            if not rows:
                continue
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=model.device)  # (B, T)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V)
            labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                                       reduction="sum").item()
            count += int((labels != -100).sum())
    return math.exp(total / count) if count else float("nan")
