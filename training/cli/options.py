"""A command's options as data, for a form that sets them (the Training dock's "More options").

The options of ``vis-ws COMMAND`` are read from its parser, whose defaults come
from the stage's config dataclass, so a form built from them shows the same
settings, defaults and help as ``vis-ws COMMAND --help``, and cannot drift.
Building the parser imports the stages (torch); a process that should not load
torch (napari's) runs ``python -m training.cli.options COMMAND...``, which
prints them as JSON (:func:`options_json`, read back with
:meth:`OptionSpec.from_dict`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

KINDS = (bool, int, float, str)
"""The kinds of value a form field holds; options of other kinds (several values, paths) are left out."""


@dataclass(frozen=True)
class OptionSpec:
    """One optional argument of a command.

    Attributes
    ----------
    flag : str
        The long option (``--crop``).
    kind : type
        ``bool`` (a switch: the flag alone), ``int``, ``float`` or ``str``.
    default : bool, int, float, str or None
        What the command uses when the flag is not given.
    choices : tuple or None
        The values it accepts, when it names them.
    help : str
        The command's help text for it (defaults filled in).
    """

    flag: str
    kind: type
    default: Any
    choices: tuple[Any, ...] | None
    help: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the kind by name."""
        return {"flag": self.flag, "kind": self.kind.__name__, "default": self.default,
                "choices": None if self.choices is None else list(self.choices), "help": self.help}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptionSpec:
        """Back from :meth:`to_dict`."""
        kind = {k.__name__: k for k in KINDS}[data["kind"]]
        choices = data.get("choices")
        return cls(str(data["flag"]), kind, data.get("default"), None if choices is None else tuple(choices),
                   str(data.get("help", "")))  # fmt: skip

    @property
    def label(self) -> str:
        """The flag without its dashes (``batch-size``), as a form labels it."""
        return self.flag.lstrip("-")

    def value(self, value: Any) -> Any:
        """``value`` as the option takes it, or None where the command's default stands (empty, or the default).

        Raises
        ------
        ValueError
            ``value`` is not of the option's kind (the message names the flag).
        """
        if self.kind is bool:
            return True if bool(value) and not self.default else None
        if value is None:
            return None
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
        try:
            typed = self.kind(value)
        except (TypeError, ValueError):
            what = "a number" if self.kind is not str else "text"
            raise ValueError(f"{self.flag} {value!r}: expected {what}") from None
        if self.choices is not None and typed not in self.choices:
            raise ValueError(f"{self.flag} {typed!r}: expected one of {', '.join(map(str, self.choices))}")
        return None if typed == self.default else typed

    def argv(self, value: Any) -> list[str]:
        """The arguments that set ``value``: [] for the default, ``[flag]`` for a switch that is on.

        Raises
        ------
        ValueError
            As :meth:`value`.
        """
        typed = self.value(value)
        if typed is None:
            return []
        return [self.flag] if self.kind is bool else [self.flag, str(typed)]


def _subparser(command: str) -> argparse.ArgumentParser:
    from training.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse has no public way to reach its subparsers
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise KeyError(f"vis-ws has no command {command!r}")


def command_options(command: str) -> list[OptionSpec]:
    """Every optional argument of ``vis-ws COMMAND`` that takes one value or none, in the order of its help.

    Left out: ``--help``, options with several values or a path type (a
    form sets those with its own controls) and switches that turn a default
    off again. Raises KeyError for an unknown command.
    """
    specs = []
    for action in _subparser(command)._actions:
        flags = [s for s in action.option_strings if s.startswith("--")]
        if not flags or isinstance(action, argparse._HelpAction) or action.nargs not in (None, 0):
            continue
        if isinstance(action, argparse._StoreTrueAction):
            kind: type = bool
        elif isinstance(action, argparse._StoreAction) and action.type in (None, int, float, str):
            kind = action.type or str
        else:
            continue
        text = (action.help or "").replace("%(default)s", str(action.default)).replace("%%", "%")
        choices = tuple(action.choices) if action.choices is not None else None
        specs.append(OptionSpec(flags[0], kind, action.default, choices, text))
    return specs


def options_json(commands: list[str]) -> str:
    """``{command: [OptionSpec.to_dict(), ...]}`` of each command, as one JSON line."""
    return json.dumps({c: [spec.to_dict() for spec in command_options(c)] for c in commands})


if __name__ == "__main__":
    print(options_json(sys.argv[1:]))
