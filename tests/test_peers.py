"""HF peers: same output as our greedy AR (budget and EOS alike), forward calls measured by a hook."""
import pytest
import torch

from cllm.jacobi import greedy_decode
from cllm.peers import PeerConfig, hf_generate, run_peer

PROMPT = [5, 17, 3, 42, 8, 5, 17]


def test_hf_greedy_and_prompt_lookup_equal_our_greedy(arch_model):
    ours = greedy_decode(arch_model, PROMPT, 48).tokens
    greedy = hf_generate(arch_model, PROMPT, PeerConfig(max_new_tokens=48), None, lookup=False)
    lookup = hf_generate(arch_model, PROMPT, PeerConfig(draft=4, max_new_tokens=48), None, lookup=True)
    assert greedy.tokens == ours and lookup.tokens == ours
    assert greedy.calls == len(ours) - 1  # one call per token after the prefill's: counted, not assumed
    assert 1 <= lookup.calls <= len(ours) - 1


def test_prompt_lookup_saves_calls_on_a_looping_continuation(arch_model):
    """A random tiny model falls into a cycle; the lookup then drafts it from the text so far."""
    ours = greedy_decode(arch_model, PROMPT, 96).tokens
    tail = ours[48:]
    if len(set(tail)) > len(tail) // 2:
        pytest.skip("this model's continuation does not cycle")
    lookup = hf_generate(arch_model, PROMPT, PeerConfig(draft=8, max_new_tokens=96), None, lookup=True)
    assert lookup.tokens == ours and lookup.calls < len(ours) - 1


def test_eos_cuts_the_output_as_ours_does(arch_model):
    full = greedy_decode(arch_model, PROMPT, 24).tokens
    eos = full[5]
    ours = greedy_decode(arch_model, PROMPT, 24, eos).tokens
    assert ours[-1] == eos and len(ours) <= 6
    for lookup in (False, True):
        assert hf_generate(arch_model, PROMPT, PeerConfig(max_new_tokens=24), eos, lookup).tokens == ours


def test_run_peer_rows_hold_outputs_to_ar(arch_model):
    prompts = [PROMPT, [9, 9, 2]]
    ar = [greedy_decode(arch_model, p, 16).tokens for p in prompts]
    row = run_peer(arch_model, prompts, ar, PeerConfig(max_new_tokens=16), None, "hf_greedy")
    assert (row.tokens, row.calls, row.matches_ar, row.tpf) == (32, 30, 1.0, 1.0)
    wrong = run_peer(arch_model, prompts, [ar[0], ar[0]], PeerConfig(max_new_tokens=16), None, "hf_prompt_lookup")
    assert wrong.matches_ar == 0.5
    with pytest.raises(ValueError, match="decoder must be one of"):
        run_peer(arch_model, prompts, ar, PeerConfig(), None, "lookahead")


def test_the_checkpoints_generation_defaults_do_not_leak_in():
    """transformers 5 fills unset generate knobs from model.generation_config: ours must stay plain greedy."""
    from conftest import tiny_model

    model = tiny_model("llama", seed=3)
    ours = greedy_decode(model, PROMPT, 32).tokens
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.no_repeat_ngram_size = 2
    model.generation_config.min_new_tokens = 32
    assert model.generate(torch.tensor([PROMPT]), max_new_tokens=32, do_sample=False)[0, len(PROMPT):].tolist() != ours
    for lookup in (False, True):
        assert hf_generate(model, PROMPT, PeerConfig(max_new_tokens=32), None, lookup).tokens == ours
