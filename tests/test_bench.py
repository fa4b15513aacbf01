"""Bench rows: the writer-quality columns (repeats, perplexity) on a model whose outputs are known."""
from cllm.bench import quality
from cllm.models import load_model


class FakeTraj:
    def __init__(self, tokens):
        self.ar_tokens = tokens


def test_quality_counts_looping_continuations(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), "cpu")
    tok = loaded.tokenizer
    loop = tok("x = 1\nx = 1\nx = 1\n").input_ids
    fine = tok("x = 1\ny = 2\n").input_ids
    q = quality(loaded, ["def f(x):", "for i in"], [FakeTraj(loop), FakeTraj(fine)])
    assert q["repeats"] == 0.5
    assert q["perplexity"] > 1
