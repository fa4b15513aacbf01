"""The bundled base's recipe: corpus selection, the split, prompt sets and the degeneracy check."""
from pathlib import Path

from cllm.evaluate import repeated_line
from cllm.training.pretrain import PretrainConfig, corpus_files, function_prompts, split_corpus, train_tokenizer


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


FUNC = "def area(w, h):\n    \"\"\"Area.\"\"\"\n    if w < 0:\n        raise ValueError(w)\n    x = w * h\n    return x\n"


def test_corpus_excludes_tests_site_packages_and_pydoc_data(tmp_path):
    for rel in ("json/decoder.py", "test/test_json.py", "unittest/test/x.py", "idlelib/idle_test/a.py",
                "site-packages/pkg/m.py", "pydoc_data/topics.py", "test_grammar.py", "ast.py"):
        write(tmp_path, rel, FUNC)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in corpus_files(tmp_path))
    assert names == ["ast.py", "json/decoder.py"]


def test_split_is_deterministic_disjoint_and_seeded(tmp_path):
    for i in range(200):
        write(tmp_path, f"m{i}.py", FUNC)
    config = PretrainConfig(heldout_fraction=0.1)
    train, heldout = split_corpus(config, tmp_path)
    assert (train, heldout) == split_corpus(config, tmp_path)
    assert not set(train) & set(heldout) and len(train) + len(heldout) == 200
    assert 5 <= len(heldout) <= 40
    assert split_corpus(PretrainConfig(heldout_fraction=0.1, seed=1), tmp_path)[1] != heldout


def test_function_prompts_end_on_the_line_not_a_bare_newline(tmp_path):
    write(tmp_path, "geo.py", FUNC)
    [row] = function_prompts([tmp_path / "geo.py"], tmp_path)
    assert row["prompt"] == 'def area(w, h):\n    """Area."""\n    if w < 0:'
    assert row["source"] == "geo.py:1:area"


def test_bundled_prompt_sets_avoid_the_bare_newline_artifact():
    from cllm.prompts import read_prompts

    for name in ("heldout", "train"):
        prompts = read_prompts(Path("assets/prompts") / f"{name}.jsonl")
        assert prompts and not any(p.endswith("\n") for p in prompts)


def test_tokenizer_merges_newline_with_indent():
    """Why prompts end on a line: the BPE learns newline+indent as one token."""
    tok = train_tokenizer([FUNC * 50], vocab_size=300)
    pieces = [tok.decode([i]) for i in tok(FUNC).input_ids]
    assert "\n   " in pieces  # newline + indent (its last space goes with the next word)
    assert tok.eos_token and tok.pad_token == tok.eos_token


def test_repeated_line():
    assert repeated_line("x = 1\ny = 2\nx = 1\n\nx = 1")
    assert not repeated_line("x = 1\ny = 2\nx = 1\n\n\n\n")
    assert not repeated_line("a\nb\nc")


def test_a_short_pretrain_caches_its_rows_and_keeps_the_best_checkpoint(tmp_path):
    """End to end on a tiny corpus: rows are tokenized once into work_dir (a rerun, here or on another
    machine, reads them back), and with eval_every the Trainer ends on the best held-out checkpoint."""
    import torch
    from safetensors.torch import load_file

    from cllm.training.pretrain import run_pretrain

    corpus = tmp_path / "lib"
    for i in range(40):
        write(corpus, f"m{i}.py", FUNC.replace("area", f"area{i}") * 8)
    config = PretrainConfig(work_dir=str(tmp_path / "work"), corpus_root=str(corpus), vocab_size=300,
                            hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64, context=32,
                            batch_size=4, max_steps=6, warmup_steps=1, eval_every=3, heldout_fraction=0.2)
    result = run_pretrain(config, device="cpu")
    cached = load_file(str(tmp_path / "work" / "rows.safetensors"))
    assert cached["train"].shape == (result["train_tokens"] // 32, 32) and torch.equal(cached["heldout"], result["heldout_rows"])
    assert result["steps"] == 6 and result["best_step"] in (3, 6)
    assert sum(result["files"]) == 40 and result["files"][1] > 0

    for path in corpus.iterdir():  # the corpus is gone: a rerun must train from the cache alone
        path.unlink()
    again = run_pretrain(PretrainConfig(**{**config.__dict__, "max_steps": 8}), device="cpu")
    assert again["steps"] == 8 and again["files"] == result["files"]


def test_a_damaged_row_cache_is_one_clear_error(tmp_path):
    import pytest

    from cllm.training.pretrain import corpus_rows

    (tmp_path / "rows.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="is not a token-row cache .*delete it"):
        corpus_rows(PretrainConfig(), tmp_path, tokenizer=None)
