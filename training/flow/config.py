"""Settings of flow network training, as data (``config.json`` of a train-flow run).

Kept apart from the training loop so the CLI can show the defaults without
importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from training.config import config_from_dict
from training.run_folder import CHECKPOINT, CONFIG

PHOTOMETRIC = ("census", "ssim")
# the files of a run folder
CHECKPOINT_NAME = CHECKPOINT
CONFIG_NAME = CONFIG


@dataclass
class FlowTrainConfig:
    """How to train the flow network; saved as ``config.json`` in the run folder.

    Attributes
    ----------
    input : str
        INPUT videos: a dataset JSON, a folder of frames or a video file.
    frames : str or None
        Frames folder of a dataset JSON (default ``JPEGImages/`` beside it).
    iterations : int
        Optimiser steps in all.
    batch_size : int
        Frame pairs per step (each gives a forward and a backward flow).
    crop : (int, int)
        (height, width) of the random crops; multiples of 8, at least 128
        (RAFT's 1/8 feature maps need 16 cells for its correlation pyramid).
        Small for CPU; UFlow trains at 296x696 on a GPU.
    lr : float
        AdamW learning rate after warm-up (UFlow uses 1e-4, RAFT 4e-4).
    weight_decay : float
        AdamW decoupled weight decay.
    warmup : int
        Iterations of linear learning-rate warm-up from random init.
    flow_updates : int
        RAFT refinements while training (12 at inference); fewer is faster.
    gamma : float
        Weight decay of earlier refinements in the sequence loss (RAFT: 0.8).
    photometric : str
        ``"census"`` (UFlow) or ``"ssim"`` (0.15 L1 + 0.85 SSIM, ARFlow).
    smoothness_weight : float
        Weight of the edge-aware first-order smoothness.
    edge_weight : float
        Edge sensitivity of the smoothness weight exp(-edge_weight |∇I|).
    occlusion_after : int
        Iteration from which occluded pixels are masked out of the
        photometric loss; before, the flows are too poor for the
        forward-backward check.
    max_occluded : float
        A sample whose check flags more than this fraction of pixels is not
        masked (its flows are still unreliable; real occlusions are smaller).
    grad_clip : float
        Maximal gradient norm (RAFT clips at 1).
    checkpoint_every : int
        Iterations between checkpoints.
    seed : int
        Seeds the initialisation and the choice of pairs and crops.
    weights : str or None
        Initial weights: a torchvision RAFT-small state_dict or a train-flow
        checkpoint (random init when None).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    amp : bool
        Mixed precision (float16 with gradient scaling), on CUDA only.
    """

    input: str = ""
    frames: str | None = None
    iterations: int = 5000
    batch_size: int = 2
    crop: tuple[int, int] = (128, 160)
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    flow_updates: int = 6
    gamma: float = 0.8
    photometric: str = "census"
    smoothness_weight: float = 1.0
    edge_weight: float = 10.0
    occlusion_after: int = 500
    max_occluded: float = 0.5
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    seed: int = 0
    weights: str | None = None
    device: str = "auto"
    amp: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike | None = None) -> FlowTrainConfig:
        """A config from its JSON form (unknown keys are an error naming ``path``)."""
        return config_from_dict(cls, data, path, "flow training")
