"""Recorded dataset runs: both models' runs over a shipped prompt set, with the bench rows measured beside them,
so the Stats tab can show a pair's figures and collocations at once. A live run of the real pair over 16
prompts holds a 2-core CPU Space's models for about twenty minutes; decoding is deterministic, so a recorded
float32 run is what a live one would decode (its timings are the recording machine's, and say so).

File (JSON): {"schema": "cllm-dataset-run", "version": 1, "prompt_set": "code-heldout.jsonl",
              "machine": "...", "recorded": "2026-12-02", "bench": [row, ...],
              "base": [<cllm-trajectory dict>, ...], "cllm": [<cllm-trajectory dict>, ...],
              "sweep": [{"model": "base", "n": 4, "tpf": 1.02, "speedup": 0.61, "matches_ar": 1.0}, ...]}
"sweep" (optional): the Stats tab's block-size sweep (evaluate.n_sweep) over the same prompts with the runs'
settings but n, so the tab serves it at once too (a live sweep of the real pair holds a CPU for half an hour).
Every trajectory is read with cllm.trajectory's validation. As with shipped races (cllm.shipped), only files
`python -m cllm stats --record` listed in their folder's shipped.sha256, bytes unchanged, are served.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path

import torch

from cllm.bench import DATASET_COLUMNS
from cllm.decoders import make_config
from cllm.evaluate import aggregate, prompt_frame
from cllm.files import read_capped_bytes
from cllm.models import device_label
from cllm.peers import PeerConfig
from cllm.race import GALLERY_DIR
from cllm.shipped import Request, list_shipped, read_listed, trusted_files
from cllm.trajectory import (Trajectory, TrajectoryError, atomic_write_text, check_output_path, parse_json,
                             trajectory_from_dict, trajectory_to_dict)

SCHEMA = "cllm-dataset-run"
VERSION = 1
DATASETS_DIR = GALLERY_DIR / "datasets"  # saved_trajectories/datasets: the recorded runs the Stats tab serves
MAX_RUN_BYTES = 64 * 2**20  # 16 prompts x 64 tokens of the real pair: ~0.5 MB
MAX_RUNS = 200  # prompts per model: the Stats tab's largest set (2 CPU cores: ~3 s a prompt pair at 64 tokens)
MAX_BENCH_ROWS = 64
MAX_TEXT = 200  # any text value of a bench row
TEXT_RULES = {"prompt_set": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}\.jsonl?"),  # a file name, no path
              "machine": re.compile(r"[\w .,()+@:/-]{1,200}"), "recorded": re.compile(r"\d{4}-\d{2}-\d{2}")}
TEXT_SAYS = {"prompt_set": "must be a prompt file's name (letters, digits, . _ -; .jsonl), not a path",
             "machine": "must be 1 to 200 letters, digits, spaces or .,()+@:/-",
             "recorded": "must be a date (YYYY-MM-DD)"}
ROLES = ("base", "cllm")
SWEEP_FIELDS = ("model", "n", "tpf", "speedup", "matches_ar")  # a row of evaluate.n_sweep
MAX_SWEEP_ROWS = 64


class DatasetRunError(TrajectoryError):
    """A dataset-run file that cannot be used: the message says why."""


@dataclass
class DatasetRun:
    trajs: dict[str, list[Trajectory]]  # "base" and "cllm": one run per prompt, in the set's order
    bench: list[dict]  # cllm.bench.dataset_rows, measured when recorded (HF generate and prompt lookup included)
    prompt_set: str  # the shipped prompt file's name (assets/prompts/...), first len(runs) prompts
    machine: str  # where it was recorded: device, threads, processor
    recorded: str  # date (ISO)
    sweep: list[dict] | None = None  # evaluate.n_sweep's rows on these prompts and settings but n, if recorded

    @property
    def prompts(self) -> list[str]:
        return [t.prompt for t in self.trajs["base"]]

    def key(self) -> tuple:
        """What it answers: (prompts, base Request, CLLM Request), as find_recorded looks it up."""
        return tuple(self.prompts), Request.of(self.trajs["base"][0].meta), Request.of(self.trajs["cllm"][0].meta)


def dataset_run_to_dict(run: DatasetRun) -> dict:
    return {"schema": SCHEMA, "version": VERSION, "prompt_set": run.prompt_set, "machine": run.machine,
            "recorded": run.recorded, "bench": run.bench} | {
        role: [trajectory_to_dict(t) for t in run.trajs[role]] for role in ROLES} | (
        {"sweep": run.sweep} if run.sweep is not None else {})


def dataset_run_from_dict(data: object) -> DatasetRun:
    """Validate a parsed file: header, texts, bench rows, then every run in full and that they fit together."""
    _check(isinstance(data, dict), "a dataset-run file must hold a JSON object")
    _check(data.get("schema") == SCHEMA, f"not a dataset-run file (schema should be {SCHEMA!r})")
    version = data.get("version")
    _check(type(version) is int and version == VERSION,
           f"unsupported dataset-run version {version!r} (this app reads {VERSION})")
    texts = {k: data.get(k) for k in ("prompt_set", "machine", "recorded")}
    for key, rule in TEXT_RULES.items():  # shown in Markdown: plain words only
        _check(isinstance(texts[key], str) and rule.fullmatch(texts[key]) is not None, f"{key} {TEXT_SAYS[key]}")
    trajs = {role: _runs(data.get(role), role) for role in ROLES}
    _check(len(trajs["base"]) == len(trajs["cllm"]), "the base and CLLM hold different numbers of runs")
    _check(all(b.prompt == c.prompt for b, c in zip(trajs["base"], trajs["cllm"])),
           "the base and CLLM runs are of different prompts")
    for role, runs in trajs.items():
        _check(len({Request.of(t.meta) for t in runs}) == 1,
               f"the {role} runs were not all made with the same settings")
        _check(all(t.ar_tokens is not None for t in runs), f"a {role} run was not checked against greedy decoding")
        _check(all((t.meta.device, t.meta.dtype) == ("cpu", "float32") for t in runs),
               f"the {role} runs were not decoded on a CPU in float32 (what they stand in for)")
    return DatasetRun(trajs, _bench_rows(data.get("bench"), len(trajs["base"])), **texts,
                      sweep=_sweep_rows(data.get("sweep"), trajs))


def _runs(raw: object, role: str) -> list[Trajectory]:
    _check(isinstance(raw, list) and 1 <= len(raw) <= MAX_RUNS, f"{role} must be a list of 1 to {MAX_RUNS} runs")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(trajectory_from_dict(item))
        except TrajectoryError as e:
            raise DatasetRunError(f"{role} run {i + 1}: {e}") from None
    return out


def _bench_rows(raw: object, prompts: int) -> list[dict]:
    """Rows of the bench table's columns, each a plain value (a text, a finite number, a flag or null), each
    row over the run's prompts."""
    _check(isinstance(raw, list) and len(raw) <= MAX_BENCH_ROWS, f"bench must be a list of at most {MAX_BENCH_ROWS} rows")
    for row in raw:
        _check(isinstance(row, dict) and set(row) <= set(DATASET_COLUMNS) and {"decoder", "model", "prompts"} <= set(row),
               f"each bench row must be an object of the bench columns ({', '.join(DATASET_COLUMNS)})")
        _check(row["prompts"] == prompts, f"a bench row counts {row['prompts']!r} prompts, not the run's {prompts}")
        for value in row.values():
            ok = (value is None or isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value))
                  or (isinstance(value, str) and len(value) <= MAX_TEXT))
            _check(ok, "a bench value must be a text, a finite number, a flag or null")
    return raw


