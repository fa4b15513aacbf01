"""FitReport.as_json: what `train --json` prints keeps the keys of the dict it replaced."""
from __future__ import annotations

import json

from cllm.training.report import FitReport, RoundReport

OLD_KEYS = {"base_model", "data_dir", "config", "steps", "seconds", "device", "before", "after", "history",
            "eval_prompt_count", "eval_max_new_tokens", "perplexity_text", "stopped_by", "out", "rounds"}


def report(**changes) -> FitReport:
    first = RoundReport(round=1, steps=2, seconds=1.0, after={"tpf": 1.5}, prompts=3, blocks=4, states=5,
                        stopped_by="max steps (2)")
    later = RoundReport(round=2, steps=2, seconds=1.0, after=None, prompts=3, blocks=4, states=5,
                        stopped_by="max steps (2)", collect_seconds=0.5)
    fields = dict(base_model="m", data_dir="d", data_meta={"n": 4}, config={"lr": 1e-3}, steps=4, seconds=2.5,
                  device="cpu", before={"tpf": 1.0}, after={"tpf": 1.5}, history=[{"step": 1, "loss": 2.0}],
                  eval_prompt_count=3, eval_max_new_tokens=8, perplexity_text="t", stopped_by="max steps (4)",
                  rounds=[first, later], out="o")
    return FitReport(**(fields | changes))


def test_as_json_keeps_the_old_keys_and_leaves_out_the_data_meta():
    out = json.loads(json.dumps(report().as_json()))
    assert set(out) == OLD_KEYS
    assert "collect_seconds" not in out["rounds"][0] and out["rounds"][1]["collect_seconds"] == 0.5
    assert out["rounds"][1]["after"] is None  # a round that was not measured says so
    assert report(made_by="the app").as_json()["made_by"] == "the app"
