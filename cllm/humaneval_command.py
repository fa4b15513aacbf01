"""`python -m cllm humaneval`: HumanEval pass@1 and speed of a model pair (cllm.humaneval does the work)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cllm.models import load_model


def add_humaneval_command(sub) -> None:
    """The subcommand, added to the CLI's subparsers."""
    from cllm.humaneval import HumanEvalConfig

    defaults = HumanEvalConfig()
    he = sub.add_parser("humaneval", help="HumanEval pass@1 and speed (Jacobi, greedy AR, HF generate) of a pair")
    he.add_argument("--base", default="smollm2-135m")
    he.add_argument("--cllm", default=None, help="second model (e.g. smollm2-135m-cllm)")
    he.add_argument("--out", required=True, help="results JSONL, one line per model and problem; a rerun resumes")
    he.add_argument("--n", "--block-size", dest="n", type=int, default=defaults.n, help="block size")
    he.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    he.add_argument("--limit", type=int, default=None, help="the first K of the 164 problems")
    he.add_argument("--start", type=int, default=0, help="begin at problem index K (0-163), e.g. to split a run "
                    "across sessions or machines; --limit then counts from there")
    he.add_argument("--seed", type=int, default=defaults.seed)
    he.add_argument("--no-hf", action="store_true", help="skip timing HF generate")
    he.add_argument("--device", default="auto")
    he.add_argument("--json", action="store_true", help="print the per-model reports as JSON")


def cmd_humaneval(args) -> None:
    from dataclasses import asdict

    from tqdm.auto import tqdm

    from cllm.humaneval import HumanEvalConfig, canonical_perplexity, evaluate_model, load_problems, report

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.start < 0:
        raise ValueError("--start must be 0 or more")
    config = HumanEvalConfig(n=args.n, max_new_tokens=args.max_new_tokens, seed=args.seed, hf_generate=not args.no_hf)
    problems, out = load_problems(args.limit, args.start), Path(args.out)
    if not problems:
        raise ValueError(f"--start {args.start} is past the last problem")
    out.parent.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in [m for m in (args.base, args.cllm) if m]:
        loaded = load_model(name, args.device)
        with tqdm(total=len(problems), desc=name, unit="problem", disable=not sys.stderr.isatty()) as bar:
            results = evaluate_model(loaded, problems, config, out, on_result=lambda r: bar.update(1))
        reports.append(report(name, results, canonical_perplexity(loaded, problems)))
    if args.json:
        print(json.dumps([asdict(r) for r in reports]))
        return
    for r in reports:
        hf = f"{r.hf_tokens_per_s:.1f} tokens/s, Jacobi {r.speedup_vs_hf:.2f}x its wall clock" if r.speedup_vs_hf else "not timed"
        print(f"{r.model}: pass@1 {r.pass_at_1:.3f} ({r.passed}/{r.problems}); TPF {r.tpf:.2f}; Jacobi "
              f"{r.jacobi_tokens_per_s:.1f} tokens/s; HF generate {hf}; Jacobi == greedy on {r.equals_greedy:.0%}; "
              f"repeating {r.repeating:.0%}; canonical-solution perplexity {r.canonical_perplexity:.2f}")
