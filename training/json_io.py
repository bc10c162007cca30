"""Reading JSON inputs with one-line errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from training.errors import InputError


def is_json_int(v: Any) -> bool:
    """A JSON integer (not a bool), which also makes it hashable for id lookups."""
    return isinstance(v, int) and not isinstance(v, bool)


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file.

    Raises
    ------
    InputError
        Missing file, a folder, a path the OS refuses (too long), bytes that
        are not UTF-8 or invalid JSON, with the line and column of the syntax
        error.
    """
    p = Path(path)
    try:  # no exists() first: it raises too for a path the OS refuses (too long)
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except IsADirectoryError:
        raise InputError(p, "is a folder, expected a JSON file") from None
    except UnicodeDecodeError as exc:
        raise InputError(p, f"not UTF-8 text (byte {exc.start}); expected a JSON file") from None
    except OSError as exc:
        raise InputError.from_os_error(exc, p) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(p, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(p, "malformed JSON: nested too deeply") from None
