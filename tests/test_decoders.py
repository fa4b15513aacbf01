"""The decoders beyond Jacobi: each == greedy AR token for token; cached == its uncached reference record for
record; greedy acceptance, the pool and the lookup search on hand-made cases; the record's version 2."""
from __future__ import annotations

import random

import pytest
import torch

from cllm.decoders import DECODERS, decode, decoder_name, make_config, own_fields
from cllm.decoders.lookup import LookupConfig, lookup_draft
from cllm.decoders.multiblock import MultiblockConfig, follower_due
from cllm.decoders.recycle import NgramPool, RecycleConfig, recycle_step, recycled_guess
from cllm.decoders.reference import REFERENCES
from cllm.decoders.verify import accept, best, keep_length, reference_pass, tree_pass
from cllm.jacobi import INITS, CachedLM, JacobiConfig, greedy_decode, jacobi_decode
from conftest import VOCAB, tiny_model

CASES = 10  # per architecture and decoder (the full suite runs on 2 shared cores)
OTHERS = ("recycle", "multiblock", "lookup")


def random_config(name: str, seed: int):
    rng = random.Random(seed)
    prompt = [rng.randrange(VOCAB) for _ in range(rng.choice([1, 2, 5, 12, 30]))]
    if rng.random() < 0.5:  # repeated text: lookup and the pool find drafts in it
        prompt = (prompt * 4)[:40]
    common = {"n": rng.choice([1, 2, 3, 4, 7, 16, 64]), "max_new_tokens": rng.randint(1, 48),
              "seed": rng.randrange(10**6), "init": rng.choice(INITS)}
    own = {"recycle": {"pool_size": rng.choice([1, 2, 4, 8]), "ngram": rng.choice([2, 3, 5, 8]),
                       "pool_guess": rng.random() < 0.7, "ratio": rng.choice([0.1, 0.5, 0.85, 1.0]),
                       "pool_prompt": rng.random() < 0.7, "prompt_lookup": rng.random() < 0.7},
           "multiblock": {"ratio": rng.choice([0.1, 0.5, 0.85, 1.0])},
           "lookup": {"draft_len": rng.choice([1, 3, 10, 20]), "max_ngram": rng.choice([1, 2, 3])}}[name]
    return prompt, make_config(name, **common, **own)


def assert_matches_reference(model, name, prompt, config, eos):
    traj = decode(model, prompt, config, eos)
    reference = REFERENCES[name](model, prompt, config, eos)
    assert len(traj.blocks) == len(reference)
    for block, ref in zip(traj.blocks, reference):
        assert (block.states, block.drafts, block.winners, block.gains) == (ref.states, ref.drafts, ref.winners, ref.gains)
        assert len(block.iteration_seconds) == block.iterations == len(block.gains)
        assert sum(block.gains) >= block.width and all(g >= 1 for g in block.gains)  # >= 1 token per pass
    return traj


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("case", range(CASES))
def test_decoder_equals_greedy_ar_and_its_reference(arch_model, name, case):
    prompt, config = random_config(name, case)
    traj = assert_matches_reference(arch_model, name, prompt, config, eos=None)
    assert traj.tokens == greedy_decode(arch_model, prompt, config.max_new_tokens).tokens
    assert traj.meta.decoder == name and traj.meta.options  # the options are recorded to reproduce the run


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("case", range(4))
def test_eos_cuts_every_decoder(arch_model, name, case):
    prompt, config = random_config(name, 500 + case)
    config = make_config(name, **{**config.__dict__, "n": 8, "max_new_tokens": 40})
    free_run = greedy_decode(arch_model, prompt, 40).tokens
    eos = free_run[min(3 * case + 2, 39)]  # a token the model will emit, often mid-block or mid-draft
    traj = assert_matches_reference(arch_model, name, prompt, config, eos)
    assert traj.tokens == free_run[: free_run.index(eos) + 1]


def test_float32_models_also_match():
    model = tiny_model("qwen2", seed=5, dtype=torch.float32)
    for case in range(3):
        for name in OTHERS:
            prompt, config = random_config(name, 900 + case)
            assert decode(model, prompt, config).tokens == greedy_decode(model, prompt, config.max_new_tokens).tokens


