"""The app's callbacks called directly: a run yields the grids and then the AR check; every bad input,
missing model or bad file becomes a gr.Error with a clear message; saves and the gallery."""
import os
import time
from pathlib import Path

import gradio as gr
import pytest

import app
from cllm.decode import decode_prompt
from cllm.race import load_race
from cllm.ui import common, explore_tab, gallery_tab


def no_progress(*args, **kwargs):
    pass


@pytest.fixture
def gallery(tmp_path, monkeypatch):
    monkeypatch.setenv("CLLM_GALLERY_DIR", str(tmp_path))
    return tmp_path


def run(pair, prompt="def f(x):", n=4, max_new=12, seed=0, init="prompt"):
    return list(explore_tab.run_race(prompt, *pair, n, max_new, seed, init, progress=no_progress))


def test_app_builds_with_its_tabs():
    demo = app.build_app()
    assert isinstance(demo, gr.Blocks)
    names = {d.api_name for d in demo.fns.values()}
    assert {"run", "save", "load", "upload", "save_upload"} <= names


def test_run_yields_a_preview_then_the_runs_then_the_ar_check(tiny_pair):
    (html0, status0, file0, race0), (html1, _, file1, race1), (html2, status2, file2, race2) = run(tiny_pair)
    assert 'data-partial="1"' in html0 and html0.count('class="cr-grid"') == 2  # one block per model
    assert html1.count('class="cr-panel"') == 2 and 'data-partial="0"' in html1 and "comparing with greedy" in html1
    assert file0 is file1 is None and race0 is race1 is None  # nothing to save before the check
    assert 'class="s-w"' in html1 and ("s-c" in html1 or "s-f" in html1)
    run_id = html0.split('data-run="')[1].split('"')[0]
    assert f'data-run="{run_id}"' in html1 and f'data-run="{run_id}"' in html2  # one run: the player keeps its place
    assert html2.count("✓ identical to greedy") == 2 and "same text as greedy ✓" in status2
    assert race2.base.matches_ar and race2.cllm.matches_ar
    assert load_race(file2).cllm.tokens == race2.cllm.tokens


@pytest.mark.parametrize("decoder, options", [("jacobi", {}), ("multiblock", {"ratio": 0.5}),
                                              ("recycle", {"ratio": 0.5}), ("lookup", {})])
def test_a_race_split_across_two_turns_decodes_each_block_once(tiny_pair, monkeypatch, decoder, options):
    """The first block's turn, then the rest's, as queued_race runs them on a CPU: the preview is the whole
    race's first block (drafts of a second block included) and the race equals one decode of each side."""
    from cllm.decoders import make_config
    from cllm.jacobi import BlockRun
    from cllm.models import cached_model

    config = make_config(decoder, n=4, max_new_tokens=16, seed=3, **options)
    live = explore_tab.LiveAsk("class A:", list(tiny_pair), [config, config], False, [])
    steps, step = [], BlockRun.step
    monkeypatch.setattr(BlockRun, "step", lambda self: steps.append(1) or step(self))
    started = []
    ((_, status, _, _),) = list(explore_tab.live_race(live, no_progress, rest=False, started=started))
    preview = [run.trajectory() for run in started]
    assert all(run.blocks.model is None for run in started)  # parked while waiting: the model cache may drop them
    *_, (_, _, _, race) = list(explore_tab.live_race(live, no_progress, first_block=False, started=started))
    assert "first block is on screen" in status and len(steps) == sum(len(t.blocks) for t in (race.base, race.cllm))
    assert not started  # decoded: the runs and their caches are let go
    for part, whole, name in zip(preview, (race.base, race.cllm), tiny_pair):
        alone = decode_prompt(cached_model(name), "class A:", config, check_ar=False)
        assert len(part.blocks) == 1 and part.blocks[0] is whole.blocks[0]  # shown, then kept
        assert [b.states for b in whole.blocks] == [b.states for b in alone.blocks] and whole.matches_ar
        assert [b.drafts for b in whole.blocks] == [b.drafts for b in alone.blocks]


