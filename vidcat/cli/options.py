"""argparse flags generated from the option dataclasses, so every default and help text exists once.

``add_options(parser, TrainConfig)`` adds one flag per field (a nested dataclass field such as
``TrainConfig.data`` adds its class's flags); ``build(TrainConfig, args)`` turns the parsed
namespace back into the dataclass, whose ``__post_init__`` validates the values.
"""
from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields, is_dataclass

from vidcat.config import flag_name, shared_last

_SCALARS = {"int": int, "float": float, "str": str}


def _base_type(f, owner) -> str:
    hint = typing.get_type_hints(owner).get(f.name, str)
    names = [getattr(a, "__name__", str(a)) for a in typing.get_args(hint)] or [getattr(hint, "__name__", str(hint))]
    return next((n for n in names if n != "NoneType"), "str")


def default_of(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _parse_with(fn, name: str):
    def parse(s):
        try:
            return fn(s)
        except (ValueError, TypeError) as e:
            raise argparse.ArgumentTypeError(f"{name}: {e}") from None
    parse.__name__ = name
    return parse


def add_options(parser, cls, exclude=(), dest_prefix: str = "") -> None:
    """One flag per CLI field of ``cls`` (``metadata["cli"] = False`` skips one); the options of the shared
    groups it inherits (``vidcat.config.runtime``) come after its own."""
    for f in shared_last(cls):
        m = f.metadata
        if f.name in exclude or m.get("cli") is False:
            continue
        dest = dest_prefix + f.name
        if m.get("nested"):
            add_options(parser, f.default_factory, exclude, dest_prefix=f"{dest}.")
            continue
        default, kind = default_of(f), _base_type(f, cls)
        help_text = m.get("help", "").replace("%", "%%")  # argparse formats help with %
        if kind == "bool":
            action = "store_false" if m.get("invert") else "store_true"
            parser.add_argument(flag_name(f), dest=dest, action=action, default=default, help=help_text)
            continue
        kw = {"dest": dest, "default": default, "help": help_text, "metavar": f.name.upper()}
        if "parse" in m:
            kw["type"] = _parse_with(m["parse"], flag_name(f))
        elif kind in _SCALARS:
            kw["type"] = _SCALARS[kind]
        if "choices" in m:  # checked by the dataclass, in the same words as every other bad value
            kw["metavar"] = "{" + ",".join(map(str, m["choices"])) + "}" + (",..." if m.get("many") else "")
        if m.get("append"):
            kw.update(action="append", default=None)
        if "nargs" in m and not m.get("positional"):
            kw["nargs"] = m["nargs"]
        if "const" in m:
            kw["const"] = m["const"]
        if m.get("positional"):
            kw.pop("dest")
            parser.add_argument(dest, nargs=m.get("nargs"), **{k: v for k, v in kw.items() if k != "default"})
            continue
        if m.get("required") or (f.default is MISSING and f.default_factory is MISSING):
            kw.update(required=True, default=None)
        parser.add_argument(flag_name(f), **kw)


def build(cls, args: argparse.Namespace, dest_prefix: str = "", **extra):
    """The dataclass ``cls`` from parsed ``args`` (its ``__post_init__`` validates)."""
    values = {}
    for f in fields(cls):
        dest = dest_prefix + f.name
        if f.metadata.get("nested"):
            values[f.name] = build(f.default_factory, args, f"{dest}.")
        elif hasattr(args, dest):
            v = getattr(args, dest)
            if f.metadata.get("append"):
                v = dict(v or []) if _base_type(f, cls) == "dict" else tuple(v or ())
            values[f.name] = v
    values.update(extra)
    return cls(**values)


def parser_defaults(parser, cls, dest_prefix: str = "") -> dict:
    """``{dest: parser default}`` of ``cls``'s flags (tests compare them with the dataclass defaults)."""
    out = {}
    for f in fields(cls):
        if is_dataclass(f.default_factory) if f.default_factory is not MISSING else False:
            out.update(parser_defaults(parser, f.default_factory, f"{dest_prefix}{f.name}."))
            continue
        dest = dest_prefix + f.name
        for action in parser._actions:
            if action.dest == dest:
                out[dest] = action.default
    return out


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format (``vidcat: error: ...``, exit 2)."""

    def error(self, message):
        import sys

        print(f"vidcat: error: {message}", file=sys.stderr)
        sys.exit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for flags and required options."""

    def _get_help_string(self, action):
        if action.required or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)