def test_recycled_drafts_do_win():
    """The pool is not decoration: on repetitive continuations pool drafts win passes and save passes."""
    model, wins, saved = tiny_model("llama", seed=2), 0, 0
    for case in range(4):
        prompt, _ = random_config("recycle", 40 + case)
        traj = decode(model, prompt, RecycleConfig(n=16, max_new_tokens=48, seed=case))
        plain = jacobi_decode(model, prompt, JacobiConfig(n=16, max_new_tokens=48, seed=case))
        wins += sum(w >= 0 for b in traj.blocks for w in b.winners)
        saved += plain.forward_passes - traj.forward_passes
    assert wins > 0 and saved > 0


def test_multiblock_at_ratio_one_is_jacobi():
    model = tiny_model("gpt2", seed=1)
    for case in range(5):
        prompt, config = random_config("multiblock", 70 + case)
        jacobi = jacobi_decode(model, prompt, JacobiConfig(n=config.n, max_new_tokens=config.max_new_tokens,
                                                          seed=config.seed, init=config.init))
        multi = decode(model, prompt, MultiblockConfig(**{**config.__dict__, "ratio": 1.0}))
        assert [b.states for b in multi.blocks] == [b.states for b in jacobi.blocks]


def test_multiblock_promotes_the_second_block():
    model = tiny_model("llama", seed=4)
    traj = decode(model, list(range(10)), MultiblockConfig(n=8, max_new_tokens=32, seed=3, ratio=0.5))
    first, second = traj.blocks[0], traj.blocks[1]
    drafted = [d[0] for d in first.drafts if d]
    assert drafted and second.states[0] != drafted[0]  # it rode behind and was refined on the way
    assert len(second.states[0]) == 8


def test_tree_pass_equals_full_recomputation(arch_model):
    rng = random.Random(3)
    for _ in range(6):
        ctx = [rng.randrange(VOCAB) for _ in range(rng.randint(2, 20))]
        trunk = [rng.randrange(VOCAB) for _ in range(rng.randint(0, 6))]
        branches = [[rng.randrange(VOCAB) for _ in range(rng.randint(1, 5))] for _ in range(rng.randint(0, 3))]
        lm, cached = CachedLM(arch_model), rng.randint(0, len(ctx) - 1)  # any prefix short of the last token
        with torch.inference_mode():
            if cached:
                lm.feed(ctx[:cached])
            got = tree_pass(lm, ctx, trunk, branches)
            want = reference_pass(arch_model, ctx, trunk, branches)
        assert (got.trunk, got.branches) == (want.trunk, want.branches)


# --- acceptance, pool and lookup on hand-made cases -------------------------------------------------


@pytest.mark.parametrize("draft, preds, tokens, matched", [
    ([5, 6, 7], [5, 6, 9, 1], [5, 6, 9], 2),  # longest verified prefix + the pass's own next token
    ([5, 6, 7], [5, 6, 7, 1], [5, 6, 7, 1], 3),  # all verified: bonus token after the draft
    ([4, 6, 7], [5, 6, 7, 1], [5], 0),  # first token wrong: one token, as AR
    ([], [8], [8], 0),  # no draft (empty pool, no lookup match): an AR step
    ([5, 6, 7], [5, 6, 7], [5, 6, 7], 3),  # Jacobi's own state fills the block: no slot for a bonus
])
def test_accept(draft, preds, tokens, matched):
    assert accept(draft, preds) == type(accept([], [0]))(tokens, matched)


def test_best_prefers_longest_then_earliest():
    results = [accept([1], [1, 2]), accept([1, 2], [1, 2, 3]), accept([1, 2], [1, 2, 4]), accept([], [1])]
    assert best(results) == 1  # two tie at 3 tokens: the earlier wins
    assert best([accept([], [3])]) == 0
    winner, tokens = recycle_step([5, 0, 0], [5, 9, 9], [[5, 6], [5, 6]], [[5, 6, 2], [5, 6, 3]])
    assert (winner, tokens) == (0, [5, 6, 2])  # first pool draft; -1 would be the block's own state
    winner, tokens = recycle_step([5, 6, 0], [5, 6, 9], [[5, 6]], [[5, 6, 2]])
    assert (winner, tokens) == (-1, [5, 6, 0])  # a tie with the own state goes to the own state


