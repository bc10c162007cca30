"""IRN's CAM network (METHOD.md §2, §2a): a backbone at output stride 16, GAP, a 1x1 bias-free classifier.

The backbone (:mod:`training.backbones`) is timm's EfficientNet-Lite0 or
torchvision's ResNet-18/50, always built with random weights (nothing is
downloaded); ImageNet or user weights come from a local file through
:func:`load_weights`. Features have 1/16 of the input resolution (ResNet:
IRN's strides (2, 2, 2, 1); Lite0: its last stages dilated), so CAMs keep
twice the detail of a stock network.

The module names of a ResNet backbone are torchvision's (``backbone.conv1``,
``backbone.layer1`` ...), so a torchvision ImageNet state dict loads as is;
Lite0's are timm's (``backbone.conv_stem``, ``backbone.blocks.N``).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from training.backbones import (
    ARCHS,
    LITE0,
    STAGE_CHANNELS,
    STAGE_STRIDES,
    build_stage_backbone,
    freeze_batchnorm,
    load_imagenet_backbone,
    stage_features,
    stem_modules,
)
from training.checkpoint import load_checkpoint, load_strict, tensor_state

__all__ = ["ARCHS", "FREEZE", "POOLINGS", "STAGE_STRIDES", "CAMNet", "load_weights"]

FREEZE = ("backbone", "stem", "none")
"""What of the backbone stays fixed while the classifier trains (:class:`CAMNet`)."""
DETACH_AT = 2
"""IRN detaches the features after stage 2 (ResNet's layer2, stride 8) when the stem is frozen."""


POOLINGS = ("gap", "lse")
LSE_R = 5.0
"""Sharpness of log-sum-exp pooling (WILDCAT/Pinheiro & Collobert use 1-10 on score maps)."""


class CAMNet(nn.Module):
    """Multi-label classifier whose 1x1 classifier weights give class activation maps.

    Parameters
    ----------
    n_classes : int
        K, the number of categories (one logit each; background is not a class).
    arch : {"efficientnet_lite0", "resnet50", "resnet18"}
    freeze : {"backbone", "stem", "none"}
        What stays fixed while training. ``backbone``: the whole backbone
        (ImageNet features, BatchNorm at its loaded statistics, no gradients);
        only the classifier trains (measured best for ImageNet Lite0, METHOD.md
        §2a). ``stem``: IRN's recipe for ImageNet weights, the stem (ResNet
        conv1/bn1, Lite0's stem and stride-2 stage) frozen, stages up to
        stride 8 detached, every BatchNorm at its loaded statistics. ``none``:
        train everything (random init).
    pooling : {"gap", "lse"}
        How the class score maps become logits in :meth:`forward`: global
        average pooling (IRN) or log-sum-exp pooling with sharpness
        :data:`LSE_R`, a soft maximum that rewards evidence in one place over
        evidence spread over the frame (not in IRN; for random init, see
        benchmarks/RESULTS.md). CAMs are the same function of the weights
        either way.
    freeze_stem : bool
        Older spelling of ``freeze="stem"``.

    Attributes
    ----------
    stage_channels : tuple of int
        Channels of the 5 stages returned by :meth:`backbone_features`.
    """

    def __init__(
        self,
        n_classes: int,
        arch: str = LITE0,
        freeze: str = "none",
        pooling: str = "gap",
        freeze_stem: bool = False,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be at least 1, got {n_classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        freeze = "stem" if freeze_stem else freeze
        if freeze not in FREEZE:
            raise ValueError(f"freeze must be one of {', '.join(FREEZE)}, got {freeze!r}")
        self.arch = arch
        self.pooling = pooling
        self.freeze = freeze
        self.backbone: nn.Module = build_stage_backbone(arch)
        self.stage_channels: tuple[int, ...] = STAGE_CHANNELS[arch]
        self.classifier = nn.Conv2d(self.stage_channels[-1], n_classes, 1, bias=False)
        frozen = {"backbone": [self.backbone], "stem": stem_modules(arch, self.backbone), "none": []}[freeze]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    @property
    def freeze_stem(self) -> bool:
        """IRN's recipe (``freeze == "stem"``)."""
        return self.freeze == "stem"

    @property
    def n_classes(self) -> int:
        """K."""
        return int(self.classifier.out_channels)

    def train(self, mode: bool = True) -> CAMNet:
        """Set training mode; with anything frozen every BatchNorm stays in eval mode (IRN's FixedBatchNorm)."""
        super().train(mode)
        if self.freeze != "none":
            freeze_batchnorm(self.backbone)
        return self

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 5 stage features IRN reads (METHOD.md §5; :func:`training.backbones.stage_features`).

        Parameters
        ----------
        x : (N, 3, H, W) float32, ImageNet-normalised

        Returns
        -------
        features : list of 5 tensors
            At strides 4, 4, 8, 16, 16, with :attr:`stage_channels` channels.
        """
        if self.freeze == "backbone":
            with torch.no_grad():  # nothing in the backbone trains: no graph to keep
                return stage_features(self.arch, self.backbone, x)
        return stage_features(self.arch, self.backbone, x, DETACH_AT if self.freeze == "stem" else None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, ceil(H/16), ceil(W/16)) last-stage features of normalised images (N, 3, H, W)."""
        return self.backbone_features(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, K) of normalised images (N, 3, H, W).

        ``gap``: GAP, then the 1x1 classifier (the same as the mean of the
        class score maps). ``lse``: ``log(mean(exp(r * s))) / r`` of each class
        score map ``s``, between its mean (r → 0) and its maximum (r → ∞).
        """
        f = self.features(x)
        if self.pooling == "gap":
            return self.classifier(F.adaptive_avg_pool2d(f, 1)).flatten(1)
        s = self.classifier(f).float().flatten(2)  # (N, K, h*w)
        return (torch.logsumexp(LSE_R * s, dim=2) - math.log(s.shape[2])) / LSE_R

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (N, K, ceil(H/16), ceil(W/16)): ReLU of the classifier at every position."""
        return F.relu(F.conv2d(self.features(x), self.classifier.weight))


def load_weights(model: CAMNet, path: str | os.PathLike) -> str:
    """Load ImageNet or user weights from a local file into ``model``.

    Accepted files (all read with ``torch.load(weights_only=True)``):

    - ImageNet weights: a torchvision ResNet state dict (its ``fc`` ignored),
      the Lite0 package's state dict (``efficientnet_pytorch`` layout, loaded
      by position) or a timm ``tf_efficientnet_lite0`` state dict (its head
      ignored); the classifier keeps its initialisation;
    - a checkpoint of this project (``{"model": state_dict, ...}``) or a bare
      ``CAMNet`` state dict; the classifier is loaded when it has the same
      number of classes, else only the backbone.

    Parameters
    ----------
    model : CAMNet
    path : path

    Returns
    -------
    kind : str
        ``"imagenet"`` (backbone only) or ``"checkpoint"`` / ``"checkpoint backbone"``.

    Raises
    ------
    InputError
        Naming ``path``: unreadable file, or keys/shapes that do not fit the
        model's architecture.
    """
    state = tensor_state(load_checkpoint(path), path)
    if any(k.startswith("backbone.") for k in state):
        backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        classifier = state.get("classifier.weight")
        kind = "checkpoint"
    else:
        load_imagenet_backbone(model.backbone, model.arch, path)
        return "imagenet"
    load_strict(model.backbone, backbone, path, f"a {model.arch}")
    if classifier is not None:
        if tuple(classifier.shape) == tuple(model.classifier.weight.shape):
            with torch.no_grad():
                model.classifier.weight.copy_(classifier)
        else:
            kind = "checkpoint backbone"
    return kind
