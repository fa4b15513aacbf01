"""Command-line options generated from config dataclasses, so a default and its help live in one place: the
field's declaration. Its trailing comment is its help; comment lines above a field say why, and stay out.

Each field becomes a flag `--field-name` of the field's type (a bool that defaults to True becomes
`--no-field-name`, one that defaults to False `--field-name`). The command names the fields it leaves out
and any flag spelled otherwise or limited to choices (`Flags`).

The flags default to "not given" (argparse.SUPPRESS), so `given(args, Config)` holds only what the user
typed: a recipe fills the rest, and the dataclass's own defaults whatever the recipe leaves.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import tokenize
from dataclasses import dataclass, field
from functools import cache

TYPES = {"int": int, "float": float, "str": str}
NONE_WORD = "none"  # how the command line spells None for an optional field


@dataclass(frozen=True)
class Flags:
    """How a command shows a config's fields: names spelled otherwise, choices, fields left out."""

    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> flag and aliases
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    skip: tuple[str, ...] = ()


@cache
def field_help(cls) -> dict[str, str]:
    """Each field's trailing comment in the class's source (the field's first line), without the '#'."""
    helps, line_start = {}, None
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline)
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.NL):
            line_start = None
        elif tok.type == tokenize.COMMENT and line_start is not None:
            helps.setdefault(line_start, tok.string.lstrip("#").strip())
        elif line_start is None and tok.type not in (tokenize.INDENT, tokenize.DEDENT):
            line_start = tok.string if tok.type == tokenize.NAME else ""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in helps.items() if k in names}


def _value_type(f: dataclasses.Field):
    """int, float or str from the field's annotation; for "int | None" a parser that also reads `none`, so a
    value a recipe set can be taken back to None on the command line."""
    spelled = str(f.type).replace(" ", "")
    kind = TYPES[spelled.removesuffix("|None")]
    if not spelled.endswith("|None"):
        return kind

    def kind_or_none(text: str):
        return None if text.strip().lower() == NONE_WORD else kind(text)
    kind_or_none.__name__ = kind.__name__  # argparse names the type in its "invalid int value" message
    return kind_or_none


def add_config_arguments(parser: argparse.ArgumentParser, cls, flags: Flags = Flags()) -> None:
    """One flag per field of `cls` (but flags.skip), help ending in the dataclass's default."""
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in flags.skip:
            continue
        names = flags.names.get(f.name, ("--" + f.name.replace("_", "-"),))
        text = helps.get(f.name, "").replace("%", "%%")  # argparse %-formats help
        if isinstance(f.default, bool):  # --x and --no-x both: a recipe may have set either way
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=f"{text} (default {'on' if f.default else 'off'})")
            continue
        shown = NONE_WORD if f.default is None else f"{f.default:g}" if isinstance(f.default, float) else f.default
        parser.add_argument(*names, dest=f.name, type=_value_type(f), choices=flags.choices.get(f.name),
                            metavar=None if f.name in flags.choices else names[0].lstrip("-").replace("-", "_").upper(),
                            default=argparse.SUPPRESS, help=f"{text} (default {shown})")


def as_flags(values: dict, flags: Flags = Flags()) -> list[str]:
    """Field values as the command-line words that set them (the inverse of `given`)."""
    words = []
    for name, value in values.items():
        flag = flags.names.get(name, ("--" + name.replace("_", "-"),))[0]
        if isinstance(value, bool):  # every bool field has both --x and --no-x
            words.append(flag if value else "--no-" + flag.removeprefix("--"))
            continue
        words += [flag, NONE_WORD if value is None else f"{value:g}" if isinstance(value, float) else str(value)]
    return words


def given(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` the user gave on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}
