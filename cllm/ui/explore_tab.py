"""Explore: decode one prompt with a base model and its CLLM, and replay both trajectories side by side."""
from __future__ import annotations

import os
import uuid
from typing import NamedTuple

import gradio as gr
import torch

from cllm.decode import advance_race, both_sides, check_against_ar, check_prompt, decode_prompt, start_race
from cllm.jacobi import INITS, JacobiConfig
from cllm.models import (DEFAULT_BASE, DEFAULT_CLLM, REAL_CLLM, ModelLoadError, app_pair, cached_dtype, cached_model,
                         device_label, pick_device, resolve_source)
from cllm.prompts import HELDOUT_PROMPTS, read_prompts
from cllm.race import GALLERY_DIR, Race, RaceError, default_title, load_from_gallery
from cllm.shipped import RECENT_GREEDY, Recent, RecentRaces, Request, find_shipped
from cllm.decoders import DECODERS, DEFAULT_DECODER
from cllm.ui.common import (DECODING, MAX_NEW_TOKENS_RANGE, MODES, N_RANGE, REAL_EXAMPLES, decoder_config,
                            load_models, on_gpu, pair_choices, pair_of, race_file, race_models, race_summary, read_config,
                            save_run, user_errors)
from cllm.ui.grid import EMPTY_HTML, race_html
from cllm.ui.model_worker import MAX_LINE, MODELS, LineFull, waiting_note
from cllm.ui.player import make_player

CUSTOM_PAIR = "custom"
REST_WAITS = "The first block is on screen. "  # before the place in line of the rest of the race
SHIPPED_NOTE = ("▶ **From the shipped gallery**: this prompt and these settings were recorded with these models, so "
                "the race plays at once (the same tokens a live run writes; its timings are the recording's). "
                "Change the prompt, seed or n to decode live.")
SETTINGS_LABEL = "Block size, tokens, seed, race and decoders"
EXAMPLES_AT_ONCE = "The examples above were recorded and play at once."
RECENT_NOTE = ("▶ **Decoded earlier on this server** for exactly this request, so it plays at once (the same "
               "tokens; its timings are that run's). Change the prompt, seed or n to decode anew.")
RECENT = RecentRaces()  # this server's last live races, by request (cllm.shipped)
GREEDY = Recent(RECENT_GREEDY)  # its last greedy outputs, by decode.greedy_request: a new seed or n on a prompt
# decoded before is checked at no cost (a third of a live race's model work on a CPU)
DECODER_INFO = ("; ".join(f"{name}: {spec.summary}" for name, spec in DECODERS.items())
                + ". All write exactly the greedy text.")  # one home: each decoder's summary
CHAT_LABEL = "Chat: send the prompt as a user turn (instruct models; off: continue the text)"
FALLBACK_PROMPTS = ["def fibonacci(n):\n", "class Stack:\n    def __init__(self):\n",
                    "import os\n\n\ndef list_files(path):\n"]  # when the held-out set is absent
INTRO = (
    "**How to read this.** Both models write the answer in blocks of *n* tokens. A block starts as a random "
    "guess (top row); each forward pass then rewrites **all** its positions at once (next row), until a "
    "row no longer changes. That final row is exactly what ordinary one-token-per-pass (greedy) decoding "
    "writes, only reached in fewer passes when several tokens come out right at once. The Consistency "
    "LLM (right) was trained to do that, so it usually finishes first."
)


# The race the page opens on, playing, per app pair (cllm.models.app_pair). heldout-03: the largest speed-up
# (60 -> 24 passes, 2.5x) among the tiny pair's shipped races whose outputs neither loop nor degenerate (02 and 06
# loop, 04 and 05 repeat one token), both equal to greedy, with fast-forwarded (44) and stationary (12) tokens to
# see in the first blocks. real-chat-01: the real pair's English question (61 -> 48 passes), fluent from both
# models, where its HumanEval/0 race (real-code-01) has the instruct base close a code fence and write prose.
LANDING_RACES = {DEFAULT_CLLM: "heldout-03", REAL_CLLM: "real-chat-01"}


def landing_name() -> str:
    return LANDING_RACES[app_pair()[1]]


def landing_race(name: str | None = None) -> Race | None:
    """The shipped race the page opens on (None if the checkout lacks it: the player then waits for Run)."""
    try:
        return load_from_gallery(GALLERY_DIR, name or landing_name())
    except (RaceError, OSError):
        return None


def landing_caption(race: Race) -> str:
    return (f"▶ **Now playing** a recorded race of {race.base.meta.model} and its CLLM {race.cllm.meta.model}. "
            "New here? The **Learn** tab explains it step by step; edit the prompt and press **Run** to decode live.")


