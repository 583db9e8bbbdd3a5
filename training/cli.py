"""The one command-line and config-file reader of every training script: ``--config FILE`` (JSON or YAML) and
``--field value`` flags, one per field of the script's config dataclass; flags win over the file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Literal

from .fields import parse_text


def parse_config(cls: type, argv: list[str] | None = None):
    """Build the config dataclass ``cls`` from ``--config FILE`` and ``--field value`` flags; unknown keys are
    errors, and every value is checked by ``cls`` itself."""
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(
        description=f"Train with {cls.__name__}. Every field can be given as --name value."
    )
    parser.add_argument("--config", help="a JSON or YAML file of field: value pairs")
    for f in dataclasses.fields(cls):
        choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else None
        parser.add_argument(f"--{f.name}", type=str, default=None, choices=choices, help=f"default: {f.default}")
    args = parser.parse_args(argv)
    values: dict = load_config_file(args.config) if args.config else {}
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown config keys in {args.config}: {sorted(unknown)}")
    for f in dataclasses.fields(cls):
        text = getattr(args, f.name)
        if text is not None:
            values[f.name] = parse_text(f.name, hints[f.name], text)
    return cls(**values)


def load_config_file(path: str) -> dict:
    """The field: value pairs of a JSON or YAML file (a mapping), with clear errors for anything else."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"config file {path!r} does not exist.")
    text = file.read_text()
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise ValueError(
            f"config file {path!r} is not valid {file.suffix.lstrip('.').upper() or 'JSON'}: {err}"
        ) from None
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"config file {path!r} must hold field: value pairs, got {type(values).__name__}.")
    return values
