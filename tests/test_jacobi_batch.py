"""Batched Jacobi == unbatched Jacobi (state for state) == greedy AR, per prompt, with real padding."""
from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from cllm.jacobi import INITS, JacobiConfig, greedy_decode, jacobi_decode
from cllm.jacobi_batch import jacobi_decode_batch
from conftest import VOCAB, tiny_model

CASES = 4  # per architecture (x 5 architectures; each case checks 2-6 prompts)


def random_batch(seed: int):
    """Prompts of mixed lengths (1 token up to 30) so left padding is exercised, and a random config."""
    rng = random.Random(seed)
    prompts = [[rng.randrange(VOCAB) for _ in range(rng.choice([1, 2, 5, 12, 30]))] for _ in range(rng.randint(2, 6))]
    config = JacobiConfig(n=rng.choice([1, 3, 4, 7, 16]), max_new_tokens=rng.randint(1, 24),
                          seed=rng.randrange(10**6), init=rng.choice(INITS))
    return prompts, config, [rng.randrange(10**6) for _ in prompts]


def assert_rows_match(model, prompts, config, eos, seeds=None):
    trajs = jacobi_decode_batch(model, prompts, config, eos, seeds=seeds)
    assert len(trajs) == len(prompts)
    for i, (prompt, traj) in enumerate(zip(prompts, trajs)):
        alone = jacobi_decode(model, prompt, replace(config, seed=seeds[i] if seeds else config.seed), eos)
        assert [b.states for b in traj.blocks] == [b.states for b in alone.blocks]
        assert traj.tokens == greedy_decode(model, prompt, config.max_new_tokens, eos).tokens
        assert traj.prompt_ids == prompt and traj.meta.seed == alone.meta.seed
        assert all(len(b.iteration_seconds) == b.iterations for b in traj.blocks)
    return trajs


@pytest.mark.parametrize("case", range(CASES))
def test_batched_equals_unbatched_equals_ar(arch_model, case):
    prompts, config, seeds = random_batch(case)
    assert_rows_match(arch_model, prompts, config, eos=None, seeds=seeds if case % 2 else None)


@pytest.mark.parametrize("case", range(2))
def test_rows_that_emit_eos_leave_and_the_rest_go_on(arch_model, case):
    prompts, config, _ = random_batch(100 + case)
    config = replace(config, n=4, max_new_tokens=16)
    eos = greedy_decode(arch_model, prompts[0], 16).tokens[case + 1]  # row 0 stops early, mid-block or not
    trajs = assert_rows_match(arch_model, prompts, config, eos)
    assert trajs[0].tokens[-1] == eos and len(trajs[0].tokens) <= case + 2


def test_default_seed_is_config_seed_for_every_row():
    model = tiny_model("llama", seed=4)
    prompts = [[3, 4, 5, 6], [9], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]
    config = JacobiConfig(n=5, max_new_tokens=12, seed=11)
    for traj, prompt in zip(jacobi_decode_batch(model, prompts, config), prompts):
        assert traj.blocks[0].states == jacobi_decode(model, prompt, config).blocks[0].states


def test_float32_and_eager_attention_also_match():
    model = tiny_model("qwen2", seed=5, dtype=torch.float32)
    for case in range(2):
        prompts, config, seeds = random_batch(200 + case)
        assert_rows_match(model, prompts, config, None, seeds)
    eager = tiny_model("llama", seed=6, dtype=torch.float32)
    eager.set_attn_implementation("eager")
    prompts, config, seeds = random_batch(300)
    assert_rows_match(eager, prompts, config, None, seeds)


def test_float64_eager_nan_is_a_clear_error():
    model = tiny_model("llama", seed=6)
    model.set_attn_implementation("eager")  # its float64 mask minimum becomes -inf in a float32 softmax
    with pytest.raises(ValueError, match="NaN next to padding"):
        jacobi_decode_batch(model, [[1, 2, 3], [4]], JacobiConfig(n=2, max_new_tokens=2))


def test_one_row_and_no_rows():
    model = tiny_model("gpt2", seed=2)
    assert jacobi_decode_batch(model, [], JacobiConfig()) == []
    assert_rows_match(model, [[1, 2, 3]], JacobiConfig(n=4, max_new_tokens=9, seed=3), None)


def test_bad_inputs_are_clear_errors():
    model = tiny_model("llama", context=32)
    with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
        jacobi_decode_batch(model, [[1]], JacobiConfig(max_new_tokens=4), seeds=[1, 2])
    with pytest.raises(ValueError, match="empty"):
        jacobi_decode_batch(model, [[1, 2], []], JacobiConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        jacobi_decode_batch(model, [[1], [1] * 20], JacobiConfig(max_new_tokens=13))
