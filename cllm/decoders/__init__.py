"""Exact parallel decoders beyond plain Jacobi, and the one registry of decoder names.

One file per decoder (recycle, multiblock, lookup) over a shared module of greedy verification (verify)
and the block loop they share (base); plain Jacobi stays in cllm/jacobi.py, where the rest of the package
(batched Jacobi, training data collection) uses it. A decoder is chosen by its config's class: each config
subclasses JacobiConfig, so code that passes a JacobiConfig along (evaluate, bench, the app) runs any
decoder unchanged, and `decode` picks the right one.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

from cllm.decoders.base import start_decoder
from cllm.decoders.lookup import Lookup, LookupConfig
from cllm.decoders.multiblock import Multiblock, MultiblockConfig
from cllm.decoders.recycle import Recycle, RecycleConfig
from cllm.jacobi import BlockRun, JacobiConfig
from cllm.trajectory import Trajectory


@dataclass(frozen=True)
class DecoderSpec:
    config: type[JacobiConfig]  # its settings; fields beyond JacobiConfig's are the decoder's own options
    start: Callable[..., BlockRun]  # (model, prompt_ids, config, eos_token_id) -> a run to step or finish
    summary: str


DECODERS: dict[str, DecoderSpec] = {
    "jacobi": DecoderSpec(JacobiConfig, BlockRun, "plain Jacobi iteration of each block"),
    "recycle": DecoderSpec(RecycleConfig, partial(start_decoder, Recycle),
                           "Jacobi + verifying n-grams recycled from its own drafts and the prompt"),
    "multiblock": DecoderSpec(MultiblockConfig, partial(start_decoder, Multiblock),
                              "Jacobi + a second block drafting behind the active one"),
    "lookup": DecoderSpec(LookupConfig, partial(start_decoder, Lookup),
                          "prompt lookup: drafts copied from the prompt and output"),
}
DEFAULT_DECODER = "jacobi"


def decoder_name(config: JacobiConfig) -> str:
    """The registry name of the decoder that `config` selects (by its class)."""
    for name, spec in DECODERS.items():
        if type(config) is spec.config:
            return name
    raise ValueError(f"no decoder takes a {type(config).__name__}")


def decode(model, prompt_ids: list[int], config: JacobiConfig, eos_token_id: int | None = None) -> Trajectory:
    """Run the decoder that `config` selects; every one returns a record equal to greedy AR's output."""
    return start_decode(model, prompt_ids, config, eos_token_id).finish()


def start_decode(model, prompt_ids: list[int], config: JacobiConfig, eos_token_id: int | None = None) -> BlockRun:
    """The prefilled run of the decoder that `config` selects, to step block by block (cllm.jacobi.BlockRun)."""
    return DECODERS[decoder_name(config)].start(model, prompt_ids, config, eos_token_id)


def own_fields(name: str) -> list:
    """The dataclass fields a decoder adds to JacobiConfig (its CLI options)."""
    common = {f.name for f in fields(JacobiConfig)}
    return [f for f in fields(DECODERS[name].config) if f.name not in common]


def make_config(name: str, **settings) -> JacobiConfig:
    """A config of decoder `name`; settings it does not take are an error, naming them."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")
    known = {f.name for f in fields(DECODERS[name].config)}
    extra = sorted(set(settings) - known)
    if extra:
        raise ValueError(f"decoder {name} has no option {', '.join(extra)}")
    return DECODERS[name].config(**settings)


def add_decoder_arguments(parser, several: bool = False) -> None:
    """--decoder and every decoder's own options as flags, generated from the config dataclasses (the
    defaults stay there: a flag left out means the dataclass default). With `several`, --decoder takes a
    comma-separated list or `all` (parsed as a list of names; read it with configs_from_args)."""
    summary = "; ".join(f"{name}: {spec.summary}" for name, spec in DECODERS.items())
    if several:
        parser.add_argument("--decoder", type=decoder_list, default=[DEFAULT_DECODER], metavar="NAME[,NAME...]|all",
                            help=f"one row/report per decoder ({summary})")
    else:
        parser.add_argument("--decoder", choices=list(DECODERS), default=DEFAULT_DECODER, help=summary)
    takers: dict[str, list] = {}  # option -> (decoder, field) of each decoder that takes it
    for name in DECODERS:
        for f in own_fields(name):
            takers.setdefault(f.name, []).append((name, f))
    for option, pairs in takers.items():
        f = pairs[0][1]
        kind = _yes_no if isinstance(f.default, bool) else type(f.default)
        parser.add_argument("--" + option.replace("_", "-"), type=kind, default=None, help="; ".join(
            f"{name}: default {g.default} (see {DECODERS[name].config.__name__})" for name, g in pairs))


def config_from_args(args, common: dict) -> JacobiConfig:
    """The chosen decoder's config from parsed flags; an option of another decoder is an error."""
    return configs_from_args(args, common)[0]


def configs_from_args(args, common: dict) -> list[JacobiConfig]:
    """A config per chosen decoder (args.decoder: a name, or a list of them), each with the option flags it
    takes; an option flag that no chosen decoder takes is an error, naming one that does."""
    names = [args.decoder] if isinstance(args.decoder, str) else list(args.decoder)
    mine = {f.name for name in names for f in own_fields(name)}
    for name in DECODERS:
        for f in own_fields(name):
            if getattr(args, f.name, None) is not None and f.name not in mine:
                raise ValueError(f"--{f.name.replace('_', '-')} is not an option of {', '.join(names)} (it is one of {name})")
    configs = []
    for name in names:
        own = {f.name: getattr(args, f.name) for f in own_fields(name) if getattr(args, f.name, None) is not None}
        configs.append(make_config(name, **common, **own))
    return configs


def decoder_list(text: str) -> list[str]:
    """`all` or comma-separated decoder names -> the names, in registry order for `all`, without repeats."""
    if text.strip() == "all":
        return list(DECODERS)
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [n for n in names if n not in DECODERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown decoder {bad[0] if bad else text!r}; choose from {', '.join(DECODERS)} or all")
    return names


def _yes_no(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")