def test_a_race_whose_model_was_loaded_again_between_its_turns_starts_over(tiny_pair, monkeypatch):
    """The model cache keeps 4 models: other visitors' may push this race's out while it waits. Its second turn
    then decodes with the models loaded now, from the prompt, and lets the old runs (and models) go."""
    import copy
    from dataclasses import replace

    from cllm.jacobi import JacobiConfig

    config = JacobiConfig(n=4, max_new_tokens=12, seed=2)
    live = explore_tab.LiveAsk("def f(x):", list(tiny_pair), [config, config], False, [])
    started = []
    list(explore_tab.live_race(live, no_progress, rest=False, started=started))
    first_runs = list(started)
    loaded = explore_tab.load_models

    def reloaded(names, progress):  # the same weights in new module objects, as a second load makes them
        return [replace(m, model=copy.deepcopy(m.model)) for m in loaded(names, progress)]

    monkeypatch.setattr(explore_tab, "load_models", reloaded)
    *_, (_, _, _, race) = list(explore_tab.live_race(live, no_progress, first_block=False, started=started))
    assert race.base.matches_ar and race.cllm.matches_ar
    assert race.base.blocks[0] is not first_runs[0].blocks.blocks[0]  # decoded again, with the models of now


def test_a_race_that_ends_in_its_first_block_is_finished_in_that_turn(tiny_pair, monkeypatch):
    """Both sides write an EOS in their first block: the whole race, checked, comes in the first block's turn,
    and queued_race is left no second turn to wait for (started is empty)."""
    from dataclasses import replace

    from cllm.jacobi import JacobiConfig, greedy_decode

    config = JacobiConfig(n=4, max_new_tokens=16, seed=1)
    loaded = explore_tab.load_models

    def first_token_ends(names, progress):  # each model's first greedy token made its EOS
        models = loaded(names, progress)
        firsts = [greedy_decode(m.model, m.tokenizer("x = ")["input_ids"], 1).tokens[0] for m in models]
        return [replace(m, eos_token_id=t) for m, t in zip(models, firsts)]

    monkeypatch.setattr(explore_tab, "load_models", first_token_ends)
    live = explore_tab.LiveAsk("x = ", list(tiny_pair), [config, config], False, [])
    started = []
    outs = list(explore_tab.live_race(live, no_progress, rest=False, started=started))
    *_, (_, status, _, race) = outs
    assert len(outs) == 3 and not started and "same text as greedy" in status
    assert len(race.base.blocks) == len(race.cllm.blocks) == 1 and race.base.matches_ar and race.cllm.matches_ar


def test_no_preview_when_the_answer_is_one_block(tiny_pair):
    assert len(run(tiny_pair, n=8, max_new=8)) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": "  "}, "the prompt is empty"),
    ({"n": 0}, "block size n must be a whole number from 1 to 64"),
    ({"n": 65}, "block size n must be a whole number from 1 to 64"),
    ({"n": 2.5}, "block size n must be a whole number"),
    ({"max_new": 10**6}, "max new tokens must be a whole number from 1 to 512"),
    ({"max_new": None}, "max new tokens is empty"),
    ({"max_new": 500}, "exceeds the model's context of 128 tokens"),
    ({"seed": -1}, "seed must be"),
    ({"init": "zeros"}, "init must be one of prompt, vocab, last"),
])
def test_bad_input_is_a_clear_error(tiny_pair, kwargs, message):
    with pytest.raises(gr.Error, match=message):
        run(tiny_pair, **kwargs)


@pytest.mark.parametrize("pair, message", [
    (("/nonexistent/model", None), "no model folder at '/nonexistent/model'"),
    (("", None), "no base model given"),
    ((None, " "), "no CLLM model given"),
    (("tiny-python", None), "bundled model 'tiny-python' is missing"),  # a checkout without assets/models
])
def test_unknown_or_missing_model_is_a_clear_error(tiny_pair, pair, message, monkeypatch, tmp_path):
    from cllm import models

    pair = tuple(tiny_pair[i] if p is None else p for i, p in enumerate(pair))
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)  # the bundled pair not installed
    models.cached_model.cache_clear()
    try:
        with pytest.raises(gr.Error, match=message):
            run(pair)
    finally:
        models.cached_model.cache_clear()  # later tests load the real pair again


