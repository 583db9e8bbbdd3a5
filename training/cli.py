"""The one command-line and config-file reader of every training script: ``--config FILE`` (JSON or YAML) and
``--field value`` flags, one per field of the script's config dataclass, plus diffusers' names for the same
concepts (:mod:`training.aliases`); flags win over the file. The dataclass checks every value itself."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any, Literal

from .aliases import (
    IGNORED,
    REFUSED,
    REFUSED_VALUES,
    SWITCH_FIELDS,
    Alias,
    aliases_for,
    global_batch_size,
    launcher_world_size,
)
from .fields import Range, check_value, parse_text

PER_DEVICE_BATCH = "train_batch_size"


class ConfigError(ValueError):
    """A bad value, flag or config file: the command line reports it as a usage error (:func:`run`)."""


def run(main, argv: list[str] | None = None) -> None:
    """A training script's ``main`` from the command line: a :class:`ConfigError` is one line on stderr and exit
    status 2, as argparse reports its own usage errors, not a traceback."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        sys.exit(2)


def parse_config(cls: type, argv: list[str] | None = None):
    """Build the config dataclass ``cls`` from ``--config FILE`` and flags; unknown keys and bad values raise
    :class:`ConfigError` (a ValueError) naming the field."""
    try:
        return _parse_config(cls, argv)
    except ConfigError:
        raise
    except (ValueError, OSError) as error:
        raise ConfigError(str(error)) from None


def _parse_config(cls: type, argv: list[str] | None):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    aliases = aliases_for(set(fields))
    args = vars(_parser(cls, hints, fields, aliases).parse_args(argv))
    config_file = args.pop("config")
    for name in set(IGNORED) - set(fields):
        args.pop(name, None)
    _refuse(args, "")
    values = {}
    if config_file:
        given = load_config_file(config_file)
        _refuse(given, f" (in {config_file})")
        given = {k: v for k, v in given.items() if k not in IGNORED or k in fields}
        unknown = set(given) - set(fields) - set(aliases)
        if unknown:
            raise ValueError(f"unknown config keys in {config_file}: {sorted(unknown)}")
        values = _to_fields(given, aliases, f"config file {config_file}")
    flags = {}
    for name, text in args.items():
        if text is None:
            continue
        alias = aliases.get(name)
        if alias is not None and alias.switch:
            flags[name] = text  # True: the switch was given
        else:
            flags[name] = parse_text(name, hints[alias.target if alias else name], text)
    flags = _to_fields(flags, aliases, "the command line")
    for ours, theirs in (("batch_size", PER_DEVICE_BATCH), (PER_DEVICE_BATCH, "batch_size")):
        if ours in flags:
            values.pop(theirs, None)  # the command line wins over the file, whichever name each used
    values.update(flags)
    if PER_DEVICE_BATCH in values:
        values["batch_size"] = _global_batch(values, fields)
    return cls(**values)


def _refuse(given: dict[str, Any], where: str) -> None:
    """A diffusers flag (or value) that cannot apply here: a usage error that says why."""
    for name, value in given.items():
        if value is None:
            continue
        why = REFUSED.get(name) or (REFUSED_VALUES.get((name, value)) if isinstance(value, str) else None)
        if why:
            shown = f"--{name}" if name in REFUSED else f"--{name} {value}"
            raise ConfigError(f"{shown}{where} cannot apply: {why}.")


def _parser(cls: type, hints: dict, fields: dict, aliases: dict[str, Alias]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=f"Train with {cls.__name__}. Every field can be given as --name value, or in --config FILE. "
        "diffusers' train_unconditional.py names are accepted too."
    )
    parser.add_argument("--config", help="a JSON or YAML file of field: value pairs")
    for name, f in fields.items():
        choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is Literal else None
        switch = {"nargs": "?", "const": SWITCH_FIELDS[name]} if name in SWITCH_FIELDS else {}
        parser.add_argument(
            f"--{name}", type=str, default=None, choices=choices, help=f"default: {f.default}", **switch
        )
    for name, alias in aliases.items():
        if alias.switch:
            parser.add_argument(
                f"--{name}", action="store_const", const=True, default=None, help=f"sets {alias.switch}"
            )
        else:
            parser.add_argument(f"--{name}", type=str, default=None, help=f"diffusers' name for --{alias.target}")
    for name, why in {**IGNORED, **REFUSED}.items():
        if name not in fields:
            verdict = "accepted, ignored" if name in IGNORED else "refused"
            parser.add_argument(f"--{name}", nargs="?", const=True, default=None, help=f"{verdict}: {why}")
    return parser


def _to_fields(given: dict[str, Any], aliases: dict[str, Alias], where: str) -> dict[str, Any]:
    """``given`` (fields and aliases) as fields; the per-device batch stays under its own name until the end."""
    values = {k: v for k, v in given.items() if k not in aliases}
    for name, value in given.items():
        alias = aliases.get(name)
        if alias is None:
            continue
        if alias.switch:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}.")
            translated = alias.switch if value else alias.off
        elif name == PER_DEVICE_BATCH:
            translated = {PER_DEVICE_BATCH: value}
        else:
            translated = {alias.target: alias.convert(value) if alias.convert and isinstance(value, str) else value}
        for target in translated:
            if target in values or (target == "batch_size" and PER_DEVICE_BATCH in values):
                raise ValueError(f"{where} gives {target} twice (once as diffusers' --{name}): give one of them.")
        values.update(translated)
    if PER_DEVICE_BATCH in values and "batch_size" in values:
        raise ValueError(f"{where} gives batch_size twice (once as diffusers' --{PER_DEVICE_BATCH}): give one.")
    return values


def _global_batch(values: dict[str, Any], fields: dict) -> int:
    per_device = check_value(PER_DEVICE_BATCH, int, values.pop(PER_DEVICE_BATCH), Range(1))
    accumulation = values.get("gradient_accumulation_steps", fields["gradient_accumulation_steps"].default)
    accumulation = check_value("gradient_accumulation_steps", int, accumulation, Range(1))
    return global_batch_size(per_device, accumulation, launcher_world_size())


def _yaml_loader():
    """YAML's safe loader that also reads 1e-4 (no dot, as JSON and Python write it) as a number, not a string."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    number = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789"))
    return Loader


def load_config_file(path: str) -> dict:
    """The field: value pairs of a JSON or YAML file (a mapping), with clear errors for anything else."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"config file {path!r} does not exist.")
    text = file.read_text()
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.load(text, Loader=_yaml_loader()) or {}
        else:
            values = json.loads(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        kind = "YAML" if file.suffix.lower() in (".yaml", ".yml") else "JSON"
        raise ValueError(f"config file {path!r} is not valid {kind}: {err}") from None
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"config file {path!r} must hold field: value pairs, got {type(values).__name__}.")
    return values
