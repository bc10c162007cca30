"""RAFT-small (torchvision) as a flow estimator: build, load local weights, infer.

Weights are never downloaded: the network starts from random init (to be
trained with ``vis-ws train-flow``) or loads a local file, either a
torchvision ``state_dict`` of RAFT-small or a checkpoint of ``train-flow``
(its ``"model"`` entry).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.optical_flow import RAFT, raft_small

from training.checkpoint import load_checkpoint
from training.data.video import to_rgb
from training.errors import InputError

# RAFT works at 1/8 resolution and its 4-level correlation pyramid needs feature maps of at least 16 cells
RAFT_STRIDE = 8
RAFT_MIN_SIZE = 128
INFERENCE_UPDATES = 12  # RAFT's refinements at test time, for weights trained elsewhere


def build_raft(seed: int = 0) -> RAFT:
    """RAFT-small from random init (torchvision, ``weights=None``), reproducible.

    Parameters
    ----------
    seed : int
        Seeds the initialisation without touching the global RNG.

    Returns
    -------
    model : RAFT
        With ``model.flow_updates`` = 12, the refinements used at inference.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = raft_small(weights=None, progress=False)
    model.flow_updates = INFERENCE_UPDATES
    return model


def read_raft_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], int]:
    """The RAFT weights in a file, and how many refinements to run them with.

    Parameters
    ----------
    path : path
        A plain state_dict (torchvision's RAFT-small weights) or a train-flow
        checkpoint (its ``"model"``).

    Returns
    -------
    state_dict : dict of tensors
    flow_updates : int
        A checkpoint's training refinements (a network trained with few
        refinements overshoots when run with more); 12 for a plain state_dict.

    Raises
    ------
    InputError
        Missing, corrupt or unsafe file (loaded with ``weights_only=True``).
    """
    state: dict[str, Any] = load_checkpoint(path)
    updates = INFERENCE_UPDATES
    if isinstance(state.get("model"), dict):
        config = state.get("config")
        if isinstance(config, dict) and isinstance(config.get("flow_updates"), int):
            updates = config["flow_updates"]
        state = state["model"]
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "not a RAFT state_dict (expected tensors, or a train-flow checkpoint with 'model')")
    return state, updates


def load_raft_weights(model: RAFT, path: str | os.PathLike) -> RAFT:
    """Load the RAFT-small weights in ``path`` into ``model`` (in place; returns it).

    Also sets ``model.flow_updates`` (see :func:`read_raft_file`).

    Raises
    ------
    InputError
        The file does not hold RAFT-small weights (e.g. full-size RAFT).
    """
    state, updates = read_raft_file(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise InputError(path, f"not RAFT-small weights ({what}; {len(missing)} missing, {len(unexpected)} unexpected)")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            shapes = f"{tuple(v.shape)}, expected {tuple(expected[k].shape)}"
            raise InputError(path, f"not RAFT-small weights ({k!r} is {shapes})")
    model.load_state_dict(state)
    model.flow_updates = updates
    return model


def load_raft(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> RAFT:
    """RAFT-small ready for inference: weights from ``path`` (random init when None), eval mode, on ``device``."""
    model = build_raft()
    if path is not None:
        load_raft_weights(model, path)
    return model.to(device).eval()


def inference_updates(model: torch.nn.Module) -> int:
    """Refinements to run ``model`` with: its ``flow_updates``, else RAFT's 12."""
    return int(getattr(model, "flow_updates", INFERENCE_UPDATES))


def weights_fingerprint(model: torch.nn.Module) -> str:
    """Short hash of a model's weights, recorded with its flow so other weights recompute it."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def raft_config(model: torch.nn.Module) -> dict[str, Any]:
    """What determines a RAFT model's flow: its weights and the number of refinements."""
    return {"weights": weights_fingerprint(model), "flow_updates": inference_updates(model)}


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Frames as RAFT input.

    Parameters
    ----------
    frames : (N, H, W, 3) uint8 RGB, or (N, H, W) grayscale (repeated to 3 channels);
        other dtypes are converted like the frame readers do

    Returns
    -------
    images : (N, 3, H, W) float32 in [-1, 1] (torchvision's RAFT normalisation)
    """
    a = np.asarray(frames)
    if a.ndim == 3 or a.dtype != np.uint8:
        a = np.stack([to_rgb(f) for f in a])
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def pad_for_raft(images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad images on the right and bottom to a size RAFT accepts.

    Parameters
    ----------
    images : (N, C, H, W) tensor

    Returns
    -------
    padded : (N, C, H', W') tensor, H' and W' multiples of 8 and at least 128
    size : (H, W), to crop the flow back
    """
    h, w = images.shape[-2:]
    hp = max(-(-h // RAFT_STRIDE) * RAFT_STRIDE, RAFT_MIN_SIZE)
    wp = max(-(-w // RAFT_STRIDE) * RAFT_STRIDE, RAFT_MIN_SIZE)
    if (hp, wp) == (h, w):
        return images, (h, w)
    padded = F.pad(images, (0, wp - w, 0, hp - h), mode="replicate")
    return padded, (h, w)


def raft_flows(
    model: RAFT, frames0: np.ndarray, frames1: np.ndarray, num_flow_updates: int | None = None
) -> np.ndarray:
    """RAFT flow for a batch of frame pairs (the last refinement).

    Parameters
    ----------
    model : RAFT
        In eval mode; its device is used.
    frames0, frames1 : (N, H, W, 3) uint8 or (N, H, W)
    num_flow_updates : int, optional
        Refinements; by default :func:`inference_updates` of the model.

    Returns
    -------
    flows : (N, H, W, 2) float32, (dx, dy) from frames0 to frames1
    """
    device = next(model.parameters()).device
    x0, (h, w) = pad_for_raft(frames_to_tensor(frames0))
    x1, _ = pad_for_raft(frames_to_tensor(frames1))
    with torch.inference_mode():
        updates = num_flow_updates or inference_updates(model)
        flows = model(x0.to(device), x1.to(device), num_flow_updates=updates)[-1]
    return np.ascontiguousarray(flows[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu().numpy())


def raft_flow(model: RAFT, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    """RAFT flow of one pair: (H, W[, 3]) frames → (H, W, 2) float32."""
    return raft_flows(model, np.asarray(frame0)[None], np.asarray(frame1)[None])[0]