def test_save_and_replay_from_the_gallery(tiny_pair, gallery):
    race = run(tiny_pair)[-1][3]
    with pytest.raises(gr.Error, match="nothing to save yet"):
        common.save_run(None, "x")
    with pytest.raises(gr.Error, match="not a valid name"):
        common.save_run(race, "../escape")
    assert "Saved as **first**" in common.save_run(race, "first")
    with pytest.raises(gr.Error, match="already exists"):
        common.save_run(race, "first")
    choices, rows = gallery_tab.gallery_listing()
    assert [c[1] for c in choices] == ["first"] and rows[0][0] == "first" and rows[0][4] == 4
    html, status, loaded = gallery_tab.load_saved("first")
    assert html.count('class="cr-panel"') == 2 and loaded.cllm.tokens == race.cllm.tokens and "**CLLM**" in status
    with pytest.raises(gr.Error, match="no saved run named 'nope'"):
        gallery_tab.load_saved("nope")
    with pytest.raises(gr.Error, match="not a valid name"):
        gallery_tab.load_saved("../../etc/passwd")


def test_upload_is_validated(tiny_pair, gallery, tmp_path):
    race = run(tiny_pair)[-1][3]
    good = common.race_file(race, "up")
    assert gallery_tab.load_upload(good)[2].title == race.title
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "cllm-race", "version": 1, "base": {}}')
    with pytest.raises(gr.Error, match="base run: not a trajectory file"):
        gallery_tab.load_upload(str(bad))
    with pytest.raises(gr.Error, match="no file received"):
        gallery_tab.load_upload(None)
    (gallery / "broken.json").write_text("not json")
    assert "unreadable" in gallery_tab.gallery_listing()[1][0][1]


def test_download_files_share_one_root_and_old_ones_go(monkeypatch, tmp_path):
    monkeypatch.setattr(common.tempfile, "tempdir", str(tmp_path))
    first = Path(common.download_file("stats.csv", "a,b\n1,2\n"))
    second = Path(common.download_file("stats.csv", "a,b\n3,4\n"))
    assert first != second and first.read_text() == "a,b\n1,2\n" and first.parent.parent == tmp_path / "cllm-explorer-downloads"
    hour_ago = time.time() - 3700
    os.utime(first.parent, (hour_ago, hour_ago))
    common.download_file("race.json", "{}")
    assert not first.exists() and second.exists()


def test_pair_picker_and_examples(monkeypatch, tmp_path):
    assert explore_tab.pick_pair("tiny-python|tiny-python-cllm") == ("tiny-python", "tiny-python-cllm", 16)
    assert all(isinstance(u, dict) for u in explore_tab.pick_pair(explore_tab.CUSTOM_PAIR))
    assert common.pair_choices()[0][1] == "tiny-python|tiny-python-cllm"
    monkeypatch.setattr(explore_tab, "HELDOUT_PROMPTS", tmp_path / "absent.jsonl")
    assert explore_tab.example_prompts() == explore_tab.FALLBACK_PROMPTS


def test_the_examples_lead_with_the_real_pairs_recorded_races_when_that_pair_is_on(monkeypatch):
    from cllm import models

    monkeypatch.setattr(explore_tab, "app_pair", lambda: (models.REAL_BASE, models.REAL_CLLM))
    rows = explore_tab.example_rows()
    races = [load_race(f"saved_trajectories/{name}.json") for name in common.REAL_EXAMPLES]
    k = len(races)
    assert k == 4 and rows[:k] == [[r.prompt, r.base.meta.chat] for r in races] and rows[0][1] is True  # English: chat
    assert rows[k:] == [[p, False] for p in explore_tab.example_prompts()]
    assert all(r.base.matches_ar and r.cllm.matches_ar for r in races)  # what a live run would write
    monkeypatch.setattr(explore_tab, "app_pair", lambda: (models.DEFAULT_BASE, models.DEFAULT_CLLM))
    assert explore_tab.example_rows() == rows[k:]
    assert explore_tab.example_label(*rows[0]).endswith("(chat)")
    assert explore_tab.example_label(*rows[1]).startswith("def has_close_elements(")  # not its import line


