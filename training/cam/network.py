"""IRN's CAM network (METHOD.md §2): a ResNet at output stride 16, GAP, a 1x1 bias-free classifier.

The backbone is torchvision's ResNet-18 or ResNet-50, always built with
``weights=None`` (nothing is downloaded); ImageNet or user weights come from a
local file through :func:`load_weights`. The last stage's stride is 1 instead
of 2 (IRN's strides (2, 2, 2, 1)), so features have 1/16 of the input
resolution and CAMs keep twice the detail of a stock ResNet.

The module names of the backbone are torchvision's (``backbone.conv1``,
``backbone.layer1`` ...), so a torchvision ImageNet state dict loads as is.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet

from training.checkpoint import load_checkpoint, load_strict, tensor_state

ARCHS = ("resnet50", "resnet18")
STAGE_STRIDES = (4, 4, 8, 16, 16)
"""Output strides of the 5 stages IRN's boundary and displacement branches read (METHOD.md §5)."""


def build_backbone(arch: str) -> ResNet:
    """A randomly initialised torchvision ResNet with the last stage at stride 1.

    Parameters
    ----------
    arch : {"resnet50", "resnet18"}

    Returns
    -------
    resnet : torchvision ResNet without ``fc`` and ``avgpool`` (replaced by identities).
    """
    import torchvision

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: expected one of {', '.join(ARCHS)}")
    resnet: ResNet = getattr(torchvision.models, arch)(weights=None)
    # IRN's strides (2, 2, 2, 1): the first block of layer4 keeps the resolution (no dilation, as in IRN).
    block: Any = resnet.layer4[0]
    for conv in (block.conv1, block.conv2):
        conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)
    resnet.fc = nn.Identity()  # type: ignore[assignment]
    resnet.avgpool = nn.Identity()  # type: ignore[assignment]
    return resnet


POOLINGS = ("gap", "lse")
LSE_R = 5.0
"""Sharpness of log-sum-exp pooling (WILDCAT/Pinheiro & Collobert use 1-10 on score maps)."""


class CAMNet(nn.Module):
    """Multi-label classifier whose 1x1 classifier weights give class activation maps.

    Parameters
    ----------
    n_classes : int
        K, the number of categories (one logit each; background is not a class).
    arch : {"resnet50", "resnet18"}
    freeze_stem : bool
        IRN's recipe for ImageNet weights (METHOD.md §2): conv1/bn1 are not
        trained, stages 1-2 (conv1 .. layer2) are detached, and every
        BatchNorm keeps its loaded statistics. From random init leave it off
        and train everything.
    pooling : {"gap", "lse"}
        How the class score maps become logits in :meth:`forward`: global
        average pooling (IRN) or log-sum-exp pooling with sharpness
        :data:`LSE_R`, a soft maximum that rewards evidence in one place over
        evidence spread over the frame (not in IRN; for random init, see
        benchmarks/RESULTS.md). CAMs are the same function of the weights
        either way.

    Attributes
    ----------
    stage_channels : tuple of int
        Channels of the 5 stages returned by :meth:`backbone_features`.
    """

    def __init__(self, n_classes: int, arch: str = "resnet50", freeze_stem: bool = False, pooling: str = "gap") -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be at least 1, got {n_classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.arch = arch
        self.pooling = pooling
        self.freeze_stem = freeze_stem
        self.backbone: ResNet = build_backbone(arch)
        expansion = 4 if arch == "resnet50" else 1
        self.stage_channels = (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)
        self.classifier = nn.Conv2d(self.stage_channels[-1], n_classes, 1, bias=False)
        if freeze_stem:
            for p in (*self.backbone.conv1.parameters(), *self.backbone.bn1.parameters()):
                p.requires_grad_(False)

    @property
    def n_classes(self) -> int:
        """K."""
        return int(self.classifier.out_channels)

    def train(self, mode: bool = True) -> CAMNet:
        """Set training mode; with ``freeze_stem`` every BatchNorm stays in eval mode (IRN's FixedBatchNorm)."""
        super().train(mode)
        if self.freeze_stem:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 5 stage features IRN reads (METHOD.md §5).

        Parameters
        ----------
        x : (N, 3, H, W) float32, ImageNet-normalised

        Returns
        -------
        features : list of 5 tensors
            conv1+pool (stride 4), layer1 (4), layer2 (8), layer3 (16),
            layer4 (16), with :attr:`stage_channels` channels.
        """
        b = self.backbone
        x1 = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x2 = b.layer1(x1)
        x3 = b.layer2(x2)
        if self.freeze_stem:
            x3 = x3.detach()  # IRN detaches stage 2: conv1 .. layer2 keep their ImageNet weights
        x4 = b.layer3(x3)
        x5 = b.layer4(x4)
        return [x1, x2, x3, x4, x5]

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

    - a torchvision ResNet state dict (ImageNet weights); its ``fc`` is ignored
      and the classifier keeps its initialisation;
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
        backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
        classifier = None
        kind = "imagenet"
    load_strict(model.backbone, backbone, path, f"a {model.arch}")
    if classifier is not None:
        if tuple(classifier.shape) == tuple(model.classifier.weight.shape):
            with torch.no_grad():
                model.classifier.weight.copy_(classifier)
        else:
            kind = "checkpoint backbone"
    return kind
