"""Mask R-CNN (torchvision) for the second step of the method (METHOD.md §7).

Class indices: the network's label 0 is background and label ``i`` (1..K) is
``category_ids[i - 1]``; a run stores ``category_ids`` in its checkpoint so
predictions map back to dataset categories. Every backbone is built with
random weights (no downloads); ImageNet or user weights for the backbone
come from a local file through :func:`load_backbone_weights`
(:func:`training.backbones.weights_file` finds the ImageNet file).

Backbones: EfficientNet-Lite0 (timm) with torchvision's FPN over its stride
4-32 features, ResNet-50/18-FPN and MobileNetV3-Large-FPN (torchvision).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from training.backbones import LITE0, is_lite0_package_state, lite0_features, load_by_position
from training.checkpoint import load_checkpoint, load_strict, tensor_state
from training.detection.runs import detector_checkpoint
from training.device import fast_layout
from training.errors import InputError

BACKBONES = (LITE0, "resnet50", "resnet18", "mobilenet_v3")
FPN_CHANNELS = 256
LITE0_FPN_STAGES = (1, 2, 3, 4)
"""Lite0 stages under the FPN: strides 4, 8, 16, 32 (as ResNet's layer1-4)."""
LITE0_FROZEN_BLOCKS = 2
"""Pretrained Lite0: its stem and first 2 block groups (strides 2 and 4) stay fixed, as torchvision freezes
ResNet's conv1 and layer1 (``trainable_layers=3``)."""


class Lite0FPN(nn.Module):
    """EfficientNet-Lite0 features (timm) under torchvision's feature pyramid, a Mask R-CNN backbone.

    Parameters
    ----------
    pretrained : bool
        The body will get ImageNet weights: every BatchNorm frozen at the
        loaded statistics (timm's ``FrozenBatchNormAct2d``) and the stem and
        first stages frozen (:data:`LITE0_FROZEN_BLOCKS`). False: ordinary
        BatchNorm and every layer trainable.

    Attributes
    ----------
    body : timm ``EfficientNetFeatures``, stages at strides 4, 8, 16, 32
    fpn : torchvision ``FeaturePyramidNetwork`` with GroupNorm and a max-pooled extra level
    out_channels : int
        256, what torchvision's detection heads read.
    """

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        body: Any = lite0_features(output_stride=32, out_indices=LITE0_FPN_STAGES)
        channels = [int(c) for c in body.feature_info.channels()]
        if pretrained:
            from timm.layers import freeze_batch_norm_2d

            body = freeze_batch_norm_2d(body)
            frozen: list[nn.Module] = [body.conv_stem, body.bn1, *list(body.blocks)[:LITE0_FROZEN_BLOCKS]]
            for module in frozen:
                for p in module.parameters():
                    p.requires_grad_(False)
        self.body = body
        # GroupNorm in the pyramid: ImageNet Lite0's linear-bottleneck features reach a std of ~15 at stride 4
        # (ResNet's ~1), which started the mask loss at ~19 instead of ~4 without it
        norm = partial(nn.GroupNorm, 32)
        self.fpn = FeaturePyramidNetwork(channels, FPN_CHANNELS, extra_blocks=LastLevelMaxPool(), norm_layer=norm)
        self.out_channels = FPN_CHANNELS

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) normalised images → FPN levels ``"0"``-``"3"`` (strides 4-32) and ``"pool"`` (64)."""
        return self.fpn({str(i): f for i, f in enumerate(self.body(x))})


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
    backbone : {"efficientnet_lite0", "resnet50", "resnet18", "mobilenet_v3"}
        EfficientNet-Lite0-FPN (ImageNet weights installed with the project),
        ResNet-50-FPN (the paper's), ResNet-18-FPN or MobileNetV3-Large-FPN
        (torchvision's mobile detector anchors).
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
        Takes (3, H, W) float images in [0, 1] (it normalises them itself,
        with mean = std = 0.5 for Lite0 as its ImageNet weights expect).
    """
    if n_classes < 1:
        raise ValueError(f"build_mask_rcnn: need at least one class, got {n_classes}")
    if backbone not in BACKBONES:
        raise ValueError(f"build_mask_rcnn: backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    norm = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    trainable = 3 if pretrained else (5 if backbone.startswith("resnet") else 6)
    size = {"num_classes": n_classes + 1, "min_size": min_size, "max_size": max_size}
    if backbone == LITE0:
        half = [0.5, 0.5, 0.5]
        return MaskRCNN(Lite0FPN(pretrained), image_mean=half, image_std=half, **size, **kwargs)
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
    - the Lite0 package's ImageNet state dict (``efficientnet_pytorch``
      layout, loaded by position; its head is ignored);
    - a ``vis-ws train-cam`` checkpoint of the same backbone (the classifier
      trained on the frame tags; its stride-1 or dilated last stage has the
      same weights);
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
    if backbone == LITE0 and is_lite0_package_state(state):
        load_by_position(model.backbone.body, state, path, "a efficientnet_lite0 backbone")
        return "imagenet"
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
        body = {k: v for k, v in body.items() if not k.startswith(("fc.", "conv_head.", "bn2.", "classifier."))}
    load_strict(model.backbone.body, body, path, f"a {backbone} backbone")
    return kind


def label_to_category(labels: np.ndarray, category_ids: list[int]) -> np.ndarray:
    """Network labels (N,) int in 1..K → category ids (N,) int64."""
    table = np.asarray([0, *category_ids], dtype=np.int64)
    return table[np.asarray(labels, dtype=np.int64)]


def load_detector(
    checkpoint: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[MaskRCNN, list[int], dict[str, Any]]:
    """A trained detector from a ``vis-ws train`` run folder, its ``checkpoint.pt``, or a ``vis-ws pipeline`` run.

    A pipeline run folder gives its MaskConsist detector (``maskconsist/``),
    else its step-1 Mask R-CNN (``maskrcnn/``). The model is in eval mode.

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
    path = detector_checkpoint(checkpoint)
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
    return fast_layout(model.to(device).eval()), category_ids, config
