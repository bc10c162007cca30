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


def tensor_state(state: dict[str, Any], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a loaded weights file: ``state["model"]`` of a checkpoint, else ``state``.

    A ``module.`` prefix on every key (saved from (Distributed)DataParallel) is removed.

    Raises
    ------
    InputError
        Naming ``path``: values that are not all tensors.
    """
    if isinstance(state.get("model"), dict):
        state = state["model"]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "not a state dict of tensors (expected model weights or a vis-ws checkpoint)")
    return state


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, what: str) -> None:
    """Load ``state`` into ``module``: every key and shape must fit, else a one-line InputError.

    ``num_batches_tracked`` counters are optional on both sides (FrozenBatchNorm2d has none).

    Parameters
    ----------
    module : torch.nn.Module
    state : dict of str to Tensor
    path : path
        Named in the error.
    what : str
        The architecture, for the error ("a resnet18").
    """
    own = module.state_dict()
    counters = {k for k in (*own, *state) if k.endswith("num_batches_tracked")}
    state = {k: v for k, v in state.items() if k in own or k not in counters}
    missing = sorted(set(own) - set(state) - counters)
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        first = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        n = len(missing) + len(unexpected)
        raise InputError(path, f"weights do not fit {what} ({first} and {n - 1} more key mismatches)")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            need = tuple(own[k].shape)
            raise InputError(path, f"weights do not fit {what}: {k!r} is {tuple(v.shape)}, it needs {need}")
    module.load_state_dict(state, strict=False)
