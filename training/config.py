"""Config dataclasses to and from JSON (``config.json`` of runs and datasets), without importing torch."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

from training.errors import InputError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready fields of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def absent_values(cls: type) -> dict[str, Any]:
    """Values of fields added to a config class after runs were written without them: what those runs did.

    A class lists them in a ``ABSENT`` class attribute (``{"working_size": 0}``:
    runs written before the working scale worked at frame size, while new
    runs default to 360). Fields not listed meant their default.
    """
    return dict(getattr(cls, "ABSENT", {}))


def config_from_dict(cls: type[C], data: Any, path: str | os.PathLike | None, what: str) -> C:
    """Rebuild a config dataclass from JSON; one-line InputError naming ``path``.

    Lists become tuples where the field's default is a tuple (JSON has no tuples).
    A field the JSON lacks was added after the run was written: it takes the
    value in :func:`absent_values` (what those runs did), else its default.
    """
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object with the {what} config")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(path, f"unknown {what} config field {unknown[0]!r}")
    kwargs = {
        k: tuple(v) if isinstance(v, list) and isinstance(fields[k].default, tuple) else v for k, v in data.items()
    }
    kwargs = {**{k: v for k, v in absent_values(cls).items() if k not in kwargs}, **kwargs}
    try:
        return cls(**kwargs)
    except InputError as exc:
        raise InputError(path, exc.problem) from None
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"invalid {what} config ({exc})") from None