def test_the_speed_up_says_when_the_texts_differ():
    from cllm.race import Race
    from cllm.stats import differ_from
    from cllm.trajectory import Block, RunMeta, Trajectory

    def run(tokens, passes, ar_seconds=None):
        blocks = [Block([[0] * len(tokens)] + [tokens] * passes, [0.01] * passes)]
        return Trajectory(RunMeta(n=4, vocab_size=10), [1], blocks, ar_tokens=tokens if ar_seconds else None,
                          ar_seconds=ar_seconds)

    same = common.race_summary(Race(run([1, 2, 3, 4], 4, 0.08), run([1, 2, 3, 4], 2, 0.08)))
    assert "**2.00×** · same text" in same and "texts differ" not in same
    assert "(2.00 tokens/pass vs 1.00 for its own greedy decoding; 4.00× the speed of its greedy decoding (faster)" in same
    slow = common.race_summary(Race(run([1, 2, 3, 4], 4, 0.02), run([1, 2, 3, 4], 4, 0.04)))
    assert "0.50× the speed of its greedy decoding (slower)" in slow and "1.00× the speed of its greedy decoding (as fast)" in slow
    differ = common.race_summary(Race(run([1, 2, 3, 4], 4), run([1, 2, 5, 4], 2)))
    assert "texts differ from token 3" in differ and "the speed of its greedy" not in differ
    assert differ_from([1, 2], [1, 2, 3]) == 2 and differ_from([1, 2], [1, 2]) is None
    shipped = load_race("saved_trajectories/heldout-01.json")  # a recorded pair that writes different code
    assert "texts differ from token 2" in common.race_summary(shipped)


def test_the_page_opens_on_the_landing_race_with_its_prompt_in_the_box():
    race = explore_tab.landing_race()
    assert race is not None and not race.base.tokens == []
    demo = app.build_app()
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert by_id["prompt"].value == race.prompt  # Run works at once
    player = by_id["explore-player"].value
    assert f'data-run="landing-{explore_tab.landing_name()}"' in player and "data-open" not in player  # plays from 0
    assert "Now playing" in by_id["explore-status"].value and "Learn" in by_id["explore-status"].value


def test_one_model_with_two_decoders_and_the_pair_with_any_decoder(tiny_pair):
    runs = list(explore_tab.run_race("def f(x):", *tiny_pair, 4, 12, 0, "prompt", False, common.MODES[1],
                                     "jacobi", "recycle", progress=no_progress))
    html, status, _, race = runs[-1]
    assert len(runs) == 3  # the first block on screen, the race, its greedy check
    assert race.base.meta.model == race.cllm.meta.model == tiny_pair[1]
    assert (race.base.meta.decoder, race.cllm.meta.decoder) == ("jacobi", "recycle")
    assert race.base.tokens == race.cllm.tokens == race.cllm.ar_tokens
    assert "Left (jacobi)" in status and "Right (recycle)" in status and "left ÷ right" in status
    assert "Decoder recycle" in html and 'class="cr-pass' in html
    runs = list(explore_tab.run_race("def f(x):", *tiny_pair, 4, 12, 0, "prompt", False, common.MODES[0],
                                     "multiblock", "lookup", progress=no_progress))
    assert len(runs) == 3 and 'data-partial="1"' in runs[0][0]  # a first block drafting the next one shows too
    race = runs[-1][-1]
    assert (race.base.meta.model, race.cllm.meta.model) == tuple(tiny_pair)
    assert race.base.matches_ar and race.cllm.matches_ar and "CLLM · lookup" in runs[-1][1]


