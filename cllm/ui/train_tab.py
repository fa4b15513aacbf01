"""Train: turn a base model into a CLLM live. Collect Jacobi trajectories, fine-tune while the loss and
held-out TPF curves and a live grid update, Stop, Save; the saved model joins Explore's pair picker.

The work runs in the server's one training slot (cllm.training.session.TrainSlot, made by app.py and handed
to build); the Collect and Train events are generators that follow it and redraw about once a second, so
they hold no model lock and the other tabs keep decoding. A second visitor gets a "busy" message that names
who is training, a live countdown of a hold and their place in line, not an error.

The slot belongs to a browser, not a page load: the page sets a random owner cookie once (OWNER_HEAD,
first-party, SameSite=Strict) and every request carries it, so a reload gets the slot back. API clients,
which send no cookie, are told apart by their session as before.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

import gradio as gr

from cllm.models import DEFAULT_BASE
from cllm.prompts import HELDOUT_PROMPTS, MAX_PROMPT_FILE_BYTES, TRAIN_PROMPTS, read_prompt_file, read_prompts
from cllm.training.recipe import TAB_RECIPE, minutes_budget
from cllm.training.session import HOLDING, RUNNING, TrainSlot
from cllm.training.slot import CollectJob, SlotBusy, SlotView
from cllm.training.trained import read_trained, trained_dir
from cllm.training.config import TrainConfig
from cllm.training.losses import LOSSES
from cllm.ui import figures
from cllm.ui.common import N_RANGE, model_name, user_errors, whole_number
from cllm.ui.train_views import (EMPTY_GRID, busy_html, collect_html, probe_html, status_html,
                                 train_html)
from cllm.ui.player import make_player
from cllm.ui.prompt_sets import prompt_file_box

OWNER_COOKIE = "cllm_owner"
_TOKEN = re.compile(r"[0-9a-f]{32}")
# launch(head=...): the owner cookie, made once per browser from 16 random bytes (getRandomValues works on plain http too)
OWNER_HEAD = ("<script>(function () { if (/(?:^|; )" + OWNER_COOKIE + "=[0-9a-f]{32}/.test(document.cookie)) return;"
              " const b = new Uint8Array(16); crypto.getRandomValues(b);"
              " const t = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');"
              " document.cookie = '" + OWNER_COOKIE + "=' + t + '; path=/; max-age=31536000; SameSite=Strict'; })();</script>")
STATUS_SECONDS = 5  # the slot line refreshes this often (a hold's countdown ticks every second in the browser)
START_SECONDS = 3  # how long Stop waits for a job just asked for to show in the slot (it starts inside its event)
SHIPPED, UPLOAD = "shipped training prompts", "uploaded file"
MAX_PROMPTS = 2000  # the shipped set's size; ~3 minutes of collection per round on 2 CPU cores at 64 tokens
MAX_TOKENS = 256
MAX_MINUTES, MAX_STEPS, MAX_ROUNDS = 30, 20_000, 10
BUDGETS = ("minutes", "steps")
STEPS_BUDGET = 300  # the budget offered when it is switched to steps (the recipe's is in minutes)
# The inputs' starting values: the tiny recipe's (cllm.training.recipe), as `collect` + `train` use them
COLLECT, TRAIN = TAB_RECIPE.collect_config(), TAB_RECIPE.train_config()
POLL_SECONDS = 1.0  # a following event redraws at most this often, and at least this often while a job runs
HELD_OUT_SHARE, MAX_HELD_OUT = 5, 8  # an uploaded file's last fifth (at most 8 prompts) is held out
HELP = ("**1. Collect**: the base model Jacobi-decodes the prompts and every intermediate state is recorded. "
        "**2. Train**: the model learns to jump from any state straight to the final one (consistency loss) "
        "while still predicting text (AR loss); every few steps its tokens per forward pass (TPF) on held-out "
        "prompts is measured: 1.0 is ordinary decoding. Training goes in **rounds**: each new round first "
        "collects trajectories again, now from the weights trained so far (the states the model itself meets "
        "as it learns to fast-forward), on the next prompts; watch TPF jump at the dashed lines. "
        "**3. Save** it, then race it in **Explore**. One training at a time per server; the other tabs keep "
        "working meanwhile. On 2 CPU cores the defaults take about 4.5 minutes and lift TPF from 1.06 to about "
        "2.2-3 (less if this browser shares those cores); besides the AR term on the model's own output, a term on real Python code keeps the model writing "
        "real code.")


def _runs_here(view: SlotView) -> bool:
    """Whether the slot's job (a collection or a training) is this visitor's and still running."""
    return view.mine and view.phase in RUNNING


def _owner(request: gr.Request | None) -> str:
    """The browser's owner cookie when it sent a well-formed one, else the session (API clients), else "local"."""
    if request is None:
        return "local"
    try:
        token = dict(request.cookies).get(OWNER_COOKIE, "")
    except AttributeError:
        token = ""
    return token if _TOKEN.fullmatch(token or "") else request.session_hash or "local"