def example_rows(limit: int = 8) -> list[list]:
    """[prompt, chat] per example: with the real pair on, its recorded races first (at the default settings they
    play at once from the gallery, no model work), then the held-out prompts."""
    recorded = []
    if app_pair()[1] == REAL_CLLM:
        for name in REAL_EXAMPLES:
            try:
                race = load_from_gallery(GALLERY_DIR, name)
            except (RaceError, OSError):
                continue
            recorded.append([race.prompt, race.base.meta.chat])
    return recorded + [[p, False] for p in example_prompts(limit)]


def example_label(prompt: str, chat: bool) -> str:
    """A chip's text: the prompt's first `def` line if it has one (not its imports), else its first line."""
    defs = [line for line in prompt.splitlines() if line.lstrip().startswith(("def ", "async def "))]
    label = default_title(defs[0] if defs else prompt, 48)
    return f"{label} (chat)" if chat else label


def example_prompts(limit: int = 8) -> list[str]:
    """The held-out set when present (it ships with the bundled pair), else a few generic prompts."""
    try:
        return read_prompts(HELDOUT_PROMPTS, limit)
    except ValueError:
        return FALLBACK_PROMPTS


def run_race(prompt, base, cllm, n, max_new_tokens, seed, init, chat=False, mode=MODES[0], decoder_a=DEFAULT_DECODER,
             decoder_b=DEFAULT_DECODER, progress=gr.Progress()):
    """Yields (player, status, download, state) up to three times, so the replay starts early:
    1. the first block of both runs (a quick preview; the player waits at its end if it gets there),
    2. both whole trajectories, 3. the same after each run was checked against greedy AR decoding.
    A shipped race of exactly this request (cllm.shipped), or one this server decoded for it before (RECENT),
    is yielded at once, with no model work; a live one waits for the models (model_worker.MODELS), saying how
    many requests are ahead while it waits.
    `mode` (common.MODES) races the pair, or one of its models with two decoders; decoder_a runs on the
    left, decoder_b on the right (cllm.decoders)."""
    with user_errors():
        config = read_config(n, max_new_tokens, seed, init)
        check_prompt(prompt)
        configs = [decoder_config(config, d) for d in (decoder_a, decoder_b)]
        names = race_models(mode, base, cllm)
        asked = [Request.asked(m, c, chat, cached_dtype()) for m, c in zip(names, configs)]
    served = ((SHIPPED_NOTE, find_shipped(GALLERY_DIR, prompt, *asked)), (RECENT_NOTE, RECENT.get(prompt, *asked)))
    for note, done in served:
        if done is not None:  # no model work: a race of exactly this request
            yield served_race(note, done)
            return
    yield from queued_race(LiveAsk(prompt, names, configs, bool(chat), asked), progress)


def served_race(note: str, race: Race) -> tuple:
    """run_race's answer with a race that needed no model work, and the note saying where it came from."""
    return race_html(race, uuid.uuid4().hex[:12]), f"{note}  \n{race_summary(race)}", race_file(race), race


def examples_hint() -> str:
    """What a waiting visitor may have at once: the recorded examples, where they stand in (a float32 app; on
    CUDA every request decodes live)."""
    return EXAMPLES_AT_ONCE if cached_dtype() == torch.float32 else ""


class LiveAsk(NamedTuple):
    """A race to decode live, as run_race checked it."""
    prompt: str
    names: list[str]  # left and right model
    configs: list  # left and right decoder config
    chat: bool
    asked: list  # left and right shipped.Request: how RECENT finds the same race


def queued_race(ask: LiveAsk, progress):
    """live_race in the models' line, with a note per move of the line while it waits. On a CPU its first
    block is decoded in a turn ahead of the whole races waiting (model_worker), the rest in a turn at the end
    of the line; on CUDA, where a race takes seconds, in one turn. The race of a same request decoded while
    this one waited (two visitors on one example) is played instead."""
    run_id, started = uuid.uuid4().hex[:12], []  # started: the runs, from the first block's turn to the rest's
    first_apart = shows_first_block(ask.configs) and pick_device().type == "cpu"
    try:
        with MODELS.turn(max_line=MAX_LINE, ahead=first_apart) as waits:
            if (yield from wait_in_line(waits, ask, "Your turn: decoding…")):
                return
            yield from live_race(ask, progress, run_id, rest=not first_apart, started=started)
    except LineFull as e:  # raised on joining, before anything was yielded
        raise gr.Error(f"{e}: try again in a few minutes, or click an example (recorded: it plays at once)",
                       print_exception=False) from None
    if first_apart and started:  # the first turn left the rest to do
        with MODELS.turn() as waits:  # admitted above already: no line limit
            if (yield from wait_in_line(waits, ask, "Your turn: decoding the rest…", REST_WAITS)):
                return
            yield from live_race(ask, progress, run_id, first_block=False, started=started)


