"""Declared environment variables and a reader that validates them.

Every variable the daemon reads is declared once as a `Var`, with its default
and a one-line description. The README's configuration table and
`check-config` are generated from these declarations, so they cannot drift.
The reader turns a raw string into a typed value or raises `ConfigError`
naming the variable, what was wrong and what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from daemon.errors import ConfigError

__all__ = ("EnvReader", "Var")


@dataclass(frozen=True, slots=True)
class Var:
    """One environment variable: its name, default, meaning and secrecy."""

    name: str
    default: str | None
    help: str
    secret: bool = False
    section: str = "general"


class EnvReader:
    """Typed, validating access to a snapshot of the environment.

    It never looks at `os.environ` itself: the CLI passes the mapping in.
    """

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, var: Var) -> str | None:
        """The stripped value, or the default; an empty string counts as unset."""
        value = self._env.get(var.name)
        if value is None or not value.strip():
            return var.default
        return value.strip()

    def is_set(self, var: Var) -> bool:
        value = self._env.get(var.name)
        return value is not None and bool(value.strip())

    def string(self, var: Var, *, max_len: int = 4096) -> str:
        value = self.raw(var)
        if value is None:
            raise ConfigError(var.name, "is not set", var.help)
        if len(value) > max_len:
            raise ConfigError(var.name, f"is {len(value)} characters long", f"at most {max_len}")
        return value

    def optional(self, var: Var) -> str | None:
        return self.raw(var)

    def choice(self, var: Var, choices: tuple[str, ...]) -> str:
        value = self.string(var).lower()
        if value not in choices:
            raise ConfigError(var.name, f"{_quote(value)} is not allowed", "one of " + "|".join(choices))
        return value

    def integer(self, var: Var, *, low: int, high: int) -> int:
        text = self.string(var)
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(var.name, f"{_quote(text)} is not an integer", _range(low, high)) from None
        if not low <= value <= high:
            raise ConfigError(var.name, f"{value} is out of range", _range(low, high))
        return value

    def number(self, var: Var, *, low: float, high: float) -> float:
        text = self.string(var)
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(var.name, f"{_quote(text)} is not a number", _range(low, high)) from None
        if math.isnan(value) or not low <= value <= high:
            raise ConfigError(var.name, f"{text} is out of range", _range(low, high))
        return value

    def boolean(self, var: Var) -> bool:
        value = self.string(var).lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(var.name, f"{_quote(value)} is not a boolean", "true or false")

    def json(self, var: Var, *, expected: str) -> Any:
        """Parse JSON; the error never echoes the value (it is usually a secret)."""
        text = self.string(var, max_len=1 << 20)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(var.name, f"is not valid JSON ({exc.msg} at position {exc.pos})", expected) from None

    def names(self) -> Iterator[str]:
        return iter(self._env)


def _quote(text: str) -> str:
    """Echo a short non-secret value back in an error; long ones are elided."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _range(low: float, high: float) -> str:
    return f"a value from {low:g} to {high:g}"
