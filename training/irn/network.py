"""The IRN network (METHOD.md §5): class-boundary and displacement branches on frozen features.

Both branches read the 5 stage features (strides 4, 4, 8, 16, 16) of a frozen
backbone, detached: IRN trains only the two branches. As in IRN the backbone
is its own ImageNet network, not the classifier (METHOD.md §5;
:class:`training.backbones.StageBackbone`, EfficientNet-Lite0 by default);
runs written before that read the trained classifier's backbone
(:meth:`training.cam.network.CAMNet.backbone_features`), which still works.
Outputs live on the stride-4 grid ``((H-1)//4+1, (W-1)//4+1)``:

- boundary ``B`` (N, 1, h, w) in [0, 1] (a sigmoid of the logits),
- displacement ``D`` (N, 2, h, w) as (dy, dx) in grid pixels, pointing to the
  instance centroid; the mean of D over the training frames is subtracted at
  inference (IRN's ``MeanShift``), because the loss only constrains
  differences of D.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


def _unit(c_in: int, c_out: int, groups: int, up: int = 1) -> nn.Sequential:
    """1x1 conv → GroupNorm → ReLU (→ ×up bilinear upsampling)."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.GroupNorm(groups, c_out),
        nn.ReLU(inplace=True),
    ]
    if up > 1:
        layers.append(nn.Upsample(scale_factor=up, mode="bilinear", align_corners=False))
    return nn.Sequential(*layers)


class MeanShift(nn.Module):
    """The mean of the displacement field over the training frames, subtracted in eval mode.

    The losses only see differences D(i) - D(j), so a constant offset is
    free; as IRN, training leaves D alone and measures its mean over the
    training frames once trained (:func:`training.irn.train.mean_displacement`,
    stored in ``running_mean``), and inference subtracts it.
    """

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(channels))

    running_mean: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return x
        return x - self.running_mean.view(1, -1, 1, 1).to(x.dtype)


class FeatureSource(Protocol):
    """What IRN reads: a module with 5 stage features (a StageBackbone or a CAMNet)."""

    arch: str
    stage_channels: tuple[int, ...]

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]: ...


class IRNet(nn.Module):
    """Boundary and displacement branches over a frozen backbone.

    Parameters
    ----------
    backbone : StageBackbone or CAMNet
        Gives the 5 stage features (``backbone_features``, ``stage_channels``):
        IRN's own frozen ImageNet network, or (runs before it) the trained
        classifier. It is frozen here (no gradients, eval mode).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        c1, c2, c3, c4, c5 = self._source.stage_channels
        # boundary branch: every stage → 32 channels at stride 4, fused by a 1x1 conv (METHOD.md §5)
        self.edge = nn.ModuleList(
            [_unit(c1, 32, 4), _unit(c2, 32, 4), _unit(c3, 32, 4, up=2), _unit(c4, 32, 4, up=4), _unit(c5, 32, 4, up=4)]
        )
        self.edge_out = nn.Conv2d(32 * 5, 1, 1, bias=True)
        # displacement branch: deeper features fused at stride 8, then with the stride-4 stages
        self.dp1, self.dp2 = _unit(c1, 64, 8), _unit(c2, 128, 16)
        self.dp3, self.dp4, self.dp5 = _unit(c3, 256, 16), _unit(c4, 256, 16, up=2), _unit(c5, 256, 16, up=2)
        self.dp6 = _unit(768, 256, 16, up=2)
        self.dp7 = nn.Sequential(_unit(64 + 128 + 256, 256, 16), nn.Conv2d(256, 2, 1, bias=False))
        self.mean_shift = MeanShift(2)

    def train(self, mode: bool = True) -> IRNet:
        """Train the branches; the backbone always stays in eval mode (frozen BatchNorm statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def _source(self) -> FeatureSource:
        return self.backbone  # type: ignore[return-value]

    @property
    def arch(self) -> str:
        """The backbone's architecture."""
        return self._source.arch

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the two branches (the backbone is frozen)."""
        edge, displacement = self.branch_parameters()
        return [*edge, *displacement]

    def branch_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """Parameters of the boundary branch and of the displacement branch (IRN trains them at lr and 10 lr)."""
        edge = [*self.edge.parameters(), *self.edge_out.parameters()]
        displacement = [p for m in (self.dp1, self.dp2, self.dp3, self.dp4, self.dp5, self.dp6, self.dp7)
                        for p in m.parameters()]  # fmt: skip
        return edge, displacement

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boundary logits and displacement of normalised images.

        Parameters
        ----------
        x : (N, 3, H, W) float32, ImageNet-normalised

        Returns
        -------
        boundary_logits : (N, 1, h, w) float32 (``sigmoid`` gives B)
        displacement : (N, 2, h, w) float32, (dy, dx) in grid pixels
        """
        with torch.no_grad():
            feats = [f.detach() for f in self._source.backbone_features(x)]
        h, w = feats[0].shape[-2:]

        def crop(t: torch.Tensor) -> torch.Tensor:
            # stride-16 features upsampled x4 can overshoot the stride-4 grid by a pixel on odd sizes
            if t.shape[-2] < h or t.shape[-1] < w:
                t = F.interpolate(
                    t, size=(max(h, t.shape[-2]), max(w, t.shape[-1])), mode="bilinear", align_corners=False
                )
            return t[..., :h, :w]

        edges = [crop(m(f)) for m, f in zip(self.edge, feats, strict=True)]
        boundary_logits = self.edge_out(torch.cat(edges, dim=1))
        d3 = self.dp3(feats[2])
        d4 = self.dp4(feats[3])[..., : d3.shape[-2], : d3.shape[-1]]
        d5 = self.dp5(feats[4])[..., : d3.shape[-2], : d3.shape[-1]]
        d6 = crop(self.dp6(torch.cat([d3, d4, d5], dim=1)))
        displacement = self.dp7(torch.cat([self.dp1(feats[0]), self.dp2(feats[1]), d6], dim=1))
        return boundary_logits, self.mean_shift(displacement)

    def infer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boundary map B in [0, 1] (N, h, w) and displacement (N, 2, h, w), in eval mode, no gradients.

        As IRN, the image and its horizontal flip are averaged for B; D is
        taken from the image alone (a flipped displacement field is not the
        flip of the field).
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                logits, disp = self.forward(torch.cat([x, x.flip(-1)], dim=0))
                n = x.shape[0]
                b = torch.sigmoid(logits[:n, 0]) / 2 + torch.sigmoid(logits[n:, 0]).flip(-1) / 2
                return b, disp[:n]
        finally:
            self.train(was_training)