def wait_in_line(waits, ask: LiveAsk, your_turn: str, note: str = ""):
    """Says the place in line while it moves (`note` before it); once the turn came after a wait, plays the
    race of this request if another visitor's was decoded meanwhile (then returns True) or says `your_turn`."""
    waited = False
    for ahead in waits:
        waited = True
        yield gr.skip(), note + waiting_note(ahead, examples_hint()), gr.skip(), gr.skip()
    if waited:
        done = RECENT.get(ask.prompt, *ask.asked)  # decoded for another visitor while this one waited
        if done is not None:
            yield served_race(RECENT_NOTE, done)
            return True
        yield gr.skip(), your_turn, gr.skip(), gr.skip()  # a visitor who left is noticed here, before model work
    return False


@on_gpu(duration=120)  # two 7B hub models at 512 tokens fit; the bundled pair takes seconds
def live_race(ask: LiveAsk, progress, run_id: str = "", first_block: bool = True, rest: bool = True,
              started: list | None = None):
    """run_race's model work, once the models are this request's: with `first_block` the first block alone
    (where shows_first_block says it is worth it), with `rest` the rest of the race and its greedy check.
    `started` keeps both sides' runs (decode.PromptRun) from a turn to the next, so no block is decoded twice."""
    started = [] if started is None else started
    with user_errors():
        models = [m.as_chat(ask.chat) for m in load_models(ask.names, progress)]
        run_id = run_id or uuid.uuid4().hex[:12]
        if not all([run.resume(m) for run, m in zip(started, models)]):
            started.clear()  # a model was loaded again while the race waited (the cache keeps 4): start over
        if not started:
            started += start_race(models, ask.prompt, ask.configs)
        if first_block and shows_first_block(ask.configs):
            progress(0.1, desc="decoding the first block")  # the progress line said "loading models" till the end
            preview = advance_race(models, started, blocks=1)
            yield race_html(preview, run_id, partial=True), "Decoding: the first block is on screen…", None, None
        if not rest and not all(run.blocks.done for run in started):
            for run in started:
                run.park()  # the models stay the cache's to drop while the race waits
            return
        progress(0.3, desc="decoding both runs")
        race = advance_race(models, started)
        started.clear()  # decoded: the runs' caches can go (queued_race asks for no second turn)
    yield race_html(race, run_id), race_summary(race), None, None
    with user_errors():  # one model raced twice: its sides in turn, the second reusing the first's greedy output
        both_sides(models, [lambda: check_against_ar(models[0], race.base, memo=GREEDY),
                            lambda: check_against_ar(models[1], race.cllm, checked=race.base, memo=GREEDY)])
    RECENT.put(race)
    yield race_html(race, run_id), race_summary(race), race_file(race), race


def shows_first_block(configs: list) -> bool:
    """Whether a race has more than one block, so that its first is worth showing before the rest."""
    return configs[0].max_new_tokens > configs[0].n


def pick_pair(value: str):
    """Fill the model boxes and n from a registry pair or a model trained in the Train tab; 'custom' leaves
    them for the user to type."""
    if not value or value == CUSTOM_PAIR:
        return gr.update(), gr.update(), gr.update()
    with user_errors():
        return pair_of(value)


def pair_dropdown_choices() -> list[tuple[str, str]]:
    return pair_choices() + [("custom: type folders or hub ids below", CUSTOM_PAIR)]


def refresh_pairs(value: str):
    """Re-read the pairs when the tab is shown: a model just saved from the Train tab appears at once."""
    choices = pair_dropdown_choices()
    return gr.Dropdown(choices=choices, value=value if value in {v for _, v in choices} else CUSTOM_PAIR)


def warm_up() -> None:
    """Load the default pair ahead of the first click (called in a background thread at launch)."""
    try:
        with MODELS.hold():  # in line like any model work: a first Run waits for it instead of loading twice
            for name in app_pair():  # a tiny decode too: first calls pay one-off setup costs
                decode_prompt(cached_model(name), "def", JacobiConfig(n=4, max_new_tokens=8), check_ar=True)
    except ModelLoadError:
        pass  # the bundled pair is not installed: Run says so when someone asks for it


def _notice() -> str:
    device = f"Models run on **{device_label(pick_device())}**."
    if not os.path.isdir(resolve_source(DEFAULT_BASE)):
        return device + " The bundled pair is not installed yet: enter a custom pair, or replay a run in the Gallery."
    return device