def _sweep_rows(raw: object, trajs: dict[str, list[Trajectory]]) -> list[dict] | None:
    """A sweep's rows: both models at every n, once each, plain numbers; plain Jacobi runs only (what the tab
    sweeps), and at the runs' own n the sweep's TPF is theirs (a sweep of these prompts and settings)."""
    if raw is None:
        return None
    _check(isinstance(raw, list) and 1 <= len(raw) <= MAX_SWEEP_ROWS, f"sweep must be a list of 1 to {MAX_SWEEP_ROWS} rows")
    for row in raw:
        _check(isinstance(row, dict) and set(row) == set(SWEEP_FIELDS), f"each sweep row must hold {', '.join(SWEEP_FIELDS)}")
        _check(row["model"] in ROLES and type(row["n"]) is int and 1 <= row["n"] <= 1024,
               "a sweep row's model must be base or cllm, its n a whole number from 1 to 1024")
        _check(all(type(row[k]) in (int, float) and math.isfinite(row[k]) and row[k] >= 0 for k in SWEEP_FIELDS[2:]),
               "a sweep row's tpf, speedup and matches_ar must be finite numbers, 0 or more")
    places = [(row["model"], row["n"]) for row in raw]
    ns = {n for _, n in places}
    _check(len(set(places)) == len(places) and set(places) == {(m, n) for m in ROLES for n in ns},
           "the sweep must hold each model once at every n")
    _check(all(t.meta.decoder == "jacobi" for role in ROLES for t in trajs[role]), "a sweep is kept with plain Jacobi runs only")
    for role in ROLES:
        n = trajs[role][0].meta.n
        at_n = next((row["tpf"] for row in raw if (row["model"], row["n"]) == (role, n)), None)
        own = float(aggregate(prompt_frame(trajs[role], role)).iloc[0]["tpf"])
        _check(at_n is None or math.isclose(at_n, own, rel_tol=1e-9), f"the sweep's {role} TPF at n = {n} is not the runs'")
    return raw


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DatasetRunError(message)


