"""The shipped pair itself (assets/models): small, documented, loadable by registry name, and exact."""
import json

import pytest

from cllm.decode import decode_prompt
from cllm.jacobi import JacobiConfig
from cllm.models import DEFAULT_BASE, DEFAULT_CLLM, MODELS_DIR, load_model
from cllm.prompts import HELDOUT_PROMPTS, read_prompts
from cllm.stats import run_summary

MAX_CHECKPOINT_BYTES = 25 * 2**20


@pytest.mark.parametrize("name", [DEFAULT_BASE, DEFAULT_CLLM])
def test_checkpoint_is_small_and_has_a_model_card(name):
    folder = MODELS_DIR / name
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size <= MAX_CHECKPOINT_BYTES, f"{name} is {size / 2**20:.1f} MiB"
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "perplexity" in card
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    assert (folder / "tokenizer.json").exists() and (folder / "model.safetensors").exists()


@pytest.fixture(scope="module")
def pair():
    return load_model(DEFAULT_BASE, "cpu"), load_model(DEFAULT_CLLM, "cpu")


def test_pair_shares_a_tokenizer(pair):
    base, cllm = pair
    assert base.tokenizer.get_vocab() == cllm.tokenizer.get_vocab()


def test_jacobi_equals_greedy_on_held_out_prompts_and_the_cllm_takes_fewer_passes(pair):
    config = JacobiConfig(n=16, max_new_tokens=32)
    passes = {}
    for loaded in pair:
        runs = [decode_prompt(loaded, p, config, check_ar=True) for p in read_prompts(HELDOUT_PROMPTS, limit=4)]
        assert all(t.matches_ar for t in runs), f"{loaded.name}: Jacobi differs from greedy AR"
        passes[loaded.name] = sum(run_summary(t)["forward_passes"] for t in runs)
    assert passes[DEFAULT_CLLM] < passes[DEFAULT_BASE]
