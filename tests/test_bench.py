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


def test_every_bench_carries_the_hf_peers(tiny_model_dir):
    from cllm.bench import run_bench
    from cllm.jacobi import JacobiConfig
    from cllm.peers import PeerConfig

    loaded = load_model(str(tiny_model_dir), "cpu")
    result = run_bench([loaded], ["def f(x):", "for i in"], JacobiConfig(n=4, max_new_tokens=12), PeerConfig(draft=3, max_new_tokens=12))
    rows = {r["decoder"]: r for r in result["rows"]}
    assert list(rows) == ["ar", "jacobi", "hf_greedy", "hf_prompt_lookup"] and result["draft"] == 3
    assert rows["hf_greedy"]["vs_hf_greedy"] == 1.0 and rows["hf_greedy"]["tpf"] == 1.0
    assert all(r["matches_ar"] == 1.0 for r in rows.values())  # every decoder here is exact
    assert rows["hf_greedy"]["tokens"] == rows["ar"]["tokens"] == rows["jacobi"]["tokens"]
    assert rows["hf_greedy"]["forward_passes"] == rows["ar"]["tokens"] - 2  # the two prefill calls left out
    assert rows["jacobi"]["ff_rate"] >= 1.0
    for r in rows.values():
        assert abs(r["vs_hf_greedy"] - r["tokens_per_s"] / rows["hf_greedy"]["tokens_per_s"]) < 1e-9
