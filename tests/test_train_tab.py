"""The Train tab's callbacks called directly: input checks as gr.Error, the recipe equals the CLI's run,
the live grid, and a saved model in Explore's pair picker."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import gradio as gr
import pytest

from cllm.cli import build_parser
from cllm.training.collect import CollectConfig
from cllm.options import given
from cllm.training.commands import train_config_of
from cllm.training.recipe import MINUTES_EPOCHS, RECIPES, cli_commands, recipe_for
from cllm.training.config import TrainConfig
from cllm.ui import common, explore_tab, train_tab, train_views
from test_session import job, wait_for


def write(tmp_path, name: str, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def check_collect(*args):
    with common.user_errors():
        return train_tab.collect_job(*args)


@pytest.mark.parametrize("name, data, message", [
    ("empty.txt", "", "holds no prompts"),
    ("blank.jsonl", "\n\n", "holds no prompts"),
    ("latin1.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("one.txt", "def f():\n", "holds one prompt"),
    ("same.txt", "def f():\ndef f():\n", "also among its held-out last ones"),
    ("bad.jsonl", "{\"text\": 1}\n", "needs a non-empty string field"),
])
def test_bad_prompt_files(tmp_path, name, data, message):
    with pytest.raises(gr.Error, match=message):
        check_collect("m", train_tab.UPLOAD, write(tmp_path, name, data), 10, 16, 64)


def test_prompt_file_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr("cllm.prompts.MAX_PROMPT_FILE_BYTES", 100)
    with pytest.raises(gr.Error, match="larger than"):
        check_collect("m", train_tab.UPLOAD, write(tmp_path, "big.txt", "x\n" * 100), 10, 16, 64)


def test_uploaded_prompts_hold_out_their_last_fifth(tmp_path):
    lines = [f"def f{i}():" for i in range(20)]
    job_ = check_collect(" m ", train_tab.UPLOAD, write(tmp_path, "p.txt", "\n".join(lines)), 10, 8, 32)
    assert job_.prompts == tuple(lines[:16]) and job_.heldout == tuple(lines[16:])  # 20 // 5 = 4 held out
    assert job_.config.limit == 10  # round 1 collects on the first 10 of the pool, later rounds on the next
    assert job_.model == "m" and (job_.config.n, job_.config.max_new_tokens) == (8, 32) and "p.txt" in job_.source
    jsonl = write(tmp_path, "p.jsonl", "".join(json.dumps({"prompt": p}) + "\n" for p in lines[:3]))
    assert check_collect("m", train_tab.UPLOAD, jsonl, 10, 8, 32).heldout == (lines[2],)  # at least one
    shipped = check_collect("m", train_tab.SHIPPED, None, 5, 16, 64)
    assert shipped.config.limit == 5 and len(shipped.prompts) == 1999 and len(shipped.heldout) > 5  # one is in both
    assert not set(shipped.prompts) & set(shipped.heldout)


@pytest.mark.parametrize("args, message", [
    (("m", train_tab.UPLOAD, None, 10, 16, 64), "choose a prompt file"),
    (("", train_tab.SHIPPED, None, 10, 16, 64), "no base model given"),
    (("m", train_tab.SHIPPED, None, 0, 16, 64), "prompts per round must be"),
    (("m", train_tab.SHIPPED, None, 10, 0, 64), "block size n must be"),
    (("m", train_tab.SHIPPED, None, 10, 16, 10**6), "tokens per prompt must be"),
    (("m", "elsewhere", None, 10, 16, 64), "prompt source must be"),
])
def test_bad_collect_inputs(args, message):
    with pytest.raises(gr.Error, match=message):
        check_collect(*args)


@pytest.mark.parametrize("args, message", [
    (("global", 10, 1e-3, "minutes", 0, 25, 64), "budget in minutes must be more than 0"),
    (("global", 10, 1e-3, "steps", 0, 25, 64), "budget in steps must be more than 0"),
    (("global", 10, 1e-3, "steps", 2.5, 25, 64), "budget in steps must be a whole number"),
    (("global", 10, 1e-3, "minutes", 31, 25, 64), "at most 30"),
    (("global", 10, 0, "minutes", 3, 25, 64), "learning rate must be more than 0"),
    (("global", -1, 1e-3, "minutes", 3, 25, 64), "AR weight must be at least 0"),
    (("both", 10, 1e-3, "minutes", 3, 25, 64), "loss must be one of"),
    (("global", 10, 1e-3, "hours", 3, 25, 64), "budget must be counted in"),
    (("global", 10, 1e-3, "minutes", 3, 0, 64), "TPF every K steps must be"),
    (("global", 10, "fast", "minutes", 3, 25, 64), "learning rate must be a number"),
    (("global", 10, 1e-3, "minutes", 3, 25, 64, 0), "rounds must be a whole number from 1 to 10"),
    (("global", 10, 1e-3, "minutes", 3, 25, 64, 11), "rounds must be a whole number from 1 to 10"),
    (("global", 10, 1e-3, "minutes", 3, 25, 64, 2.5), "rounds must be a whole number"),
    (("global", 10, 1e-3, "steps", 2, 25, 64, 3), r"max-steps \(2\) must be at least rounds \(3\)"),
])
def test_bad_train_inputs_fail_before_anything_starts(args, message, train_slot):
    version = train_slot.view("local").version
    with pytest.raises(gr.Error, match=message):
        list(train_tab.TrainTab(train_slot).train_model(*args))
    assert train_slot.view("local").version == version


def test_the_tabs_default_run_is_the_clis():
    """The tab's defaults, and the CLI's for the bundled base with no flags (`cli_commands`), give the same
    configs: the tiny recipe's, a minutes budget at a constant learning rate."""
    collect_args, train_args = (build_parser().parse_args(c) for c in cli_commands())
    cli_collect = recipe_for(collect_args.model, collect_args.recipe).collect_config(given(collect_args, CollectConfig))
    cli_train = train_config_of(train_args)
    tab = train_tab.TrainInputs(train_tab.TRAIN.loss, train_tab.TRAIN.ar_weight, train_tab.TRAIN.lr, "minutes",
                                train_tab.TRAIN.max_minutes, train_tab.TRAIN.eval_every,
                                train_tab.COLLECT.max_new_tokens).config()
    assert cli_collect == train_tab.COLLECT == RECIPES["tiny"].collect_config()
    assert (cli_collect.n, cli_collect.max_new_tokens, cli_collect.limit) == (16, 64, 200)
    assert cli_train == tab == train_tab.TRAIN
    assert tab.max_minutes == 3 and tab.epochs == MINUTES_EPOCHS and tab.scheduler == "constant_with_warmup"
    assert (tab.lr, tab.ar_weight, tab.rounds) != (TrainConfig().lr, TrainConfig().ar_weight, TrainConfig().rounds)
    steps = train_tab.TrainInputs("local", 1.0, 1e-4, "steps", 40, 5, 32).config()
    assert (steps.max_steps, steps.max_minutes, steps.scheduler) == (40, None, TrainConfig().scheduler)
    assert steps.lr == 1e-4 and steps.eval_max_new_tokens == 32 and steps.ar_text == "stdlib"


