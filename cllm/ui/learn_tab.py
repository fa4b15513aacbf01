"""Learn: a guided walk through Jacobi decoding and CLLMs, each step opening a shipped race at the pass
that shows it (cllm.moments finds the pass; the player opens there, paused, with the cells ringed)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from cllm import moments
from cllm.collocations import collocation_table
from cllm.moments import Moment
from cllm.race import GALLERY_DIR, Race, RaceError, load_from_gallery
from cllm.ui.collocation_view import BASE_COUNT, CLLM_COUNT, PIECES, SPAN, display_table
from cllm.ui.common import REAL_RACES, user_errors
from cllm.ui.grid import race_html
from cllm.ui.player import make_player

# The shipped races the lessons draw on, in order of preference (python -m cllm record --limit 6).
LESSON_RACES = ("heldout-01", "heldout-02", "heldout-03", "heldout-04", "heldout-05", "heldout-06")
# Steps 1-4 (plain Jacobi on an ordinary model) open the real SmolLM2 pair's races first (common.REAL_RACES):
# real English and code. The later steps keep the tiny pair, whose CLLM (3 rounds, TPF 3.3) shows the effect the
# shipped real CLLM (70 CPU minutes, TPF about 1.3) only hints at.
PLAIN_JACOBI_RACES = REAL_RACES + LESSON_RACES
RECYCLE_RACES = ("recycle-01", "recycle-02", "recycle-03")  # the same prompts and seed with --decoder recycle
HELP = ("Nine short steps. Each opens a recorded race at the forward pass that shows the idea (steps 1-4 a "
        "race of the real SmolLM2-135M pair, the later ones the bundled tiny pair, whose CLLM is trained further), "
        "with the cells to look at ringed in orange; ▶ Play (or ←/→) moves on from there.")


@dataclass(frozen=True)
class Step:
    title: str
    text: str  # Markdown; {names} are filled from moments.summary_numbers and the moment's span
    find: Callable[[Race], Moment | None] | None  # where to open a race (returns None: try the next race);
    # None for the collocations step, which opens the top span of all the races (top_collocations)
    races: tuple[str, ...] = LESSON_RACES  # the shipped races the step may open


STEPS = (
    Step("1. Guess a whole block", (
        "A language model writes one token per **forward pass**: greedy decoding takes the most likely next token, "
        "appends it, and runs the model again. A 64-token answer costs 64 passes, one after another.\n\n"
        "**Jacobi decoding** guesses the next *n* tokens at once (here n = {n}; the guess is drawn from the prompt's "
        "tokens, as the paper's authors do: for a chat prompt, its chat template's tokens too) and then "
        "improves **every position in parallel**: each pass reads the previous row and writes a new one. The ringed row is the first guess: red cells are not yet "
        "the final token, blue ones are."), moments.first_guess, PLAIN_JACOBI_RACES),
    Step("2. Every pass fixes at least one token", (
        "Position 0 of a block depends only on text that is already final, so after one pass it is right, and "
        "stays right. Then position 1 has a right prefix, and so on: each pass makes at least one more token "
        "final, so a block of n tokens needs at most n passes. The ringed cells are what the base model's first "
        "pass got right: the **committed prefix** (solid blue, underlined)."), moments.first_pass, PLAIN_JACOBI_RACES),
    Step("3. The trajectory and its fixed point", (
        "The rows from the guess down to the row that no longer changes (✓) are the **Jacobi trajectory**; "
        "the last row is its **fixed point**. The fixed point is exactly what greedy decoding writes, token for "
        "token (Song et al., 2021), so Jacobi decoding is lossless: the text under each grid says whether it "
        "matched greedy decoding. The ringed row is the base model's first fixed point."), moments.fixed_point, PLAIN_JACOBI_RACES),
    Step("4. Why plain Jacobi barely helps", (
        "On an ordinary model most passes fix just **one** token, no better than greedy decoding: a model trained "
        "to predict the next token after a *correct* text rarely gets a token right while the ones before it "
        "are still wrong. In this race the base model needed **{base_forward_passes}** passes for "
        "{base_tokens} tokens ({base_tpf:.2f} tokens per pass); the paper measured about 1.05x on 7B models. "
        "The ringed row ends its slowest later block: {block_passes} passes for {block_tokens} tokens."),
        lambda race: moments.slowest_block(race, "base", first=1), PLAIN_JACOBI_RACES),
    Step("5. Consistency training", (
        "A **Consistency LLM** (Kou et al., ICML 2024) is the same model fine-tuned on its own Jacobi trajectories: "
        "from *any* row of a trajectory it learns to predict the fixed point in one pass (the consistency loss), "
        "plus the usual next-token loss so it keeps writing well. Its Jacobi output is still exactly its own "
        "greedy output. Here the CLLM finishes at pass **{cllm_forward_passes}** ({cllm_tpf:.2f} tokens per "
        "pass) while the base model needs {base_forward_passes}. The paper's 7B CLLMs ran 2.4-3.4x faster than "
        "greedy decoding, at 2.3-2.7 tokens per pass. The ringed row is where the CLLM is done."), moments.race_end),
    Step("6. Fast-forwarding", (
        "**Fast-forwarding**: several consecutive tokens become final in the same pass. The ringed cells "
        "({span} tokens) all became final in one pass of the CLLM; the grid marks such tokens with ». In this "
        "race the CLLM fast-forwarded {cllm_fast_forwarded} tokens beyond the first each pass commits, the base "
        "model {base_fast_forwarded}; counted as the paper counts it, a rate of tokens each pass adds (about 1.0 for a "
        "plain model), that is {cllm_ff_rate:.2f} per pass against {base_ff_rate:.2f}."),
        moments.biggest_fast_forward),
    Step("7. Stationary tokens", (
        "**Stationary tokens** are predicted right while a token *before* them is still wrong, and never change "
        "after. The ringed cells ({span} tokens) are such tokens, marked ⚓: the CLLM knew them before it knew what came "
        "before them. In this race: {cllm_stationary} stationary tokens for the CLLM, {base_stationary} for the "
        "base model."), moments.longest_stationary),
    Step("8. Collocations", (
        "Why can a CLLM do this? The authors' answer: it learns **collocations**, runs of tokens that go together "
        "far more often than chance (in Python: `self.`, `return `, `):\\n`), so once the start is known the rest "
        "can come at once. The paper's Table 3 finds both counts 2.0-6.8x higher in CLLMs than in their base "
        "models, fast-forwarding counted as a rate (tokens each pass adds). Over these {races} recorded races the "
        "bundled CLLM's rate is {all_cllm_rate:.2f} tokens per pass against the base model's {all_base_rate:.2f} "
        "({rate_ratio:.1f}x), and it held {all_cllm_st} stationary tokens against {all_base_st} ({st_ratio:.1f}x). "
        "(Tokens beyond the first each pass commits, {all_cllm_ff} against {all_base_ff}, are a different count, not "
        "the paper's.) "
        "The table lists the spans it fast-forwarded most often (outside loops: a repeated line says nothing "
        "about collocations); the ringed cells are the top one."), None),
    Step("9. Recycling: right tokens at the wrong place", (
        "Plain Jacobi throws every wrong row away, yet a wrong row often holds a stretch of right text one or two "
        "places off (tick **right token, wrong position** above the grids to see such runs outlined). The "
        "**recycle** decoder keeps them: every pass puts the n-grams of its row, right or wrong, into a pool (as "
        "lookahead decoding and Jacobi Forcing's rejection recycling do; the prompt's n-grams go in too), and the "
        "same forward pass also checks the pooled n-grams that start with the last final token, plus a copy of "
        "what followed that token earlier in the text (prompt lookup), as extra branches of the attention mask. "
        "The longest draft the model confirms wins, with the pass's own next token; so the text is still exactly "
        "greedy's. The column right of each grid shows, per pass, the tokens committed and which draft won "
        "(*own*: the block's own row). The ringed cells ({span} tokens) came from a recycled draft. In this "
        "race both models ran **recycle**: the base model took {base_forward_passes} passes for {base_tokens} "
        "tokens ({base_tpf:.2f} tokens per pass, where plain Jacobi gives it about 1.05), the CLLM "
        "{cllm_forward_passes} ({cllm_tpf:.2f})."), moments.biggest_recycled_win, RECYCLE_RACES),
)
TITLES = [s.title for s in STEPS]
# as the Stats tab names them (collocation_view), counts first and long spans wrapped: a long one pushed them away
COLLOCATION_COLUMNS = [CLLM_COUNT, BASE_COUNT, SPAN, PIECES]
COLLOCATION_WIDTHS = ["10%", "10%", "30%", "50%"]


def lesson_races(names: tuple[str, ...] = LESSON_RACES) -> list[tuple[str, Race]]:
    """The shipped races that load; RaceError when none does."""
    races = []
    for name in names:
        try:
            races.append((name, load_from_gallery(GALLERY_DIR, name)))
        except RaceError:
            continue  # a missing or damaged file: the lessons use the others
    if not races:
        raise RaceError(f"the lessons need the races shipped in {GALLERY_DIR.name}/ and none could be read")
    return races


def top_collocations(races: list[tuple[str, Race]]):
    """The CLLM's most often fast-forwarded spans over the races, and a moment showing the first one."""
    # loops left out: a repeated line fast-forwarded whole led the list, and teaches nothing about collocations
    table = collocation_table([r.cllm for _, r in races], [r.base for _, r in races], "fast_forwarded", top=10,
                              hide_loops=True)
    if table.empty:
        return table, None, None
    top = table.iloc[0]
    name, race = races[int(top["run"])]
    start = int(top["position"])
    return table, (name, race), Moment("cllm", int(top["block"]), int(top["iteration"]), start, start + int(top["tokens"]))