def test_one_model_raced_with_one_decoder_is_left_and_right_and_checked_once(tiny_pair, monkeypatch):
    """The base against itself with the same decoder: no side is called CLLM, and greedy AR runs once."""
    from cllm import decode as decode_module
    calls = []
    real = decode_module.greedy_decode
    monkeypatch.setattr(decode_module, "greedy_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    html, status, _, race = list(explore_tab.run_race("def f(x):", *tiny_pair, 4, 12, 0, "prompt", False,
                                                      common.MODES[2], "jacobi", "jacobi", progress=no_progress))[-1]
    assert race.one_model and race.base.meta.model == tiny_pair[0]
    assert "Left (jacobi)" in status and "Right (jacobi)" in status and "CLLM" not in status
    assert "Consistency LLM" not in html and "one model raced twice" in html
    assert len(calls) == 1 and race.cllm.ar_tokens == race.base.ar_tokens == race.cllm.tokens


def test_another_seed_on_a_prompt_decoded_before_is_checked_with_its_greedy_output_again(tiny_pair, monkeypatch):
    """Greedy output depends on the model, prompt and budget only: a second race that differs in seed or n
    decodes its Jacobi runs but no greedy AR, and is still checked; a longer budget decodes greedy again."""
    from cllm import decode as decode_module
    calls = []
    real = decode_module.greedy_decode
    monkeypatch.setattr(decode_module, "greedy_decode", lambda *a, **k: calls.append(a[2]) or real(*a, **k))

    def race(n, max_new_tokens, seed):
        return list(explore_tab.run_race("def f(x):", *tiny_pair, n, max_new_tokens, seed, "prompt",
                                         progress=no_progress))[-1][-1]

    first = race(4, 12, 0)
    assert calls == [12, 12]  # the base and the CLLM
    again = race(3, 12, 5)
    assert calls == [12, 12] and again.base.meta.seed == 5 and again.base.meta.n == 3
    assert again.base.ar_tokens == first.base.ar_tokens and again.cllm.ar_tokens == first.cllm.ar_tokens
    assert again.base.matches_ar and again.cllm.matches_ar and again.base.ar_tokens != again.cllm.ar_tokens
    race(4, 13, 0)
    assert calls == [12, 12, 13, 13]


def test_the_gallery_names_a_decoder_other_than_jacobi(monkeypatch):
    from cllm.race import GALLERY_DIR

    monkeypatch.setenv("CLLM_GALLERY_DIR", str(GALLERY_DIR))  # the shipped races (another test may point elsewhere)
    rows = {r[0]: r for r in gallery_tab.gallery_listing()[1]}
    assert rows["recycle-01"][2:4] == ["tiny-python · recycle", "tiny-python-cllm · recycle"]
    assert rows["heldout-01"][2:4] == ["tiny-python", "tiny-python-cllm"]
    assert rows["heldout-01"][5:] == ["64 / 64", "1.12 / 2.37"]  # both models' counts, two decimals each
    assert rows["real-chat-01"][5] == "64 / 55"  # the CLLM stopped at EOS


@pytest.mark.parametrize("pair", [("smollm2-135m", "smollm2-135m-cllm"), ("tiny-python", "tiny-python-cllm")])
def test_the_gallery_lists_the_races_of_the_pair_the_app_opens_on_first(monkeypatch, pair):
    from cllm.race import GALLERY_DIR

    monkeypatch.setenv("CLLM_GALLERY_DIR", str(GALLERY_DIR))
    monkeypatch.setattr(gallery_tab, "app_pair", lambda: pair)
    rows = gallery_tab.gallery_listing()[1]
    leading = [r[0] for r in rows if [model.split(" · ")[0] for model in r[2:4]] == list(pair)]  # any decoder
    assert leading and [r[0] for r in rows[:len(leading)]] == leading == sorted(leading)
    assert [r[0] for r in rows[len(leading):]] == sorted(r[0] for r in rows[len(leading):])


@pytest.mark.parametrize("change, message", [({"mode": "both"}, "race must be one of"),
                                              ({"decoder_b": "beam"}, "decoder must be one of")])
def test_bad_race_mode_or_decoder_is_a_clear_error(tiny_pair, change, message):
    kwargs = {"mode": common.MODES[0], "decoder_a": "jacobi", "decoder_b": "jacobi"} | change
    with pytest.raises(gr.Error, match=message):
        list(explore_tab.run_race("def f(x):", *tiny_pair, 4, 8, 0, "prompt", False, progress=no_progress, **kwargs))
