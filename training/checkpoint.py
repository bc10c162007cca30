"""Checkpoints: written atomically, loaded without executing code.

A checkpoint is a dict of tensors and plain Python values (numbers, strings,
lists, dicts), saved with ``torch.save`` through a temp file + rename and
loaded with ``torch.load(..., weights_only=True)`` so a file from elsewhere
cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from training.atomic import atomic_open
from training.errors import InputError


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save ``state`` to ``path`` atomically (the old file survives a crash)."""
    with atomic_open(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely.

    Raises
    ------
    InputError
        Missing file, a truncated/corrupt file, or one that would need to run
        code to load (pickled objects other than tensors and plain values).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such checkpoint file")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:200]
        raise InputError(p, f"not a loadable weights-only checkpoint ({type(exc).__name__}: {msg})") from None
    if not isinstance(state, dict):
        raise InputError(p, "checkpoint is not a dict of weights")
    return state
