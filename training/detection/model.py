"""Mask R-CNN (torchvision) for the second step of the method (METHOD.md §7).

Class indices: the network's label 0 is background and label ``i`` (1..K) is
``category_ids[i - 1]``; a run stores ``category_ids`` in its checkpoint so
predictions map back to dataset categories. Every backbone starts from
random weights (no downloads); ImageNet or user weights for the backbone
come from a local file through :func:`load_backbone_weights`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from training.checkpoint import load_checkpoint, load_strict, tensor_state
from training.errors import InputError

BACKBONES = ("resnet50", "resnet18", "mobilenet_v3")


def build_mask_rcnn(
    n_classes: int,
    backbone: str = "resnet50",
    min_size: int = 800,
    max_size: int = 1333,
    pretrained: bool = False,
    **kwargs: Any,
) -> MaskRCNN:
    """A Mask R-CNN with ``n_classes`` object classes (+ background), random weights.

    Parameters
    ----------
    n_classes : int
        K, the number of categories (the box/mask heads get K + 1 outputs).
    backbone : {"resnet50", "resnet18", "mobilenet_v3"}
        ResNet-50-FPN (the paper's), ResNet-18-FPN or MobileNetV3-Large-FPN
        (torchvision's mobile detector anchors), the last two for CPUs.
    min_size, max_size : int
        Frames are resized so their short side is ``min_size`` and the long
        side at most ``max_size`` (torchvision's transform; 800/1333 on COCO).
    pretrained : bool
        The backbone will get weights from a file (:func:`load_backbone_weights`):
        torchvision's recipe for pretrained backbones, BatchNorm frozen
        (``FrozenBatchNorm2d``, the file's statistics) and the first stages
        frozen (3 trainable). False: a network trained from scratch, with
        ordinary BatchNorm and every layer trainable (frozen BatchNorm with
        random statistics would leave the backbone unnormalised).
    **kwargs
        Passed on to :class:`torchvision.models.detection.MaskRCNN`.

    Returns
    -------
    MaskRCNN
        Takes (3, H, W) float images in [0, 1] (it normalises them itself).
    """
    if n_classes < 1:
        raise ValueError(f"build_mask_rcnn: need at least one class, got {n_classes}")
    if backbone not in BACKBONES:
        raise ValueError(f"build_mask_rcnn: backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    norm = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    trainable = 3 if pretrained else (5 if backbone.startswith("resnet") else 6)
    size = {"num_classes": n_classes + 1, "min_size": min_size, "max_size": max_size}
    if backbone == "mobilenet_v3":
        body = mobilenet_backbone(
            backbone_name="mobilenet_v3_large", weights=None, fpn=True, trainable_layers=trainable, norm_layer=norm
        )
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
        return MaskRCNN(body, rpn_anchor_generator=anchors, **size, **kwargs)
    body = resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=trainable, norm_layer=norm)
    return MaskRCNN(body, **size, **kwargs)


def sampling_options(proposals: int = 2000, rois: int = 512) -> dict[str, int]:
    """Mask R-CNN keyword arguments for the proposal and RoI budget.

    Parameters
    ----------
    proposals : int
        RPN proposals kept per image before and after NMS in training (half of
        it at inference); torchvision's COCO default is 2000.
    rois : int
        Proposals sampled per training image for the box and mask heads
        (COCO default 512). On small frames with a few objects, 300 / 128
        train about 4x faster on a CPU (benchmarks/RESULTS.md).
    """
    return {
        "rpn_pre_nms_top_n_train": proposals,
        "rpn_post_nms_top_n_train": proposals,
        "rpn_pre_nms_top_n_test": max(1, proposals // 2),
        "rpn_post_nms_top_n_test": max(1, proposals // 2),
        "box_batch_size_per_image": rois,
    }


def has_frozen_norm(state: dict[str, torch.Tensor]) -> bool:
    """Whether detector weights ``state`` come from a ``pretrained`` build (no BatchNorm counters in the backbone)."""
    return not any(k.startswith("backbone.body.") and k.endswith("num_batches_tracked") for k in state)


def load_backbone_weights(model: MaskRCNN, path: str | os.PathLike, backbone: str) -> str:
    """Load ImageNet or user weights from a local file into the detector's backbone.

    Build the model with ``pretrained=True``. Accepted files (read with
    ``torch.load(weights_only=True)``):

    - a torchvision ResNet-18/50 or MobileNetV3-Large state dict (ImageNet
      weights); ``fc`` / ``classifier`` are ignored;
    - a ``vis-ws train-cam`` checkpoint of the same ResNet (the classifier
      trained on the frame tags; its stride-1 last stage has the same weights);
    - a ``vis-ws train`` checkpoint of the same backbone (its backbone only,
      so categories may differ).

    The FPN and the heads keep their random initialisation.

    Returns
    -------
    kind : {"imagenet", "classifier", "detector"}

    Raises
    ------
    InputError
        Naming ``path``: unreadable file, or weights that do not fit ``backbone``.
    """
    state = tensor_state(load_checkpoint(path), path)
    if any(k.startswith("backbone.body.") for k in state):
        kind, prefix = "detector", "backbone.body."
    elif any(k.startswith("backbone.") for k in state):
        kind, prefix = "classifier", "backbone."
    elif backbone == "mobilenet_v3":
        kind, prefix = "imagenet", "features."
    else:
        kind, prefix = "imagenet", ""
    body = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if kind == "imagenet" and backbone != "mobilenet_v3":
        body = {k: v for k, v in body.items() if not k.startswith("fc.")}
    load_strict(model.backbone.body, body, path, f"a {backbone} backbone")
    return kind


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
            len(category_ids),
            str(config["backbone"]),
            int(config["min_size"]),
            int(config["max_size"]),
            pretrained=has_frozen_norm(weights),
            **sampling_options(int(config.get("proposals", 2000)), int(config.get("rois", 512))),
        )
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"not a 'vis-ws train' checkpoint ({type(exc).__name__}: {exc})") from None
    except RuntimeError as exc:
        problem = " ".join(str(exc).split())[:160]
        raise InputError(path, f"weights do not fit Mask R-CNN on {config.get('backbone')} ({problem})") from None
    return model.to(device).eval(), category_ids, config
