"""Option fields: a dataclass field with its CLI metadata (:func:`opt`), the checks that metadata drives
(:func:`check_fields`, :func:`require`), the value parsers several options share, and :func:`part_of`,
which gives a command some of a shared option group's fields."""
from __future__ import annotations

import math
import typing
from dataclasses import field, fields, make_dataclass

from vidcat.errors import VidcatError


def opt(default=None, help: str = "", *, factory=None, **meta):
    """A dataclass field with CLI metadata: ``help``, and optionally ``flag`` (the option's spelling),
    ``choices``, ``parse`` (str -> value), ``positional``, ``required``, ``invert`` (a ``--quiet``-style
    flag that sets a True-by-default field to False), ``cli=False`` (API only)."""
    meta["help"] = help
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def csv_tuple(s) -> tuple:
    """``"video,audio"`` -> ``("video", "audio")``; tuples and lists pass through."""
    if isinstance(s, (list, tuple)):
        return tuple(s)
    return tuple(x.strip() for x in str(s).split(",") if x.strip())


def int_tuple(s) -> tuple:
    """``"1,2"`` -> ``(1, 2)``; tuples and lists of numbers pass through as ints."""
    return tuple(int(x) for x in csv_tuple(s))


def parse_kv(s: str) -> tuple[str, object]:
    """``KEY=VALUE`` with a JSON value when it parses (``fusion=late``, ``hidden=128``)."""
    import json

    if "=" not in s or not s.split("=", 1)[0].strip():
        raise ValueError("wants KEY=VALUE")
    k, v = s.split("=", 1)
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


# -- validation (each message names the option as the user typed it) ----------------------------------
def check(ok: bool, name: str, want: str, value) -> None:
    if not ok:
        raise VidcatError(f"{name} must be {want}, not {value!r}")


def check_fields(obj) -> None:
    """Type-independent checks driven by metadata: ``choices``, ``min`` (inclusive), ``gt`` (exclusive),
    ``max``; ``None`` is allowed for optional fields."""
    for f in fields(obj):
        v, m, name = getattr(obj, f.name), f.metadata, flag_name(f)
        if v is None:
            continue
        if "choices" in m:
            values = v if isinstance(v, tuple) and m.get("many") else (v,)
            bad = [x for x in values if x not in m["choices"]]
            check(not bad, name, "one of " + ", ".join(map(str, m["choices"])), ",".join(map(str, bad)) if m.get("many") else v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        check(not isinstance(v, float) or math.isfinite(v), name, "a finite number", v)
        if "min" in m:
            check(v >= m["min"], name, f">= {m['min']}", v)
        if "gt" in m:
            check(v > m["gt"], name, f"> {m['gt']}", v)
        if "max" in m:
            check(v <= m["max"], name, f"<= {m['max']}", v)


def require(obj, *names) -> None:
    for f in fields(obj):
        if f.name in names and getattr(obj, f.name) in (None, ""):
            raise VidcatError(f"{flag_name(f)} is required")


# -- shared option groups ------------------------------------------------------------------------------
def part_of(group: type, *names: str, **defaults) -> type:
    """A base class holding only ``names`` of the option group ``group`` (a keyword-only dataclass such as
    :class:`vidcat.config.runtime.Runtime`): same help, flag and checks, and the same default unless
    ``defaults`` gives the command its own. A command inherits the shared options it takes this way, so
    each is still defined once and it gets no flag it has no use for."""
    hints = typing.get_type_hints(group)
    unknown = set(names) - set(hints) | set(defaults) - set(names)
    if unknown:
        raise TypeError(f"part_of({group.__name__}): {sorted(unknown)} not among its options or those taken")
    keep = [(f.name, hints[f.name], field(default=defaults.get(f.name, f.default), metadata=f.metadata))
            for f in fields(group) if f.name in names]
    part = make_dataclass(group.__name__, keep, kw_only=True, namespace={"__post_init__": check_fields,
                                                                          "__doc__": group.__doc__})
    part.__module__ = group.__module__
    return part


def shared_last(cls) -> list:
    """``cls``'s fields in the order its help lists them: its own first, then those of the shared groups
    it inherits (fields whose metadata names a ``group``)."""
    return sorted(fields(cls), key=lambda f: "group" in f.metadata)
