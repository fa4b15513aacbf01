"""`python -m cllm unlikelihood`: load, measure, fine-tune, measure again, save with the model card extended."""
from __future__ import annotations

import shlex
from pathlib import Path

from cllm.checkpoint import save_pretrained_atomic
from cllm.decode import encode_prompt
from cllm.jacobi import greedy_decode
from cllm.models import load_model, resolve_source
from cllm.pretrain import perplexity
from cllm.prompts import read_prompts
from cllm.train_run import read_ar_text
from cllm.unlikelihood import UnlikelihoodConfig, card_section, measure, run_unlikelihood


def unlikelihood_and_save(args) -> str:
    config = UnlikelihoodConfig(steps=args.steps, lr=args.lr, alpha=args.alpha, batch_size=args.batch_size,
                                seed=args.seed)
    if args.text != "stdlib" and not Path(args.text).is_file():
        raise ValueError(f"--text {args.text}: no such file (give a UTF-8 text file, or stdlib)")
    prompt_texts, heldout_texts = read_prompts(args.prompts), read_prompts(args.heldout)  # checked before the slow load
    loaded = load_model(args.model, args.device)
    prompts = [encode_prompt(loaded, p) for p in prompt_texts]
    heldout = [encode_prompt(loaded, p) for p in heldout_texts]
    text = read_ar_text(args.text, loaded.tokenizer)
    heldout_text = heldout_stdlib_rows(loaded.tokenizer) if args.text == "stdlib" else None
    before = measure_all(loaded, heldout, heldout_text)
    result = run_unlikelihood(loaded, text, prompts, config, progress=_bar(config.steps))
    after = measure_all(loaded, heldout, heldout_text)
    samples = [(p, loaded.tokenizer.decode(greedy_decode(loaded.model, ids, 64, loaded.eos_token_id).tokens))
               for p, ids in zip(heldout_texts[:3], heldout)]
    source_card = Path(resolve_source(args.model)) / "README.md"
    card = source_card.read_text(encoding="utf-8") if source_card.is_file() else f"# {args.model}\n"
    command = "python -m cllm unlikelihood " + shlex.join(
        ["--model", args.model, "--out", args.out, "--steps", str(args.steps), "--lr", str(args.lr),
         "--alpha", str(args.alpha), "--batch-size", str(args.batch_size), "--seed", str(args.seed)])
    save_pretrained_atomic(loaded.model.float().cpu(), loaded.tokenizer, args.out,
                           card + card_section(result, before, after, command, samples))
    return (f"saved {args.out}: {config.steps} updates in {result['minutes']:.1f} min; held-out looping "
            f"{before['repeats']:.0%} -> {after['repeats']:.0%}, perplexity on the held-out prompts "
            f"{before['perplexity']:.2f} -> {after['perplexity']:.2f}")


def heldout_stdlib_rows(tokenizer, context: int = 512):
    """The held-out split of the stdlib (the files pretraining never saw), as rows for perplexity."""
    from cllm.pretrain import PretrainConfig, corpus_texts, split_corpus, token_chunks

    return token_chunks(tokenizer, corpus_texts(split_corpus(PretrainConfig())[1]), context)


def measure_all(loaded, heldout: list[list[int]], heldout_text) -> dict:
    figures = measure(loaded, heldout)
    if heldout_text is not None:
        figures["text_perplexity"] = perplexity(loaded.model, heldout_text)
    return figures


def _bar(total: int):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="update")

    def progress(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done == total:
            bar.close()
    return progress