def test_pool_keeps_the_newest_per_key_and_fits_the_room():
    pool = NgramPool(size=2, ngram=3)
    pool.add([1, 2, 3, 1, 4, 5, 1, 2, 3])
    assert pool.grams[1] == [(2, 3), (4, 5)]  # (2, 3) seen again: moved to the front; at most 2 per key
    assert pool.drafts(1, room=1, skip=[9]) == [[2], [4]]  # cut to the block's room
    assert pool.drafts(1, room=5, skip=[2, 3, 7]) == [[4, 5]]  # the block's own draft already covers [2, 3]
    assert pool.drafts(7, room=5, skip=[]) == [] and pool.drafts(1, room=0, skip=[]) == []  # empty pool / no room
    assert pool.chain(1, 5) == [2, 3, 1, 4, 5] and pool.chain(3, 2) == [1, 4]  # newest n-gram of each key in turn
    short = NgramPool(size=2, ngram=3)
    short.add([6, 7, 8])
    assert recycled_guess(short, [5, 6], [0] * 5, True) == [7, 8, 0, 0, 0]  # the chain ends: the guess goes on
    assert recycled_guess(short, [5, 6], [0] * 5, False) == [0] * 5 and recycled_guess(short, [9], [0] * 2, True) == [0] * 2


def test_pass_drafts_add_prompt_lookups_draft_after_the_pool():
    from cllm.decoders.recycle import pass_drafts

    pool = NgramPool(size=2, ngram=3)
    pool.add([4, 8, 9])
    ctx = [1, 2, 3, 4, 5, 6, 1, 2]  # [1, 2] occurred before: lookup drafts what followed it
    assert pass_drafts(pool, ctx, room=4, own=[0, 0, 0, 0], lookup=True) == [[3, 4, 5, 6]]  # pool has no key 2
    assert pass_drafts(pool, ctx, room=2, own=[0, 0], lookup=True) == [[3, 4]]  # cut to the block's room
    assert pass_drafts(pool, ctx, room=4, own=[3, 4, 5, 6], lookup=True) == []  # the own state already has it
    assert pass_drafts(pool, ctx, room=4, own=[0], lookup=False) == []
    ctx = [4, 8, 9, 7, 4]  # key 4: the pool's [8, 9] first, then lookup's [8, 9, 7, 4] (the earliest match)
    assert pass_drafts(pool, ctx, room=5, own=[0], lookup=True) == [[8, 9], [8, 9, 7, 4]]
    assert pass_drafts(pool, ctx, room=2, own=[0], lookup=True) == [[8, 9]]  # cut alike: no repeat


def test_the_prompt_seeds_the_pool():
    """A prompt that repeats: with each of the two prompt sources on or off, recycle equals greedy and its
    uncached reference and records its options; a pool seeded with the prompt chains the prompt's own n-grams
    into the first guess. (Which draft wins is checked on hand-made cases above.)"""
    model = tiny_model("llama", seed=3)
    prompt = [5, 6, 7, 8, 9, 10, 11, 12] * 3 + [5, 6]
    greedy = greedy_decode(model, prompt, 24).tokens
    for pool_prompt, prompt_lookup in ((True, True), (True, False), (False, True), (False, False)):
        config = RecycleConfig(n=8, max_new_tokens=24, pool_prompt=pool_prompt, prompt_lookup=prompt_lookup)
        traj = decode(model, prompt, config)
        assert traj.tokens == greedy
        assert traj.meta.options["pool_prompt"] is pool_prompt and traj.meta.options["prompt_lookup"] is prompt_lookup
        assert_matches_reference(model, "recycle", prompt, config, None)
    chained = recycled_guess(_seeded(prompt), prompt, [0] * 8, True)
    assert chained[:4] == [7, 8, 9, 10]  # the prompt's n-grams chained from its last token, 6


def _seeded(prompt):
    pool = NgramPool(4, 5)
    pool.add(prompt)
    return pool


def test_lookup_draft():
    assert lookup_draft([1, 2, 3, 4, 1, 2], 3, 2) == [3, 4, 1]  # the earliest match of [1, 2]
    assert lookup_draft([1, 2, 3, 9, 2], 5, 2) == [3, 9, 2]  # no [9, 2] earlier: falls back to [2]
    assert lookup_draft([1, 2, 3], 5, 2) == []  # nothing repeats
    assert lookup_draft([7, 7], 4, 2) == [7]  # the continuation stops at the sequence's end
    assert lookup_draft([5], 4, 2) == []


def test_keep_length_and_follower_due():
    assert keep_length(3, [4, 5, 6, 7], [0, 1, 2, 4, 5, 9, 9]) == 5  # fed tokens that were right, before a wrong one
    assert keep_length(3, [4, 5], [0, 1, 2, 4, 5]) == 4  # never the last committed token: the next pass feeds it
    assert [follower_due(f, 16, 0.85) for f in (13, 14, 16)] == [False, True, False]


# --- configs, registry, records ------------------------------------------------------------------------