def collect_job(base, source, upload, limit, n, max_new) -> CollectJob:
    """The Collect inputs checked (ValueError says what is wrong) and the prompts read."""
    base = model_name(base, "base")
    limit = whole_number(limit, "prompts per round", 1, MAX_PROMPTS)
    config = TAB_RECIPE.collect_config({"n": whole_number(n, "block size n", *N_RANGE), "limit": limit,
                                        "max_new_tokens": whole_number(max_new, "tokens per prompt", 1, MAX_TOKENS)})
    if source == UPLOAD:
        if not upload:
            raise ValueError("choose a prompt file to upload (JSONL with a \"prompt\" field, or text, one per line)")
        prompts = read_prompt_file(upload)  # size-capped, UTF-8, not empty
        if len(prompts) < 2:
            raise ValueError(f"{Path(upload).name} holds one prompt: give at least 2 (the last are held out for TPF)")
        held = min(MAX_HELD_OUT, max(1, len(prompts) // HELD_OUT_SHARE))
        pool = _without(prompts[:-held], prompts[-held:])
        if not pool:
            raise ValueError(f"every prompt of {Path(upload).name} is also among its held-out last ones: "
                             "give prompts that differ")
        return CollectJob(base, pool, tuple(prompts[-held:]), config,
                          f"the uploaded file {Path(upload).name}")
    if source != SHIPPED:
        raise ValueError(f"prompt source must be {SHIPPED!r} or {UPLOAD!r}")
    heldout = read_prompts(HELDOUT_PROMPTS)
    return CollectJob(base, _without(read_prompts(TRAIN_PROMPTS), heldout), tuple(heldout), config,
                      f"{TRAIN_PROMPTS.name} (shipped)")


def _without(prompts: list[str], heldout: list[str]) -> tuple[str, ...]:
    """The training pool less any prompt that is also held out (TPF is measured on those)."""
    held = set(heldout)
    return tuple(p for p in prompts if p not in held)


@dataclass(frozen=True)
class TrainInputs:
    """The Train inputs as the page sends them (unchecked)."""

    loss: str
    ar_weight: object
    lr: object
    budget: str  # "minutes" or "steps"
    amount: object  # of the budget
    eval_every: object
    max_new: object  # tokens per held-out prompt
    rounds: object = TRAIN.rounds

    def config(self) -> TrainConfig:
        """The recipe's TrainConfig with these inputs, checked (ValueError says what is wrong)."""
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}")
        if self.budget not in BUDGETS:
            raise ValueError(f"the budget must be counted in {' or '.join(BUDGETS)}; got {str(self.budget)[:20]!r}")
        if self.budget == "minutes":
            budget = minutes_budget(_number(self.amount, "the budget in minutes", 0, MAX_MINUTES))
        else:
            _number(self.amount, "the budget in steps", 0, MAX_STEPS)
            budget = {"max_steps": whole_number(self.amount, "the budget in steps", 1, MAX_STEPS)}
        return TAB_RECIPE.train_config(budget | {
            "loss": self.loss, "ar_weight": _number(self.ar_weight, "AR weight", 0, 1000, low_ok=True),
            "lr": _number(self.lr, "learning rate", 0, 1),
            "eval_every": whole_number(self.eval_every, "TPF every K steps", 1, MAX_STEPS),
            "eval_max_new_tokens": whole_number(self.max_new, "tokens per prompt", 1, MAX_TOKENS),
            "rounds": whole_number(self.rounds, "rounds", 1, MAX_ROUNDS)})


def _number(value, name: str, low: float, high: float, low_ok: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {str(value)[:20]!r}") from None
    if not (low <= number if low_ok else low < number) or number > high:
        raise ValueError(f"{name} must be {'at least' if low_ok else 'more than'} {low} and at most {high}, got {value}")
    return number


class TrainTab:
    """The tab's callbacks over the app's one training slot (no module-level slot: app.py owns it)."""

    def __init__(self, slot: TrainSlot):
        self.slot = slot

    def collect_data(self, who, base, source, upload, limit, n, max_new, request: gr.Request = None):
        """Start collecting (or say who is busy), then follow it: a progress bar and the states collected."""
        owner = _owner(request)
        with user_errors():
            job = collect_job(base, source, upload, limit, n, max_new)
        try:
            self.slot.start_collect(owner, who or "", job)
        except SlotBusy as e:
            yield busy_html(str(e))
            return
        for view in self.follow(owner, "collecting"):
            yield collect_html(view)

    def train_model(self, loss, ar_weight, lr, budget, amount, eval_every, max_new, rounds=TRAIN.rounds,
                    request: gr.Request = None):
        """Start training on this visitor's collected data, then stream status, loss and TPF curves, live grid."""
        owner = _owner(request)
        with user_errors():
            config = TrainInputs(loss, ar_weight, lr, budget, amount, eval_every, max_new, rounds).config()
            try:
                self.slot.start_train(owner, config)
            except SlotBusy as e:
                yield busy_html(str(e)), gr.skip(), gr.skip(), gr.skip()
                return
        shown = None
        for view in self.follow(owner, "training"):
            ended = view.phase != "training"  # the last view: every output in full (what an API caller gets)
            grid = probe_html(view) if ended or view.probe_id != shown else gr.skip()  # a new grid replays
            shown = view.probe_id
            yield train_html(view), figures.make_loss_figure(view.history), _tpf_figure(view), grid

    def stop_training(self, request: gr.Request = None) -> str:
        try:
            return self.slot.stop(_owner(request))
        except SlotBusy as e:
            return str(e)

    def discard(self, request: gr.Request = None) -> str:
        try:
            return self.slot.discard(_owner(request))
        except SlotBusy as e:
            return str(e)

    def save_model(self, name, request: gr.Request = None) -> str:
        with user_errors():
            try:
                path = self.slot.save(_owner(request), name if isinstance(name, str) else "")
            except SlotBusy as e:
                return str(e)
        base = read_trained(path).base_model
        return (f"Saved **{path.name}** (HF format with its model card) in `{path.parent}`. On the **Explore** tab "
                f"pick **{escape(base)} vs {path.name}** in the model pair list to race it against its base.")

    def slot_status(self, request: gr.Request = None) -> str:
        return status_html(self.slot.view(_owner(request)))

    def controls(self, request: gr.Request = None):
        """Stop and Discard as this visitor may use them: Stop while their job runs, Discard while the slot holds
        their work (both looked ready to press with nothing to act on)."""
        view = self.slot.view(_owner(request))
        return (gr.Button(interactive=_runs_here(view)),
                gr.Button(interactive=view.mine and view.phase in (*RUNNING, *HOLDING)))

    def controls_once_started(self, request: gr.Request = None):
        """controls() once this visitor's job shows in the slot, or after START_SECONDS: pressed beside
        Collect and Train, whose long events start the job, so Stop is enabled without a status tick's wait."""
        owner, deadline = _owner(request), time.monotonic() + START_SECONDS
        while not _runs_here(self.slot.view(owner)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.controls(request)

    def restore(self, request: gr.Request = None):
        """After a reload, the owner's collection and training lines come back with the slot."""
        view = self.slot.view(_owner(request))
        if not view.mine:
            return gr.skip(), gr.skip()
        return (collect_html(view) if view.counts else gr.skip(),
                train_html(view) if view.result is not None or view.history else gr.skip())

    def follow(self, owner: str, phase: str):
        """Views of the slot while `phase` runs (one per change, at most one per POLL_SECONDS), then the last
        one; a job that failed ends as gr.Error with its reason."""
        view = self.slot.view(owner)
        while view.phase == phase:
            yield view
            due = time.monotonic() + POLL_SECONDS
            view = self.slot.wait(owner, view.version, POLL_SECONDS)
            left = due - time.monotonic()
            if view.phase == phase and left > 0:
                # a training step changes the slot every ~0.4 s on CPU; each redraw rebuilds two charts here and
                # in the browser, CPU the training itself needs when both share 2 cores: at most one per POLL_SECONDS
                time.sleep(left)
                view = self.slot.view(owner)
        if view.phase == "failed":
            raise gr.Error(view.error, print_exception=False)
        yield view


def _tpf_figure(view: SlotView):
    return figures.make_tpf_curve_figure(view.history, view.before_tpf)


def _notice() -> str:
    return (f"Trained models are saved under `{trained_dir()}`. Held-out prompts: the shipped held-out set, or "
            f"the last fifth (at most {MAX_HELD_OUT}) of an uploaded file; upload at most "
            f"{MAX_PROMPT_FILE_BYTES // 2**20} MiB.")


def build(slot: TrainSlot) -> TrainTab:
    """Adds the tab over the app's training slot; returns its callbacks (tests drive them)."""
    cb = TrainTab(slot)
    with gr.Tab("Train", id="train") as tab:
        gr.Markdown(HELP)
        status = gr.HTML(elem_id="train-slot", apply_default_css=False, padding=False)
        with gr.Row():
            with gr.Column():
                gr.Markdown("### 1. Collect")
                with gr.Row():
                    who = gr.Textbox(label="Your name (others see it while you train)", max_length=40)
                    base = gr.Textbox(DEFAULT_BASE, label="Base model (registry name, folder or hub id)",
                                      elem_id="train-base")
                with gr.Row():
                    source = gr.Radio([SHIPPED, UPLOAD], value=SHIPPED, label="Prompts", elem_id="train-source")
                    upload = prompt_file_box("train-upload", height=110)
                with gr.Row():
                    limit = gr.Number(COLLECT.limit, label=f"Prompts per round (1 to {MAX_PROMPTS})", precision=0,
                                      elem_id="train-prompts")
                    n = gr.Number(COLLECT.n, label="Block size n", precision=0, elem_id="train-n")
                    max_new = gr.Number(COLLECT.max_new_tokens, label=f"Tokens per prompt (1 to {MAX_TOKENS})", precision=0,
                                        elem_id="train-tokens")
                collect = gr.Button("Collect", variant="primary", elem_id="train-collect")
                collected = gr.HTML(label="collection", elem_id="train-collected")
            with gr.Column():
                gr.Markdown("### 2. Train")
                with gr.Row():
                    loss = gr.Radio(list(LOSSES), value=TRAIN.loss, label="Consistency loss")
                    ar_weight = gr.Number(TRAIN.ar_weight, label="AR weight w", elem_id="train-ar-weight")
                    lr = gr.Number(TRAIN.lr, label="Learning rate", elem_id="train-lr")
                with gr.Row():
                    budget = gr.Radio(list(BUDGETS), value="minutes", label="Budget in")
                    amount = gr.Number(TRAIN.max_minutes, label=f"Budget (≤ {MAX_MINUTES} min or {MAX_STEPS} steps)",
                                       elem_id="train-budget")
                    every = gr.Number(TRAIN.eval_every, label="TPF every K steps", precision=0, elem_id="train-every")
                    rounds = gr.Number(TRAIN.rounds, label=f"Rounds (1 to {MAX_ROUNDS}): each new one collects again "
                                       "from the weights trained so far", precision=0, elem_id="train-rounds")
                with gr.Row():
                    train = gr.Button("Train", variant="primary", elem_id="train-train")
                    stop = gr.Button("Stop", variant="stop", elem_id="train-stop", interactive=False)
                    discard = gr.Button("Discard", elem_id="train-discard", interactive=False)
                trained = gr.HTML(label="training", elem_id="train-status")
        with gr.Row():
            loss_plot, tpf_plot = gr.Plot(elem_id="train-loss"), gr.Plot(elem_id="train-tpf")
        player = make_player("train-player", EMPTY_GRID)
        gr.Markdown("### 3. Save\n" + _notice())
        with gr.Row():
            name = gr.Textbox(label="Name (letters, digits, - or _)", placeholder="e.g. my-first-cllm", scale=3,
                              elem_id="train-name")
            save = gr.Button("Save", scale=1, elem_id="train-save")
        saved = gr.Markdown(elem_id="train-saved")
        tab.select(cb.slot_status, None, status, api_name="train_status").then(
            cb.restore, None, [collected, trained], api_visibility="private", show_progress="hidden")
        tab.select(cb.controls, None, [stop, discard], api_visibility="private", queue=False, show_progress="hidden")
        timer = gr.Timer(STATUS_SECONDS)  # a job started elsewhere (another tab of this browser) shows up too
        for refresh, outputs in ((cb.slot_status, status), (cb.controls, [stop, discard])):
            timer.tick(refresh, None, outputs, api_visibility="private", queue=False, show_progress="hidden")
        budget.input(lambda kind: TRAIN.max_minutes if kind == "minutes" else STEPS_BUDGET, budget, amount, api_visibility="private",
                     queue=False)
        events = [
            collect.click(cb.collect_data, [who, base, source, upload, limit, n, max_new], collected, api_name="collect",
                          concurrency_id="train_follow", concurrency_limit=None, show_progress="hidden"),
            train.click(cb.train_model, [loss, ar_weight, lr, budget, amount, every, max_new, rounds],
                        [trained, loss_plot, tpf_plot, player], api_name="train", concurrency_id="train_follow",
                        concurrency_limit=None, show_progress="hidden"),
            stop.click(cb.stop_training, None, trained, api_name="stop"),
            discard.click(cb.discard, None, trained, api_name="discard"),
            save.click(cb.save_model, name, saved, api_name="save_model")]
        for button in (collect, train):  # beside the long event that starts the job
            button.click(cb.controls_once_started, None, [stop, discard], api_visibility="private", queue=False,
                         show_progress="hidden")
        for event in events:  # the slot line and the buttons follow what this visitor did
            event.then(cb.slot_status, None, status, api_visibility="private").then(
                cb.controls, None, [stop, discard], api_visibility="private", show_progress="hidden")
    return cb
