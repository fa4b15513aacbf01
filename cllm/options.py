"""Command-line options generated from config dataclasses, so a default and its help live in one place.

A config field declared with `option(default, "help")` becomes a flag `--field-name` of the field's type;
metadata may rename it (`flag`), add aliases, give choices, or keep the field off the command line. A bool
that defaults to True becomes `--no-field-name`; one that defaults to False, `--field-name`.

The flags default to "not given" (argparse.SUPPRESS), so `given(args, Config)` holds only what the user
typed: a recipe fills the rest, and the dataclass's own defaults whatever the recipe leaves.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

TYPES = {"int": int, "float": float, "str": str}


def option(default: Any, help: str, **meta) -> Any:
    """A dataclass field with its command-line help (meta: flag, aliases, choices, cli=False)."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def _flag(f: dataclasses.Field) -> str:
    if "flag" in f.metadata:
        return f.metadata["flag"]
    prefix = "--no-" if f.default is True else "--"
    return prefix + f.name.replace("_", "-")


def _value_type(f: dataclasses.Field):
    """int, float or str from the field's annotation ("int | None" -> int)."""
    name = str(f.type).replace(" ", "").removesuffix("|None")
    return TYPES[name]


def cli_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata and f.metadata.get("cli", True)]


def add_config_arguments(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per option field of `cls` (but `skip`), help ending in the dataclass's default."""
    for f in cli_fields(cls):
        if f.name in skip:
            continue
        names = [_flag(f), *f.metadata.get("aliases", ())]
        common = {"dest": f.name, "default": argparse.SUPPRESS}
        if isinstance(f.default, bool):
            action = "store_false" if f.default else "store_true"
            parser.add_argument(*names, action=action, help=f.metadata["help"], **common)
            continue
        shown = "none" if f.default is None else f"{f.default:g}" if isinstance(f.default, float) else f.default
        parser.add_argument(*names, type=_value_type(f), choices=f.metadata.get("choices"),
                            help=f"{f.metadata['help']} (default {shown})", **common)


def given(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` the user gave on the command line."""
    names = {f.name for f in cli_fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}
