"""Command-line options made from a config dataclass: the field gives the default, its numpydoc text the help.

Each stage's config dataclass (``CAMTrainConfig``, ``IRNTrainConfig``,
``DetectionTrainConfig``, ``FlowTrainConfig``) is the one source of its
settings. :func:`add_field` turns one field into an ``argparse`` option whose
default is the field's and whose help is the field's entry in the class's
``Attributes`` section, so ``vis-ws COMMAND --help``, the plugin's option
forms (:mod:`training.cli.options`) and the API docs say the same thing.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from typing import Any

ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
"""A Sphinx cross-reference (``:func:`~a.b.c```)."""

LITERAL = re.compile(r"``([^`]+)``")
"""An inline literal (````crop````)."""


def field_docs(cls: type) -> dict[str, str]:
    """The description of each field in ``cls``'s numpydoc ``Attributes`` section, as one line of text.

    Entries naming several fields (``lr, momentum : float``) give each the
    same text. Fields listed without a description map to "".

    Parameters
    ----------
    cls : type
        A class whose docstring has an ``Attributes`` section.

    Returns
    -------
    dict
        Field name → description (whitespace collapsed, markup kept).
    """
    lines = (inspect.getdoc(cls) or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines[:-1]) if line == "Attributes" and set(lines[i + 1]) == {"-"})
    except StopIteration:
        return {}
    docs: dict[str, list[str]] = {}
    names: list[str] = []
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and lines[i + 1] and set(lines[i + 1]) == {"-"}:
            break  # the next section
        if line and not line[0].isspace():
            names = [name.strip() for name in line.split(" : ")[0].split(",")]
            for name in names:
                docs[name] = []
        elif line.strip():
            for name in names:
                docs[name].append(line.strip())
    return {name: " ".join(text) for name, text in docs.items()}


def plain_help(text: str) -> str:
    """numpydoc text as ``--help`` shows it: cross-references by name (``~`` shortens), literals bare, ``%`` escaped.

    Parameters
    ----------
    text : str
        A field's description (:func:`field_docs`).
    """
    text = ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if "~" in m.group(0) else m.group(1), text)
    return LITERAL.sub(r"\1", text).replace("%", "%%")  # argparse formats help with %


def flag_of(field: str, prefix: str = "") -> str:
    """The long option that sets ``field``: ``batch_size`` → ``--batch-size`` (``--irn-batch-size`` with ``irn-``)."""
    return "--" + prefix + field.replace("_", "-")


def add_field(
    parser: argparse.ArgumentParser, config: Any, field: str, prefix: str = "", what: str = "", **options: Any
) -> argparse.Action:
    """Add the option that sets ``config``'s ``field``: its default, type and help from the dataclass.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    config : dataclass instance
        The defaults (usually the config class called with no arguments).
    field : str
        A field of ``config`` documented in its ``Attributes`` section.
    prefix : str
        Put before the flag (``irn-``), for commands that set several configs.
    what : str
        Put before the help (``classifier``), for the same commands.
    **options
        Passed to ``add_argument`` over the generated ones (``choices``,
        ``metavar``, ``flag``: another spelling of the flag; a ``--no-``
        flag of a field that is on by default is a switch that turns it off).

    Raises
    ------
    ValueError
        ``field`` is not a field of ``config``, its docstring does not describe it, or ``help`` is
        given (programming errors: every option's help comes from the docstring).
    """
    doc = field_docs(type(config)).get(field, "")
    if field not in {f.name for f in dataclasses.fields(config)} or not doc or "help" in options:
        raise ValueError(f"{type(config).__name__}.{field}: not a documented field, or a help given")
    flag = options.pop("flag", flag_of(field, prefix))
    default = getattr(config, field)
    text = f"{what}: {plain_help(doc)}" if what else plain_help(doc)
    if isinstance(default, bool):
        if flag.startswith("--no-"):
            options.setdefault("action", "store_true")
            text = f"turns this off: {text}"
        else:
            options.setdefault("action", argparse.BooleanOptionalAction)
            options.setdefault("default", default)
    else:
        options.setdefault("default", default)
        if type(default) in (int, float) and "type" not in options:
            options["type"] = type(default)
    return parser.add_argument(flag, help=text, **options)