def test_live_grid_and_trained_pair_in_explore(train_slot, tiny_model_dir, tmp_path, monkeypatch):
    """A short training in the slot: the grid races 'before' against the latest weights; after Save the
    model is offered by Explore's pair picker and fills base, CLLM and n."""
    monkeypatch.setenv("CLLM_TRAINED_DIR", str(tmp_path / "trained"))
    slot = train_slot
    slot.start_collect("local", "Ada", job(tiny_model_dir))
    wait_for(slot, "local", ("collected",))
    assert "Now press <b>Train</b>" in train_views.collect_html(slot.view("local"))
    tab = train_tab.TrainTab(slot)
    outputs = list(tab.train_model("global", 1.0, 3e-3, "steps", 6, 2, 8, 3))  # 3 rounds of 2 steps
    status, loss_fig, tpf_fig, grid = outputs[-1]
    assert len(outputs) >= 2 and "Trained" not in outputs[0][0]  # streamed: the first view is of a running job
    assert "Trained" in status and "6 steps (3 rounds)" in status and "= its own greedy output on 100%" in status
    assert len(loss_fig.data[0].x) == 6 and list(tpf_fig.data[0].x) == [0, 2, 4, 6]
    starts = [s for s in tpf_fig.layout.shapes if s.x0 == s.x1]  # the rounds' dashed lines (the AR line is flat)
    assert sorted(s.x0 for s in starts) == [2, 4]
    assert "Before training" in grid and "After step 6" in grid and grid.count("✓ identical to greedy") == 2
    assert "CLLM in training from " in grid.split('data-role="cllm"')[1]  # the trained panel is not named as the base
    assert "Saved **tab-cllm**" in tab.save_model("tab-cllm")
    with pytest.raises(gr.Error, match="not a valid name"):
        tab.save_model("../x")
    labels = dict((v, label) for label, v in explore_tab.refresh_pairs("tiny-python|tiny-python-cllm").choices)
    assert " vs tab-cllm · n = 4 · trained here, TPF " in labels["trained:tab-cllm"]
    base, cllm, n = explore_tab.pick_pair("trained:tab-cllm")
    assert (base, cllm, n) == (str(tiny_model_dir), str(tmp_path / "trained" / "tab-cllm"), 4)
    with pytest.raises(gr.Error, match="not a valid name"):
        explore_tab.pick_pair("trained:../../etc")


def test_slot_status_words(train_slot):
    assert "The training slot is free: nobody is training." in train_tab.TrainTab(train_slot).slot_status()


