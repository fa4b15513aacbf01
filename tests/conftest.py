"""Tiny random models and a tiny tokenizer: fast fixtures for equivalence tests on CPU."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

VOCAB = 97
ARCHS = ("llama", "qwen2", "gpt2", "gpt_neox", "mistral")


def tiny_config(arch: str, vocab: int = VOCAB, context: int = 256):
    common = {"vocab_size": vocab, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    if arch == "gpt2":
        return AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=context, **common)
    heads = {} if arch == "gpt_neox" else {"num_key_value_heads": 2}
    return AutoConfig.for_model(arch, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=context, **heads, **common)


def tiny_model(arch: str, seed: int = 0, dtype=torch.float64, vocab: int = VOCAB, context: int = 256):
    """A random model whose logits are well separated: weights scaled up so argmax has no near-ties
    (float64 also keeps block-pass vs 1-token-pass rounding far below any gap)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, vocab, context)).to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    return model


@pytest.fixture(scope="session", params=ARCHS)
def arch_model(request):
    return tiny_model(request.param)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A Llama + byte-level BPE tokenizer saved in HF format, loadable by path like any real model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "class Point:\n    pass\n"] * 20
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|eos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|eos|>")
    fast.save_pretrained(folder)
    model = tiny_model("llama", dtype=torch.float32, vocab=len(fast), context=128)
    model.config.eos_token_id = fast.eos_token_id
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_pair(tiny_model_dir, tmp_path_factory):
    """(base, cllm) folders: the tiny Llama and a second one (other weights, same tokenizer), as a model pair."""
    import shutil

    from transformers import AutoConfig

    folder = tmp_path_factory.mktemp("tiny-llama-2")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, folder / name)
    config = AutoConfig.from_pretrained(tiny_model_dir)
    model = tiny_model("llama", seed=1, dtype=torch.float32, vocab=config.vocab_size, context=128)
    model.config.eos_token_id = config.eos_token_id
    model.save_pretrained(folder)
    return str(tiny_model_dir), str(folder)


@pytest.fixture(scope="session")
def server_slot():
    """The training slot of the app the tests serve (the app owns one; tests share this one)."""
    from cllm.training.session import TrainSlot

    return TrainSlot()


@pytest.fixture(scope="session")
def app_server(tiny_pair, tmp_path_factory, server_slot):
    """The app served on 127.0.0.1 (a free port) with empty gallery and trained-model folders:
    (url, gallery folder, trained-models folder)."""
    import os

    import app

    folders = {"CLLM_GALLERY_DIR": tmp_path_factory.mktemp("gallery"),
               "CLLM_TRAINED_DIR": tmp_path_factory.mktemp("trained")}
    old = {name: os.environ.get(name) for name in folders}
    os.environ.update({name: str(path) for name, path in folders.items()})
    # built over an empty model cache, so the page opens on the tiny pair on every machine (cllm.models.app_pair)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLLM_CACHE", str(tmp_path_factory.mktemp("empty-cache")))
        demo = app.serve(warm_up=False, slot=server_slot, server_name="127.0.0.1", server_port=None,
                         prevent_thread_lock=True, quiet=True)
    yield demo.local_url, folders["CLLM_GALLERY_DIR"], folders["CLLM_TRAINED_DIR"]
    demo.close()
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture()
def train_slot(server_slot):
    """The served app's training slot, empty before and after the test, its timeouts restored (tests share
    one server process)."""
    slot = server_slot
    timeouts = slot.orphan_seconds, slot.hold_seconds
    slot.reset()
    yield slot
    slot.reset()
    slot.orphan_seconds, slot.hold_seconds = timeouts


@pytest.fixture(autouse=True)
def fresh_recent_races(monkeypatch):
    """Each test's Run decodes live unless the test itself repeats a request: Explore's memory of the races
    this server decoded (explore_tab.RECENT) and of its greedy outputs (explore_tab.GREEDY) start empty. Only
    where Explore is loaded already."""
    import sys
    explore_tab = sys.modules.get("cllm.ui.explore_tab")
    if explore_tab is not None:
        from cllm.shipped import RECENT_GREEDY, Recent, RecentRaces
        monkeypatch.setattr(explore_tab, "RECENT", RecentRaces())
        monkeypatch.setattr(explore_tab, "GREEDY", Recent(RECENT_GREEDY))