def test_registry_and_configs():
    assert set(DECODERS) == {"jacobi", *OTHERS}
    assert decoder_name(JacobiConfig()) == "jacobi" and decoder_name(LookupConfig()) == "lookup"
    assert RecycleConfig().pool_size == 4 and MultiblockConfig().ratio == 0.85
    for kwargs, message in [({"pool_size": 0}, "pool_size"), ({"ngram": 1}, "ngram")]:
        with pytest.raises(ValueError, match=message):
            RecycleConfig(**kwargs)
    for ratio in (0, 1.5, True):
        with pytest.raises(ValueError, match="ratio"):
            MultiblockConfig(ratio=ratio)
    with pytest.raises(ValueError, match="draft_len"):
        LookupConfig(draft_len=0)
    with pytest.raises(ValueError, match="no option ratio"):
        make_config("lookup", ratio=0.5)
    with pytest.raises(ValueError, match="unknown decoder"):
        make_config("beam")


def test_records_round_trip_as_version_2(tmp_path):
    from cllm.trajectory import load_trajectory, save_trajectory, trajectory_to_dict

    model = tiny_model("llama", seed=2)
    for name in OTHERS:
        prompt, config = random_config(name, 40)
        traj = decode(model, prompt, config)
        assert trajectory_to_dict(traj)["version"] == 2
        back = load_trajectory(save_trajectory(traj, tmp_path / f"{name}.json"))
        assert back.blocks == traj.blocks and back.meta == traj.meta
    plain = jacobi_decode(model, [1, 2, 3], JacobiConfig(n=4, max_new_tokens=8))
    data = trajectory_to_dict(plain)  # plain Jacobi stays version 1: older readers keep reading it
    assert data["version"] == 1 and "decoder" not in data["meta"] and "drafts" not in data["blocks"][0]
    assert load_trajectory(save_trajectory(plain, tmp_path / "j.json")).meta.decoder == "jacobi"


def _v2_dict():
    from cllm.trajectory import trajectory_to_dict

    traj = decode(tiny_model("llama", seed=2), [1, 2, 1, 2, 1], LookupConfig(n=4, max_new_tokens=8))
    return trajectory_to_dict(traj)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(version=1), "need version 2"),
    (lambda d: d["blocks"][0].pop("gains"), "drafts, winners and gains together"),
    (lambda d: d["blocks"][0]["winners"].append(0), "one entry per iteration"),
    (lambda d: d["blocks"][0]["winners"].__setitem__(0, 5), "out of range"),
    (lambda d: d["blocks"][0]["drafts"].__setitem__(0, [[10**6]]), "outside the vocabulary"),
    (lambda d: d["meta"].update(options={"pool size": 1}), "short names"),
    (lambda d: d["meta"].update(options={"ratio": "x"}), "finite number or true/false"),
    (lambda d: d["meta"].update(decoder=7), "meta.decoder must be a string"),
])
def test_bad_version_2_records_are_clear_errors(change, message):
    from cllm.trajectory import TrajectoryError, trajectory_from_dict

    data = _v2_dict()
    trajectory_from_dict(data)  # the unchanged record reads
    change(data)
    with pytest.raises(TrajectoryError, match=message):
        trajectory_from_dict(data)


def decoder_options(name: str) -> list[str]:
    return [f.name for f in own_fields(name)]


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, flags", [("recycle", ["--pool-size", "2", "--ngram", "3", "--pool-guess", "false"]),
                                         ("multiblock", ["--ratio", "0.5"]), ("lookup", ["--draft-len", "4"])])
def test_cli_decode_with_each_decoder(tiny_model_dir, tmp_path, capsys, name, flags):
    import json

    from cllm.cli import main
    from cllm.trajectory import load_trajectory

    save = tmp_path / "t.json"
    code = main(["decode", "--model", str(tiny_model_dir), "--prompt", "for i in range(10):\n    print(i)\n",
                 "--n", "4", "--max-new-tokens", "12", "--decoder", name, *flags, "--check-ar", "--json", "--save", str(save)])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["decoder"] == name and data["matches_ar"] is True
    assert all(len(b["gains"]) == len(b["states"]) - 1 for b in data["blocks"])
    given = {k.lstrip("-").replace("-", "_"): False if v == "false" else float(v) for k, v in zip(flags[::2], flags[1::2])}
    options = load_trajectory(save).meta.options
    assert options == data["options"] and {k: options[k] for k in given} == given  # flags given, others default
    assert len(options) == len(decoder_options(name))

