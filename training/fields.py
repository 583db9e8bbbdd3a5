"""Typed, bounded configuration fields, checked generically from a dataclass's annotations and a table of
bounds, whether a value came from a command-line flag, a JSON/YAML config file or Python.

Every check raises a ValueError that starts with the field's name.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

INFINITY = math.inf


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; ``low_open``/``high_open`` exclude the end itself."""

    low: float
    high: float = INFINITY
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == INFINITY:
            return f"{'>' if self.low_open else '≥'} {_number(self.low)}"
        return f"in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}{')' if self.high_open else ']'}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(hint) -> str:
    """The field's kind: int, float, str, optional_str, choice or int_tuple."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "choice"
    if origin is tuple:
        return "int_tuple"
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return "optional_str"
    return {int: "int", float: "float", str: "str"}[hint]


def parse_text(name: str, hint, text: str):
    """A command-line value: the text converted to the field's type (checked afterwards like any value)."""
    kind = _kind(hint)
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "int_tuple":
            return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        wanted = {"int": "an integer", "float": "a number", "int_tuple": "comma-separated integers"}[kind]
        raise ValueError(f"{name} must be {wanted}, got {text!r}.") from None
    if kind == "optional_str" and text.lower() == "none":
        return None
    return text


def _number_error(name: str, wanted: str, value: Any) -> ValueError:
    hint = ""
    if isinstance(value, str):
        hint = " (a quoted string: write the number without quotes)"
    return ValueError(f"{name} must be {wanted}, got {value!r}{hint}.")


def check_value(name: str, hint, value: Any, bound: Range | None, length: Range | None = None):
    """``value`` checked against the field's type and bounds; returns it normalised (int → float for a float
    field, list → tuple)."""
    kind = _kind(hint)
    if kind == "int":
        if not _is_int(value):
            raise _number_error(name, "an integer", value)
    elif kind == "float":
        if not (_is_int(value) or isinstance(value, float)):
            raise _number_error(name, "a number", value)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}.")
    elif kind == "int_tuple":
        if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
            raise ValueError(f"{name} must be a list of integers, got {value!r}.")
        value = tuple(value)
        if length is not None and len(value) not in length:
            raise ValueError(f"{name} must have a number of entries {length}, got {len(value)}: {value!r}.")
    elif kind == "choice":
        if value not in typing.get_args(hint):
            raise ValueError(f"{name} must be one of {typing.get_args(hint)}, got {value!r}.")
    elif not (isinstance(value, str) or (kind == "optional_str" and value is None)):
        raise ValueError(f"{name} must be a string, got {value!r}.")
    if bound is not None:
        for number in value if kind == "int_tuple" else [value]:
            if number not in bound:
                raise ValueError(f"{name} must be {bound}, got {_number(number)}.")
    return value


def check_fields(config, bounds: dict[str, Range], lengths: dict[str, Range]) -> None:
    """Check and normalise every field of the dataclass ``config`` in place. A number or list field without an
    entry in ``bounds`` is a programming error (every such field is bounded)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        kind = _kind(hints[f.name])
        if kind in ("int", "float", "int_tuple") and f.name not in bounds:
            raise TypeError(f"{type(config).__name__}.{f.name} has no entry in the table of bounds.")
        value = check_value(f.name, hints[f.name], getattr(config, f.name), bounds.get(f.name), lengths.get(f.name))
        setattr(config, f.name, value)