def dataset_run_json(run: DatasetRun) -> str:
    return json.dumps(dataset_run_to_dict(run), ensure_ascii=False, separators=(",", ":"))


def load_dataset_run(path: str | os.PathLike) -> DatasetRun:
    path = Path(path)
    raw = read_capped_bytes(path, MAX_RUN_BYTES, DatasetRunError)
    return dataset_run_from_dict(parse_json(raw, path.name, MAX_RUN_BYTES, DatasetRunError))


def check_recordable(path: str | os.PathLike, asked: Request, device: str, draft: int, prompt_set: str,
                      prompts: int) -> Path:
    """What `stats --record` may keep, checked before any decoding: what the Stats tab asks for (a CPU in
    float32, seed 0, init prompt, raw prompts, the decoder's own options and the prompt-lookup draft at their
    defaults, at most MAX_RUNS prompts of a file named as TEXT_RULES says), in a folder apart from the gallery's
    races. (An n or token count beyond the tab's form is kept, but never asked for.)"""
    path = check_output_path(path, "--record file")
    if path.resolve().parent == GALLERY_DIR.resolve():  # the gallery's manifest lists races
        raise ValueError("--record writes dataset runs apart from the gallery, e.g. saved_trajectories/datasets/NAME.json")
    defaults = Request.asked(asked.model, make_config(asked.decoder, n=asked.n, max_new_tokens=asked.max_new_tokens),
                             False, torch.float32)
    if (asked, device, draft) != (defaults, "cpu", PeerConfig.draft):
        raise ValueError("--record keeps what the Stats tab asks for: --device cpu, float32, seed 0, init prompt, "
                         f"no --chat, the decoder's options at their defaults, --draft {PeerConfig.draft}")
    if TEXT_RULES["prompt_set"].fullmatch(prompt_set) is None:
        raise ValueError(f"--record: the prompt file {prompt_set[:80]!r} {TEXT_SAYS['prompt_set']}")
    if prompts > MAX_RUNS:
        raise ValueError(f"--record keeps at most {MAX_RUNS} prompts: give --limit")
    return path


