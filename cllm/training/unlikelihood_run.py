"""`python -m cllm unlikelihood`: check, load, measure, fine-tune, measure again, save with the model card extended."""
from __future__ import annotations

import shlex
from dataclasses import asdict
from pathlib import Path

import torch

from cllm.training.checkpoint import check_disk_for, check_out_folder, save_pretrained_atomic
from cllm.decode import encode_prompt
from cllm.evaluate import check_all_fit
from cllm.jacobi import greedy_decode
from cllm.models import device_label, load_model, resolve_source
from cllm.options import as_flags, given
from cllm.prompts import read_prompts
from cllm.training.fit import read_ar_text
from cllm.training.unlikelihood import (UNLIKELIHOOD_FLAGS, UnlikelihoodConfig, card_section, check_text_length, measure,
                                        run_unlikelihood)


def unlikelihood_and_save(args) -> str:
    config = UnlikelihoodConfig(**given(args, UnlikelihoodConfig))
    if args.text != "stdlib" and not Path(args.text).is_file():  # before the slow load
        raise ValueError(f"--text {args.text}: no such file (give a UTF-8 text file, or stdlib)")
    out = check_out_folder(Path(args.out), [Path(resolve_source(args.model))], "the model being fine-tuned")
    prompt_texts, heldout_texts = read_prompts(args.prompts), read_prompts(args.heldout)  # checked before the slow load
    loaded = load_model(args.model, args.device)
    loaded.model = loaded.model.float()  # as `train` does: in bf16, updates of lr 1e-5 would mostly round away
    check_all_fit(loaded, heldout_texts, config.new_tokens)
    check_disk_for(loaded.model, out)
    text = read_ar_text(args.text, loaded.tokenizer, "--text")
    check_text_length(text, config, f"--text {args.text}")  # before minutes of measuring, not after
    prompts = [encode_prompt(loaded, p) for p in prompt_texts]
    heldout = [encode_prompt(loaded, p) for p in heldout_texts]
    heldout_text = heldout_stdlib_rows(loaded.tokenizer) if args.text == "stdlib" else None
    before = measure(loaded, heldout, heldout_text)
    result = run_unlikelihood(loaded, text, prompts, config, progress=_bar(config.steps))
    after = measure(loaded, heldout, heldout_text)
    samples = [(p, loaded.tokenizer.decode(greedy_decode(loaded.model, ids, 64, loaded.eos_token_id).tokens))
               for p, ids in zip(heldout_texts[:3], heldout)]
    threads = f", {torch.get_num_threads()} threads" if loaded.model.device.type == "cpu" else ""
    result |= {"compute": device_label(loaded.model.device) + threads, "prompts": f"`{args.prompts}`",
               "text": "the stdlib train split" if args.text == "stdlib" else f"`{args.text}`"}
    source_card = Path(resolve_source(args.model)) / "README.md"
    card = source_card.read_text(encoding="utf-8") if source_card.is_file() else f"# {args.model}\n"
    save_pretrained_atomic(loaded.model.cpu(), loaded.tokenizer, out,
                           card + card_section(result, before, after, command_line(args, config), samples))
    return (f"saved {out}: {config.steps} updates in {result['minutes']:.1f} min; held-out looping "
            f"{before['repeats']:.0%} -> {after['repeats']:.0%}, perplexity on the held-out prompts "
            f"{before['perplexity']:.2f} -> {after['perplexity']:.2f}")


def command_line(args, config: UnlikelihoodConfig) -> str:
    """The model card's command: the config's flags spelled by cllm.options, as `unlikelihood --help` has them."""
    shown = {k: v for k, v in asdict(config).items() if k not in UNLIKELIHOOD_FLAGS.skip}
    flags = ["--model", args.model, "--out", args.out, *as_flags(shown, UNLIKELIHOOD_FLAGS), "--text", args.text,
             "--prompts", args.prompts, "--heldout", args.heldout]
    return "python -m cllm unlikelihood " + shlex.join(str(f) for f in flags)


def heldout_stdlib_rows(tokenizer, context: int = 512):
    """The held-out split of the stdlib (the files pretraining never saw), as rows for perplexity."""
    from cllm.training.pretrain import PretrainConfig, corpus_texts, split_corpus, token_chunks

    return token_chunks(tokenizer, corpus_texts(split_corpus(PretrainConfig())[1]), context)


def _bar(total: int):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="update")

    def progress(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done == total:
            bar.close()
    return progress