def open_step(title: str) -> tuple[str, str, object]:
    """(lesson text, player HTML opened at its moment, collocation table update) of a step."""
    with user_errors():
        if title not in TITLES:
            raise ValueError(f"no such step: {str(title)[:40]!r}; pick one of the listed steps")
        step = STEPS[TITLES.index(title)]
        races = lesson_races(step.races)
        table = gr.update(visible=False)
        if step.find is None:
            frame, found, moment = top_collocations(races)
            table = gr.update(value=display_table(frame, [r.cllm for _, r in races])[COLLOCATION_COLUMNS],
                              visible=True)
        else:
            found, moment = next(((nr, m) for nr in races if (m := step.find(nr[1])) is not None), (None, None))
        if found is None:
            raise ValueError(f"none of the shipped races shows step {title!r}")
    name, race = found
    block = getattr(race, moment.role).blocks[moment.block]
    numbers = (moments.summary_numbers(race) | _totals(races)
               | {"n": race.cllm.meta.n, "span": moment.end - moment.start, "races": len(races),
                  "block_passes": block.iterations, "block_tokens": block.width})
    title_code = race.title.replace("`", "'")  # shown as code: a dunder name is not Markdown bold
    pair = f"{race.base.meta.model} and {race.cllm.meta.model}"
    text = f"### {step.title}\n\n{step.text.format(**numbers)}\n\n*Race: {name}* of {pair} (`{title_code}`)"
    return text, race_html(race, uuid.uuid4().hex[:12], focus=moment), table