def record_dataset_run(trajs: dict[str, list[Trajectory]], bench: list[dict], prompt_set: str,
                       path: str | os.PathLike, sweep: list[dict] | None = None) -> Path:
    """Save a run (and a sweep of its prompts: evaluate.n_sweep's rows) with where and when it was decoded, and
    list it in its folder's manifest, so the Stats tab may serve it (`python -m cllm stats --record [--sweep]`)."""
    device = torch.device(trajs["base"][0].meta.device)
    threads = torch.get_num_threads()
    machine = f"{device_label(device)}, {threads} thread{'s' if threads > 1 else ''}, {_processor_name()}"
    shown = [{k: row[k] for k in DATASET_COLUMNS if k in row} for row in bench]  # the columns the tab shows
    sweep = None if sweep is None else [{"model": str(r["model"]), "n": int(r["n"]), "tpf": float(r["tpf"]),
                                         "speedup": float(r["speedup"]), "matches_ar": float(r["matches_ar"])}
                                        for r in sweep]  # plain JSON numbers, not numpy's
    text = dataset_run_json(DatasetRun(trajs, shown, prompt_set, machine, date.today().isoformat(), sweep))
    dataset_run_from_dict(json.loads(text))  # what is listed must read back
    path = Path(path)
    atomic_write_text(path, text)  # a crash leaves the old file or none
    list_shipped(path.parent, [path])
    return path


def _processor_name() -> str:
    """The CPU's model name where Linux says it (platform.processor() is empty there), else the architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    names = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    return (names[0] if names else platform.machine())[:80]


def recorded_runs(folder: str | os.PathLike = DATASETS_DIR) -> dict[tuple, DatasetRun]:
    """key() -> run, for every listed file whose bytes are unchanged and which reads back whole."""
    return read_listed(Path(folder), _read_runs)


@lru_cache(maxsize=4)
def _read_runs(folder: str, listed: tuple, stamps: tuple) -> dict[tuple, DatasetRun]:
    """Shared by every visitor's request: nothing may change a run in place."""
    runs = {}
    for name, raw in trusted_files(folder, listed, MAX_RUN_BYTES):
        try:
            run = dataset_run_from_dict(parse_json(raw, name, MAX_RUN_BYTES, DatasetRunError))
        except DatasetRunError:
            continue
        runs[run.key()] = run
    return runs


def find_recorded(folder: str | os.PathLike, prompts: list[str], base: Request, cllm: Request) -> DatasetRun | None:
    """The recorded run of exactly this request, or None."""
    return recorded_runs(folder).get((tuple(prompts), base, cllm))


def runs_of_pair(folder: str | os.PathLike, base: str, cllm: str) -> list[DatasetRun]:
    """The recorded runs of this pair (as the models are named), fewest prompts first."""
    runs = [r for r in recorded_runs(folder).values() if (r.trajs["base"][0].meta.model, r.trajs["cllm"][0].meta.model)
            == (base, cllm)]
    return sorted(runs, key=lambda r: (len(r.prompts), r.prompt_set))


def find_sweep(folder: str | os.PathLike, prompts: list[str], base: Request, cllm: Request,
               ns: list[int]) -> tuple[DatasetRun, list[dict]] | None:
    """A recorded sweep of exactly these prompts, whose runs were asked as `base` and `cllm` are but for n,
    covering every n of `ns`: (its run, its rows at those n, in the recorded order), or None."""
    for run in recorded_runs(folder).values():
        if run.sweep is None or run.prompts != list(prompts):
            continue
        recorded = [Request.of(run.trajs[role][0].meta) for role in ROLES]
        if [replace(asked, n=r.n) for asked, r in zip((base, cllm), recorded)] != recorded:
            continue
        rows = [row for row in run.sweep if row["n"] in ns]
        if {row["n"] for row in rows} == set(ns):
            return run, rows
    return None
