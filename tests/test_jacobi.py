"""The invariant: Jacobi decoding == greedy AR, token for token; the cached fast paths == the literal
uncached algorithms, state for state; over many random cases and several architectures."""
from __future__ import annotations

import random

import pytest
import torch

from cllm.jacobi import INITS, JacobiConfig, greedy_decode, jacobi_decode
from cllm.jacobi_reference import greedy_decode_uncached, jacobi_decode_uncached
from conftest import VOCAB, tiny_model

CASES = 40  # per architecture


def random_case(seed: int):
    rng = random.Random(seed)
    prompt = [rng.randrange(VOCAB) for _ in range(rng.choice([1, 1, 2, 5, 12, 30]))]
    config = JacobiConfig(n=rng.choice([1, 2, 3, 4, 7, 16, 64]), max_new_tokens=rng.randint(1, 48),
                          seed=rng.randrange(10**6), init=rng.choice(INITS))
    return prompt, config


def assert_same_trajectory(model, prompt, config, eos):
    ar = greedy_decode(model, prompt, config.max_new_tokens, eos)
    traj = jacobi_decode(model, prompt, config, eos)
    assert ar.tokens == greedy_decode_uncached(model, prompt, config.max_new_tokens, eos)
    assert traj.tokens == ar.tokens
    reference = jacobi_decode_uncached(model, prompt, config, eos)
    assert len(traj.blocks) == len(reference)
    for block, ref in zip(traj.blocks, reference):
        # Same states; the reference only adds passes that change nothing (its confirming pass).
        assert block.states == ref.states[: len(block.states)]
        assert all(s == block.fixed_point for s in ref.states[len(block.states):])
        assert 1 <= block.iterations <= block.width  # each iteration fixes at least one more token
    return ar, traj


@pytest.mark.parametrize("case", range(CASES))
def test_jacobi_equals_greedy_ar(arch_model, case):
    prompt, config = random_case(case)
    ar, traj = assert_same_trajectory(arch_model, prompt, config, eos=None)
    assert len(traj.tokens) == config.max_new_tokens
    assert ar.forward_passes == len(ar.tokens)


@pytest.mark.parametrize("case", range(10))
def test_eos_inside_a_block_cuts_output(arch_model, case):
    prompt, config = random_case(1000 + case)
    config = JacobiConfig(n=8, max_new_tokens=40, seed=case, init=config.init)
    free_run = greedy_decode(arch_model, prompt, 40).tokens
    eos = free_run[min(case + 2, 39)]  # a token the model will emit, often mid-block
    ar, traj = assert_same_trajectory(arch_model, prompt, config, eos)
    assert traj.tokens[-1] == eos and eos not in traj.tokens[:-1]
    assert traj.tokens == free_run[: free_run.index(eos) + 1]


@pytest.mark.parametrize("n", [1, 3, 100])
def test_block_sizes_at_the_edges(n):
    model = tiny_model("llama", seed=3)
    config = JacobiConfig(n=n, max_new_tokens=10, seed=1)
    ar, traj = assert_same_trajectory(model, [5], config, eos=None)  # 1-token prompt: no prefill
    assert [b.width for b in traj.blocks] == ([1] * 10 if n == 1 else [3, 3, 3, 1] if n == 3 else [10])
    if n == 1:
        assert traj.forward_passes == 10  # n = 1 is greedy AR


def test_float32_models_also_match():
    """Not a float64 artefact: the tiny float32 models of the other tests agree too (no near-ties)."""
    model = tiny_model("qwen2", seed=5, dtype=torch.float32)
    for case in range(10):
        prompt, config = random_case(2000 + case)
        assert_same_trajectory(model, prompt, config, eos=None)


def test_seed_reproduces_and_changes_the_guess():
    model = tiny_model("llama", seed=1)
    runs = [jacobi_decode(model, list(range(10)), JacobiConfig(n=8, max_new_tokens=16, seed=s)) for s in (0, 0, 1)]
    assert runs[0].blocks[0].states == runs[1].blocks[0].states
    assert runs[0].blocks[0].states[0] != runs[2].blocks[0].states[0]
    assert runs[0].tokens == runs[2].tokens  # the guess changes the path, never the destination


def test_prompt_init_draws_from_the_context():
    model = tiny_model("llama", seed=1)
    prompt = [7, 8, 9]
    traj = jacobi_decode(model, prompt, JacobiConfig(n=6, max_new_tokens=12, seed=4, init="prompt"))
    assert set(traj.blocks[0].states[0]) <= set(prompt)
    assert set(traj.blocks[1].states[0]) <= set(prompt + traj.blocks[0].fixed_point)


def test_records_and_metadata():
    model = tiny_model("gpt2", seed=2)
    traj = jacobi_decode(model, [1, 2, 3], JacobiConfig(n=4, max_new_tokens=9, seed=7, init="vocab"))
    assert traj.meta.n == 4 and traj.meta.seed == 7 and traj.meta.init == "vocab"
    assert traj.meta.device == "cpu" and traj.meta.dtype == "float64" and traj.meta.vocab_size == VOCAB
    for block in traj.blocks:
        assert len(block.iteration_seconds) == block.iterations
        assert all(t > 0 for t in block.iteration_seconds)
    assert traj.forward_passes == sum(b.iterations for b in traj.blocks)


def test_training_mode_is_restored_and_nothing_is_learned():
    model = tiny_model("llama")
    model.train()
    before = [p.clone() for p in model.parameters()]
    jacobi_decode(model, [1, 2], JacobiConfig(n=4, max_new_tokens=8))
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "block size"), ({"n": -3}, "block size"), ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"init": "zeros"}, "init must be one of"),
])
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JacobiConfig(**kwargs)


def test_bad_inputs_are_clear_errors():
    model = tiny_model("llama", context=32)
    with pytest.raises(ValueError, match="empty"):
        jacobi_decode(model, [], JacobiConfig())
    with pytest.raises(ValueError, match="exceeds the model's context of 32"):
        jacobi_decode(model, [1] * 20, JacobiConfig(max_new_tokens=13))
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        greedy_decode(model, [VOCAB], 4)
