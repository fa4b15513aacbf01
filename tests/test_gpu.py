"""The invariant on a CUDA GPU: Jacobi == greedy AR and the batched path == one prompt at a time, for every
architecture of the CPU tests, with the same well-separated float64 models (so a mismatch is a bug, not
rounding). bf16 mismatches on real models are measured by `python -m cllm bench --device cuda`, not here."""
from __future__ import annotations

import pytest
import torch

from cllm.jacobi import JacobiConfig, greedy_decode, jacobi_decode
from cllm.jacobi_batch import jacobi_decode_batch
from conftest import ARCHS, tiny_model
from test_jacobi import random_case

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module", params=ARCHS)
def cuda_model(request):
    return tiny_model(request.param).to("cuda")


@pytest.mark.parametrize("case", range(20))
def test_jacobi_equals_greedy_ar_on_cuda(cuda_model, case):
    prompt, config = random_case(case)
    ar = greedy_decode(cuda_model, prompt, config.max_new_tokens)
    traj = jacobi_decode(cuda_model, prompt, config)
    assert traj.tokens == ar.tokens and len(ar.tokens) == config.max_new_tokens
    assert traj.meta.device.startswith("cuda")


def test_batched_equals_single_on_cuda(cuda_model):
    cases = [random_case(100 + i)[0] for i in range(6)]
    config = JacobiConfig(n=8, max_new_tokens=24, seed=3)
    batched = jacobi_decode_batch(cuda_model, cases, config)
    for prompt, traj in zip(cases, batched):
        assert traj.tokens == jacobi_decode(cuda_model, prompt, config).tokens
