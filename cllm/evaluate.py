"""Run models over a prompt set: the one code path behind `bench`, `stats` and the app's Stats tab."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pandas as pd

from cllm import stats
from cllm.decode import decode_prompt, encode_prompt
from cllm.jacobi import JacobiConfig, check_inputs
from cllm.models import LoadedModel
from cllm.trajectory import Trajectory

Progress = Callable[[int, int, str], None]  # (done, total, what) -> None
SWEEP_NS = (4, 8, 16, 32, 64)
PROMPT_COLUMNS = ["model", "prompt", "tokens", "forward_passes", "tpf", "fast_forwarded", "stationary",
                  "decode_seconds", "ar_seconds", "speedup", "matches_ar"]


def repeated_line(text: str, times: int = 3) -> bool:
    """Degenerate repetition: one non-blank line occurring `times` or more times in a continuation."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return any(lines.count(ln) >= times for ln in set(lines))


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
        rows.append({"model": model, "prompt": i} | {k: s[k] for k in PROMPT_COLUMNS[2:]})
    return pd.DataFrame(rows, columns=PROMPT_COLUMNS)


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model: totals, TPF over all tokens, wall-clock speedup over all time, share matching AR."""
    g = frame.groupby("model", sort=False)
    out = pd.DataFrame({
        "prompts": g.size(), "tokens": g["tokens"].sum(), "forward_passes": g["forward_passes"].sum(),
        "fast_forwarded": g["fast_forwarded"].sum(), "stationary": g["stationary"].sum(),
        "decode_seconds": g["decode_seconds"].sum(), "ar_seconds": g["ar_seconds"].sum(),
        "matches_ar": g["matches_ar"].mean(),
    })
    out.insert(3, "tpf", out["tokens"] / out["forward_passes"])
    out["tokens_per_s"] = out["tokens"] / out["decode_seconds"]
    out["speedup"] = out["ar_seconds"] / out["decode_seconds"]
    return out.reset_index()


def compare_pair(base: LoadedModel, cllm: LoadedModel, prompts: list[str], config: JacobiConfig,
                 progress: Progress | None = None) -> tuple[dict[str, list[Trajectory]], pd.DataFrame]:
    """Both models over the same prompts: their trajectories and the per-prompt table."""
    trajs = {role: evaluate(m, prompts, config, progress, role) for role, m in (("base", base), ("cllm", cllm))}
    frame = pd.concat([prompt_frame(t, role) for role, t in trajs.items()], ignore_index=True)
    return trajs, frame


def ratio_table(agg: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 3 shape: fast-forwarded and stationary totals, base vs CLLM, and their ratio."""
    by = agg.set_index("model")
    rows = []
    for metric in ("fast_forwarded", "stationary", "tpf"):
        base, cllm = by.loc["base", metric], by.loc["cllm", metric]
        rows.append({"metric": metric, "base": base, "cllm": cllm, "ratio": cllm / base if base else float("inf")})
    return pd.DataFrame(rows)


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