def test_the_owner_is_the_browser_cookie_else_the_session():
    def request(cookies, session="s1"):
        return SimpleNamespace(cookies=cookies, session_hash=session)

    token = "0123456789abcdef" * 2
    assert train_tab._owner(request({train_tab.OWNER_COOKIE: token})) == token  # same after a reload
    assert train_tab._owner(request({train_tab.OWNER_COOKIE: "x; drop"})) == "s1"  # malformed: the session
    assert train_tab._owner(request({})) == "s1" and train_tab._owner(None) == "local"
    assert train_tab.OWNER_COOKIE in train_tab.OWNER_HEAD and "getRandomValues" in train_tab.OWNER_HEAD


def test_others_see_a_countdown_and_their_place_and_the_owner_can_discard(train_slot, tiny_model_dir):
    slot, tab = train_slot, train_tab.TrainTab(train_slot)
    slot.start_collect("ada", "Ada", job(tiny_model_dir))
    wait_for(slot, "ada", ("collected",))
    bob, cy = slot.view("bob"), slot.view("cy")
    assert (bob.place, cy.place) == (1, 2) and 0 < cy.free_in <= slot.hold_seconds
    line = train_views.status_html(slot.view("cy"))
    assert "Busy: Ada is holding collected data" in line and 'class="tr-count" data-left="' in line
    assert "<b>2nd</b> in line" in line
    assert "yours, in this browser (collected): press Train, or Discard" in train_views.status_html(slot.view("ada"))
    enabled = {who: [b.interactive for b in tab.controls(SimpleNamespace(cookies={}, session_hash=who))]
               for who in ("ada", "bob")}  # [Stop, Discard]
    assert enabled == {"ada": [False, True], "bob": [False, False]}  # nothing runs; the data is Ada's
    with pytest.raises(train_tab.SlotBusy):
        slot.discard("bob")  # not Bob's
    assert slot.discard("ada") == "Discarded: the slot is free."
    assert slot.view("bob").phase == "idle" and slot.view("bob").place == 0
    assert [b.interactive for b in tab.controls(SimpleNamespace(cookies={}, session_hash="ada"))] == [False, False]


def test_readme_shows_the_tabs_run():
    """README's "Making a CLLM" prints the tab's defaults as commands: they must be cli_commands()'s."""
    from cllm.models import REPO_ROOT

    text = (REPO_ROOT / "README.md").read_text().replace("\\\n", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for command in cli_commands():
        assert "python -m cllm " + " ".join(command) in lines


class _TickingSlot:
    """A slot whose job changes every 50 ms for `seconds`, then ends: what _follow sees during training."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def view(self, owner):
        now = time.monotonic()
        return SimpleNamespace(phase="training" if now < self.end else "trained", version=int(now * 20))

    def wait(self, owner, version, timeout):
        time.sleep(0.05)
        return self.view(owner)


def test_following_redraws_at_most_once_a_second_and_ends_promptly(monkeypatch):
    monkeypatch.setattr(train_tab, "POLL_SECONDS", 0.5)
    start, times = time.monotonic(), []
    for view in train_tab.TrainTab(_TickingSlot(2.5)).follow("local", "training"):
        times.append((time.monotonic(), view.phase))
    gaps = [b[0] - a[0] for a, b in zip(times, times[1:-1])]
    assert len(times) <= 7 and all(g >= 0.45 for g in gaps)  # ~50 changes, at most one view per 0.5 s
    assert times[-1][1] == "trained" and times[-1][0] - start < 3.1  # the end is shown within a poll


def test_discarding_a_running_collection_frees_the_slot_when_it_stops(train_slot, tiny_model_dir):
    slot = train_slot
    slot.start_collect("ada", "Ada", job(tiny_model_dir))
    said = slot.discard("ada")  # while collecting (or, on a fast machine, just after)
    assert said.startswith(("Discarding: the job stops", "Discarded"))
    view = wait_for(slot, "bob", ("idle",))
    assert not view.busy and view.owner == "" and slot.view("ada").counts == {}


def test_stop_is_enabled_as_soon_as_the_job_just_asked_for_runs(monkeypatch):
    """Pressed beside Train: the job starts inside Train's own event, so the buttons wait for it to show."""
    views = iter([SimpleNamespace(mine=False, phase="idle")] * 3 + [SimpleNamespace(mine=True, phase="training")] * 9)
    tab = train_tab.TrainTab(SimpleNamespace(view=lambda owner: next(views)))
    t0 = time.monotonic()
    stop, discard = tab.controls_once_started(None)
    assert stop.interactive and discard.interactive and time.monotonic() - t0 < train_tab.START_SECONDS
    monkeypatch.setattr(train_tab, "START_SECONDS", 0.3)  # nothing starts (the slot was busy): it gives up
    idle = train_tab.TrainTab(SimpleNamespace(view=lambda owner: SimpleNamespace(mine=False, phase="training")))
    assert [b.interactive for b in idle.controls_once_started(None)] == [False, False]