class ExploreView(NamedTuple):
    """What other tabs reach into: the visitor's last run (Stats charts it) and the player showing it
    (a collocation row opens its example here)."""
    race: gr.State
    player: gr.HTML
    status: gr.Markdown
    download: gr.File  # the race on screen as a JSON file
    prompt: gr.Textbox  # a collocation row puts its example's prompt here, so Run decodes it
    opening: Race | None = None  # the landing race on screen at first (Stats charts it until the visitor runs one)


def build() -> ExploreView:
    """Adds the tab, opening on the landing race in motion with its prompt in the box; returns the components
    other tabs read or fill."""
    first_base, first_cllm = app_pair()
    landing = LANDING_RACES[first_cllm]
    first = landing_race(landing)
    with gr.Tab("Explore", id="explore") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(first.prompt if first else "", label="Prompt", lines=4, max_lines=12,
                                    placeholder="Code or text to continue…", elem_id="prompt")
                chat = gr.Checkbox(bool(first and first.base.meta.chat), label=CHAT_LABEL, elem_id="chat",
                                   render=False)  # shown in the settings column; examples set it too
                rows = example_rows()
                examples = gr.Examples(rows, inputs=[prompt, chat], label="Examples (click one)", examples_per_page=4,
                                       example_labels=[example_label(*row) for row in rows])  # chips
                run = gr.Button("Run", variant="primary", elem_id="run")  # here, so the race shows above the fold
            with gr.Column(scale=2):
                pair = gr.Dropdown(pair_dropdown_choices(), value=f"{first_base}|{first_cllm}", label="Model pair",
                                   elem_id="pair")
                with gr.Row():
                    base = gr.Textbox(first_base, label="Base model", elem_id="base-model")
                    cllm = gr.Textbox(first_cllm, label="CLLM", elem_id="cllm-model")
                chat.render()
                # closed at first, so the landing race shows above the fold at 1400 x 1000
                with gr.Accordion(SETTINGS_LABEL, open=False, elem_id="settings"):
                    with gr.Row():
                        n = gr.Number(DECODING.n, label=f"Block size n ({N_RANGE[0]} to {N_RANGE[1]})", precision=None,
                                      elem_id="block-size")
                        max_new = gr.Number(DECODING.max_new_tokens, precision=None, elem_id="max-new",
                                            label=f"Max new tokens (1 to {MAX_NEW_TOKENS_RANGE[1]})")
                    with gr.Row():
                        seed = gr.Number(DECODING.seed, label="Seed (initial guesses)", precision=None)
                        init = gr.Dropdown(list(INITS), value=DECODING.init, label="Initial guess from")
                    mode = gr.Radio(list(MODES), value=MODES[0], label="Race", elem_id="race-mode")
                    with gr.Row():
                        decoder_a = gr.Dropdown(list(DECODERS), value=DEFAULT_DECODER, label="Decoder, left panel",
                                                elem_id="decoder-a")
                        decoder_b = gr.Dropdown(list(DECODERS), value=DEFAULT_DECODER, label="Decoder, right panel",
                                                elem_id="decoder-b")
                    gr.Markdown(f"<small>{DECODER_INFO}</small>")  # under both boxes, so the two line up
                gr.Markdown(_notice())
        status = gr.Markdown(f"{landing_caption(first)}  \n{race_summary(first)}" if first else "", label="summary",
                             elem_id="explore-status")
        player = make_player("explore-player", race_html(first, f"landing-{landing}") if first else EMPTY_HTML)
        with gr.Row():
            with gr.Column(scale=3):
                name = gr.Textbox(label="Name for the gallery", placeholder="e.g. fibonacci-n16", elem_id="save-name")
                save = gr.Button("Save to gallery", size="md", elem_id="save")
                saved = gr.Markdown(label="saved")
            download = gr.File(label="This run as a race file (JSON)", scale=2, height=120)
        race = gr.State(None)  # the visitor's own run (the landing race is not theirs to save)
        tab.select(refresh_pairs, pair, pair, api_visibility="private", queue=False)
        pair.input(pick_pair, pair, [base, cllm, n], api_visibility="private")
        for box in (base, cllm):  # a typed model is no longer the picked pair
            box.input(lambda: CUSTOM_PAIR, None, pair, api_visibility="private", queue=False)
        inputs = [prompt, base, cllm, n, max_new, seed, init, chat, mode, decoder_a, decoder_b]
        outputs = [player, status, download, race]
        run.click(run_race, inputs, outputs, api_name="run", concurrency_limit=None,
                  show_progress_on=status)  # model work: MODELS
        examples.load_input_event.then(run_race, inputs, outputs, api_visibility="private", concurrency_limit=None,
                                       show_progress_on=status)  # a click plays the example (recorded: at once)
        save.click(save_run, [race, name], saved, api_name="save")
    return ExploreView(race, player, status, download, prompt, first)