def _totals(races: list[tuple[str, Race]]) -> dict[str, float]:
    """Over all the lesson races, both sides: surplus and stationary totals, the paper rate's mean over races
    (the authors' averaging), and the CLLM / base ratios of the two counts the paper's Table 3 holds."""
    sums = [moments.summary_numbers(race) for _, race in races]
    out = {f"all_{role}_{short}": sum(s[f"{role}_{key}"] for s in sums)
           for role in moments.ROLES for short, key in (("ff", "fast_forwarded"), ("st", "stationary"))}
    out |= {f"all_{role}_rate": sum(s[f"{role}_ff_rate"] for s in sums) / len(sums) for role in moments.ROLES}
    ratio = lambda a, b: a / b if b else float("inf")  # noqa: E731
    return out | {"rate_ratio": ratio(out["all_cllm_rate"], out["all_base_rate"]),
                  "st_ratio": ratio(out["all_cllm_st"], out["all_base_st"])}


def step_by(title: str, offset: int) -> str:
    """The title `offset` steps away, clamped to the first and last."""
    i = TITLES.index(title) if title in TITLES else 0
    return TITLES[max(0, min(len(TITLES) - 1, i + offset))]


def build() -> None:
    with gr.Tab("Learn", id="learn") as tab:
        gr.Markdown(HELP)
        step = gr.Radio(TITLES, value=TITLES[0], label="Step", elem_id="learn-step")
        text = gr.Markdown(elem_id="learn-text")
        with gr.Row():
            back = gr.Button("◀ Previous step", size="sm", elem_id="learn-back")
            fwd = gr.Button("Next step ▶", size="sm", elem_id="learn-next")
        table = gr.Dataframe(visible=False, interactive=False, label="Spans the CLLM fast-forwarded most often",
                             elem_id="learn-collocations", wrap=True, column_widths=COLLOCATION_WIDTHS)
        player = make_player("learn-player")
        step.change(open_step, step, [text, player, table], api_name="learn_step")
        tab.select(open_step, step, [text, player, table], api_visibility="private")
        back.click(lambda t: step_by(t, -1), step, step, api_visibility="private", queue=False)
        fwd.click(lambda t: step_by(t, +1), step, step, api_visibility="private", queue=False)
