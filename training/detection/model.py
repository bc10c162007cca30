"""Mask R-CNN (torchvision) for the second step of the method (METHOD.md §7).

Class indices: the network's label 0 is background and label ``i`` (1..K) is
``category_ids[i - 1]``; a run stores ``category_ids`` in its checkpoint so
predictions map back to dataset categories. Every backbone starts from
random weights (no downloads): ``weights=None, weights_backbone=None``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone

from training.checkpoint import load_checkpoint
from training.errors import InputError

BACKBONES = ("resnet50", "resnet18", "mobilenet_v3")


def build_mask_rcnn(
    n_classes: int,
    backbone: str = "resnet50",
    min_size: int = 800,
    max_size: int = 1333,
    **kwargs: Any,
) -> MaskRCNN:
    """A randomly initialised Mask R-CNN with ``n_classes`` object classes (+ background).

    Parameters
    ----------
    n_classes : int
        K, the number of categories (the box/mask heads get K + 1 outputs).
    backbone : {"resnet50", "resnet18", "mobilenet_v3"}
        ResNet-50-FPN (the paper's), ResNet-18-FPN (all layers trainable) or
        MobileNetV3-Large-FPN (torchvision's mobile detector anchors), the
        last two for CPUs.
    min_size, max_size : int
        Frames are resized so their short side is ``min_size`` and the long
        side at most ``max_size`` (torchvision's transform; 800/1333 on COCO).
    **kwargs
        Passed on to :class:`torchvision.models.detection.MaskRCNN`.

    Returns
    -------
    MaskRCNN
        Takes (3, H, W) float images in [0, 1] (it normalises them itself).
    """
    if n_classes < 1:
        raise ValueError(f"build_mask_rcnn: need at least one class, got {n_classes}")
    num_classes = n_classes + 1
    if backbone == "resnet50":
        return maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=num_classes, min_size=min_size, max_size=max_size, **kwargs
        )
    if backbone == "resnet18":
        body = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
        return MaskRCNN(body, num_classes=num_classes, min_size=min_size, max_size=max_size, **kwargs)
    if backbone == "mobilenet_v3":
        body = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True, trainable_layers=6)
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
        return MaskRCNN(
            body,
            num_classes=num_classes,
            min_size=min_size,
            max_size=max_size,
            rpn_anchor_generator=anchors,
            **kwargs,
        )
    raise ValueError(f"build_mask_rcnn: backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")


def label_to_category(labels: np.ndarray, category_ids: list[int]) -> np.ndarray:
    """Network labels (N,) int in 1..K → category ids (N,) int64."""
    table = np.asarray([0, *category_ids], dtype=np.int64)
    return table[np.asarray(labels, dtype=np.int64)]


def load_detector(
    checkpoint: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[MaskRCNN, list[int], dict[str, Any]]:
    """A trained detector from a ``vis-ws train`` run folder or its ``checkpoint.pt``, in eval mode.

    Returns
    -------
    model : MaskRCNN
    category_ids : list of int, the category of labels 1..K
    config : dict, the training config stored with the weights

    Raises
    ------
    InputError
        Not a detector checkpoint, or weights that do not fit.
    """
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise InputError(path, "no detector checkpoint here: pass a 'vis-ws train --out' folder")
    state = load_checkpoint(path)
    try:
        config = dict(state["config"])
        category_ids = [int(c) for c in state["category_ids"]]
        weights = state["model"]
        model = build_mask_rcnn(
            len(category_ids), str(config["backbone"]), int(config["min_size"]), int(config["max_size"])
        )
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"not a 'vis-ws train' checkpoint ({type(exc).__name__}: {exc})") from None
    except RuntimeError as exc:
        problem = " ".join(str(exc).split())[:160]
        raise InputError(path, f"weights do not fit Mask R-CNN on {config.get('backbone')} ({problem})") from None
    return model.to(device).eval(), category_ids, config