def test_cli_rejects_another_decoders_option(tiny_model_dir, capsys):
    from cllm.cli import main

    code = main(["decode", "--model", str(tiny_model_dir), "--prompt", "x", "--decoder", "lookup", "--pool-size", "3"])
    assert code == 2 and "--pool-size is not an option of lookup (it is one of recycle)" in capsys.readouterr().err


@pytest.mark.parametrize("name", ("jacobi",) + OTHERS)
@pytest.mark.parametrize("case", range(4))
def test_runs_stepped_in_turns_equal_runs_decoded_alone(arch_model, name, case):
    """A live race decodes its first block in one turn and the rest in a later one, each step maybe in another
    thread (cllm.jacobi.BlockRun): two runs of one model stepped in alternation, each step in a thread of its own,
    each equal the run decoded alone; in odd cases an EOS inside the output ends a run early."""
    from concurrent.futures import ThreadPoolExecutor

    from cllm.decoders import start_decode
    asks = [random_config("multiblock" if name == "jacobi" else name, 100 + 2 * case + i) for i in range(2)]
    if name == "jacobi":  # random_config makes the other decoders' configs: keep the settings they share
        asks = [(p, JacobiConfig(c.n, c.max_new_tokens, c.seed, c.init)) for p, c in asks]
    eos = None
    if case % 2:  # a token the first run writes half-way (its greedy output is what every decoder writes)
        out = greedy_decode(arch_model, asks[0][0], asks[0][1].max_new_tokens).tokens
        eos = out[len(out) // 2]
    runs = [start_decode(arch_model, prompt, config, eos) for prompt, config in asks]
    while not all(run.done for run in runs):
        for run in runs:
            if not run.done:
                with ThreadPoolExecutor(1) as thread:
                    thread.submit(run.step).result()
    for run, (prompt, config) in zip(runs, asks):
        alone = decode(arch_model, prompt, config, eos)
        stepped = run.trajectory()
        assert [(b.states, b.drafts, b.winners, b.gains) for b in stepped.blocks] == \
            [(b.states, b.drafts, b.winners, b.gains) for b in alone.blocks]
        assert (stepped.meta.decoder, stepped.meta.options) == (alone.meta.decoder, alone.meta.options)
    if eos is not None:
        assert runs[0].trajectory().tokens[-1] == eos
    with pytest.raises(RuntimeError, match="the run is done"):
        runs[0].step()


@pytest.mark.parametrize("name", ("jacobi",) + OTHERS)
def test_a_parked_run_holds_its_model_weakly_and_goes_on_where_it_stopped(name):
    """Between a race's turns a run is parked (BlockRun.park): it refuses to step, lets the model go (a model the
    cache dropped is freed), resumes only with the very model it had, and then equals the run decoded alone;
    a finished run drops its KV cache."""
    import copy
    import gc
    import weakref

    from cllm.decoders import start_decode
    model = tiny_model("llama", seed=5)
    prompt, config = random_config("multiblock" if name == "jacobi" else name, 7)
    config = JacobiConfig(config.n, config.max_new_tokens, config.seed, config.init) if name == "jacobi" else config
    run = start_decode(model, prompt, config, None)
    run.step()
    run.park()
    with pytest.raises(RuntimeError, match="parked"):
        run.step()
    assert not run.resume(copy.deepcopy(model)) and run.model is None  # the same weights in another object
    assert run.resume(model)
    stepped = run.finish()
    assert [b.states for b in stepped.blocks] == [b.states for b in decode(model, prompt, config, None).blocks]
    assert run.lm is None  # done: the cache is gone, the record stays
    gone = start_decode(copy.deepcopy(model), prompt, config, None)
    held = weakref.ref(gone.model)
    gone.park()
    gc.collect()
    assert held() is None and not gone.resume(model)  # nothing but the parked run held that model: freed


def test_a_run_whose_step_failed_refuses_to_go_on():
    """A step that raised may have left a block's tokens in the cache that the sequence lacks: stepping on
    from there would decode from the wrong cache, so the run says it is broken instead."""
    from cllm.decoders import start_decode
    model = tiny_model("llama", seed=6)
    run = start_decode(model, [1, 2, 3], JacobiConfig(n=4, max_new_tokens=12), None)
    block = run.decoder.block

    def fails_once(*args):
        run.decoder.block = block
        raise KeyboardInterrupt  # e.g. a visitor's cancel arriving inside the model call

    run.decoder.block = fails_once
    with pytest.raises(KeyboardInterrupt):
        run.step()
    with pytest.raises(RuntimeError, match="broken"):
        run.step()
