"""Durations on the command line: ``300``, ``90s``, ``5m``, ``2h``, ``1d`` (a number alone is seconds)."""

from __future__ import annotations

import re
from typing import Any

import click

__all__ = ["DURATION", "parse_duration"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FORM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError with one sentence when it is not a duration."""
    match = _FORM.match(text)
    if match is None:
        raise ValueError(f"expected a duration like 30s, 5m, 2h or a number of seconds, found {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


class _Duration(click.ParamType):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds <= 0:
            self.fail(f"expected a duration above zero, found {value!r}", param, ctx)
        return seconds


DURATION = _Duration()
