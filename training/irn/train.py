"""Training IRN / flowIRN (METHOD.md §5) on relation labels from (f-)CAMs.

Four variants, the rows of the paper's Table 4:

=============  ===================  ========================
variant        relation labels from  flow-boundary loss
=============  ===================  ========================
``irn``        CAMs                  no
``irn+fbound`` CAMs                  yes
``irn+fcam``   f-CAMs                no
``flowirn``    f-CAMs                yes
=============  ===================  ========================

A run folder holds ``config.json``, ``categories.json`` and ``checkpoint.pt``
with the whole :class:`~training.irn.network.IRNet` (the frozen classifier
included), so inference needs nothing but the run folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from training.backbones import ARCHS, IMAGENET, LITE0, StageBackbone, weights_file
from training.checkpoint import load_checkpoint
from training.config import config_from_dict, config_to_dict
from training.device import describe_device, fast_layout, resolve_device
from training.distributed import check_split, describe_world, is_main, rank_device
from training.errors import InputError
from training.irn.data import RelationFrames
from training.irn.ir_labels import CONF_BG, CONF_FG
from training.irn.losses import FLOW_LAMBDA, MOTION_SPLIT, irn_total_loss
from training.irn.network import IRNet
from training.irn.path_index import pair_affinity
from training.irn.relations import TRAIN_RADIUS, relation_sets
from training.json_io import read_json
from training.loop import (
    CHECKPOINT,
    CONFIG,
    MemoryHint,
    TrainingRun,
    prepare_run,
)
from training.progress import Progress
from training.run_folder import CATEGORIES
from training.sampling import epoch_batches
from training.working_scale import WORKING_SIZE, check_working_size

STAGE = "train-irn"
VARIANTS = ("irn", "irn+fbound", "irn+fcam", "flowirn")
CLASSIFIER = "classifier"
BACKBONES = (*ARCHS, CLASSIFIER)
"""IRN's frozen feature network: an ImageNet backbone, or the trained classifier's."""
_RESUME_FREE = ("device", "workers")
MEASURED = "mean_displacement_measured"
"""Checkpoint flag: the mean displacement of the training frames is in ``mean_shift.running_mean``."""


@dataclass(frozen=True)
class IRNTrainConfig:
    """How IRN / flowIRN is trained (IRN's ``train_irn`` defaults, sized for a CPU).

    Attributes
    ----------
    variant : {"irn", "irn+fbound", "irn+fcam", "flowirn"}
        The row of the paper's Table 4: relation labels from the CAMs (irn,
        irn+fbound) or the f-CAMs (irn+fcam, flowirn), with the flow-boundary
        loss (irn+fbound, flowirn) or without (see the module docstring).
    epochs : int
        Passes over the tagged frames (IRN: 3 on VOC's 10k images; small video
        sets need more).
    batch_size : int
        Frames per iteration (IRN: 32).
    crop : int
        Square crop side, a multiple of 4 (IRN: 512). Crops may reach
        ``radius − 1`` grid cells past the frame, so every cell is trained as
        a pair source (:class:`~training.irn.data.RelationFrames`).
    scale_min, scale_max : float
        Random rescale of each training frame (IRN: 0.5-1.5).
    lr, momentum, weight_decay : float
        SGD with the poly schedule for the boundary branch. IRN's
        ``PolyOptimizer`` passes its weight decay where SGD takes the momentum:
        its effective momentum is 1e-4, i.e. none (0 here), weight decay 1e-4.
    displacement_lr : float
        The displacement branch's learning rate as a multiple of ``lr`` (IRN: 10).
    radius : int
        γ, the pair radius on the stride-4 grid (IRN: 10).
    conf_fg, conf_bg : float
        Relation-label thresholds (METHOD.md §4).
    crf : bool
        Refine the relation labels with IRN's dense CRF (pydensecrf2, installed
        with the project); on by default, as IRN (measured on the synthetic
        benchmark: 4.1 → 5.7 % pseudo-label frame AP50).
    flow_weight, flow_lambda : float
        Weight of L_F_B in the total and its λ (not published; 1 and 0.1).
    seed : int
        Seeds the initial weights, the batch order and the augmentation.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    amp : bool
        Mixed precision on CUDA (ignored on the CPU).
    workers : int
        Data-loading worker processes.
    backbone : {"efficientnet_lite0", "resnet50", "resnet18", "classifier"}
        The frozen network whose 5 stage features IRN reads. As in IRN, its own
        ImageNet network (:class:`~training.backbones.StageBackbone`; a
        ResNet's ImageNet file comes from the torch hub cache), not the
        classifier (METHOD.md §5); ``classifier`` reads the ``train-cam``
        network instead (what runs did before this field).
    working_size : int
        Short side, in pixels, frames are upsampled to (:mod:`training.working_scale`,
        METHOD.md §9); the crop, the radius and the CRF apply at that scale, and
        ``vis-ws pseudo-labels`` labels at the same scale. 0: frame size
        (runs written before this field).
    motion_split : float
        flowIRN only: same-class pairs whose normalised flow differs by this
        much are taken as two instances (:func:`~training.irn.losses.motion_split`);
        0 is off, as in the paper (runs written before this field).
    """

    variant: str = "flowirn"
    backbone: str = LITE0
    epochs: int = 3
    batch_size: int = 8
    crop: int = 256
    scale_min: float = 0.5
    scale_max: float = 1.5
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 1e-4
    displacement_lr: float = 10.0
    radius: int = TRAIN_RADIUS
    conf_fg: float = CONF_FG
    conf_bg: float = CONF_BG
    crf: bool = True
    flow_weight: float = 1.0
    flow_lambda: float = FLOW_LAMBDA
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    workers: int = 0
    working_size: int = WORKING_SIZE
    motion_split: float = MOTION_SPLIT

    ABSENT: ClassVar[dict[str, Any]] = {"working_size": 0, "motion_split": 0.0}
    """Fields runs written before them lack, and what those runs did (:func:`training.config.absent_values`)."""

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise InputError(None, f"train-irn: {what}")

        need(self.variant in VARIANTS, f"--variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        need(self.backbone in BACKBONES, f"--irn-backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        for name in ("epochs", "batch_size"):
            need(int(getattr(self, name)) >= 1, f"--{name.replace('_', '-')} must be at least 1")
        need(self.crop >= 64 and self.crop % 4 == 0, f"--crop must be a multiple of 4 of at least 64, got {self.crop}")
        need(2 <= self.radius < self.crop // 8, f"--radius must be in [2, crop/8), got {self.radius}")
        need(math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}")
        need(self.displacement_lr > 0, f"displacement_lr must be positive, got {self.displacement_lr}")
        need(
            0 < self.scale_min <= self.scale_max <= 4,
            f"need 0 < scale_min <= scale_max <= 4, got {self.scale_min} and {self.scale_max}",
        )
        need(0 <= self.conf_bg <= self.conf_fg <= 1, "need 0 <= conf_bg <= conf_fg <= 1")
        need(self.flow_weight >= 0 and self.flow_lambda >= 0, "flow_weight and flow_lambda must be >= 0")
        need(math.isfinite(self.motion_split) and self.motion_split >= 0, "--motion-split must be >= 0")
        need(self.seed >= 0 and self.workers >= 0, "seed and workers must be >= 0")
        check_working_size(self.working_size, STAGE)

    @property
    def uses_fcams(self) -> bool:
        """Relation labels from f-CAMs."""
        return self.variant in ("irn+fcam", "flowirn")

    @property
    def uses_flow_loss(self) -> bool:
        """Train with the flow-boundary loss."""
        return self.variant in ("irn+fbound", "flowirn")


def _collate(dataset: RelationFrames, batch: list[int]) -> tuple[torch.Tensor, ...]:
    items = [dataset[i] for i in batch]
    return tuple(torch.stack(column) for column in zip(*items, strict=True))


def train_irn(
    config: IRNTrainConfig,
    tags_path: str | os.PathLike,
    cam_run: str | os.PathLike,
    cams_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    flow_dir: str | os.PathLike | None = None,
    frames: str | os.PathLike | None = None,
    resume: bool = False,
) -> Iterator[Progress]:
    """Train the boundary and displacement branches; a generator of progress events.

    Under ``torchrun`` (:mod:`training.distributed`) every rank trains on its
    slice of each global batch (DDP); rank 0 writes the run folder.

    Parameters
    ----------
    config : IRNTrainConfig
    tags_path : path
        Frame-tags JSON (the weak labels).
    cam_run : path
        The ``train-cam`` run whose backbone IRN reads (frozen).
    cams_dir : path
        ``vis-ws cams`` output for the tags (with f-CAMs for the f-CAM variants).
    out_dir : path
        The run folder.
    flow_dir : path, optional
        ``vis-ws flow`` output; required by the flow-boundary variants.
    frames : path, optional
        Frames folder of the tags file.
    resume : bool
        Continue from ``out_dir/checkpoint.pt``.

    Yields
    ------
    Progress
        Per step: loss and its terms (pos, neg, dp_fg, dp_bg, fbound), lr.

    Raises
    ------
    InputError
        Bad inputs (nothing written), an existing run without ``resume``.
    TrainingStopped
        NaN/inf loss, or a batch that does not fit in memory; the last good
        checkpoint is kept.
    """
    from training.cam.train import load_run

    run = Path(out_dir)
    # IRN's own ImageNet backbone; a missing file fails before anything is written
    imagenet = None if config.backbone == CLASSIFIER else weights_file(IMAGENET, config.backbone)
    resumed = prepare_run(run, resume)
    if config.uses_flow_loss and flow_dir is None:
        raise InputError(None, f"train-irn: --variant {config.variant} needs --flow DIR (the flow-boundary loss)")
    dataset = relation_frames(config, tags_path, cams_dir, flow_dir, frames)
    device = rank_device(resolve_device(config.device))
    check_split(STAGE, min(len(dataset), config.batch_size))
    cam_net, categories, _ = load_run(cam_run)
    if [c["id"] for c in categories] != dataset.frames.category_ids:
        raise InputError(cam_run, "the classifier was trained on other categories than the tags file names")
    features = cam_net if imagenet is None else StageBackbone(config.backbone, imagenet)
    torch.manual_seed(config.seed)
    model = IRNet(features)
    optimizer = make_optimizer(model, config)
    trainer = TrainingRun(STAGE, run, config, model, optimizer, device)
    files = {CONFIG: {**config_to_dict(config), "cam_run": str(cam_run)}, CATEGORIES: categories}
    step, losses, _ = trainer.open(resumed, _RESUME_FREE, files)
    net = trainer.net

    def batches(epoch: int) -> list[list[int]]:
        return epoch_batches(len(dataset), config.batch_size, config.seed, epoch)

    def load(epoch: int, slices: list[list[int]]) -> Iterator[tuple[torch.Tensor, ...]]:
        dataset.set_epoch(epoch)
        return (_collate(dataset, batch) for batch in slices)

    def step_fn(batch: tuple[torch.Tensor, ...], step: int, total: int) -> dict[str, float]:
        trainer.set_lr(step, total)
        x, labels, flow = (t.to(device) for t in batch)
        net.train()
        optimizer.zero_grad(set_to_none=True)
        with trainer.precision.autocast():
            logits, disp = net(x)
        boundary = torch.sigmoid(logits.float())[:, 0]
        sets = relation_sets(labels, config.radius)
        affinity = pair_affinity(boundary, sets.index)
        terms = irn_total_loss(
            affinity,
            disp.float(),
            sets.to(device),
            flow=flow if config.uses_flow_loss else None,
            flow_weight=config.flow_weight,
            lam=config.flow_lambda,
            split=config.motion_split,
        )
        loss = trainer.backward(terms.total)
        parts = (terms.boundary_pos, terms.boundary_neg, terms.displacement_fg, terms.displacement_bg)
        names = ("pos", "neg", "dp_fg", "dp_bg", "fbound")
        metrics = {n: float(v.detach()) for n, v in zip(names, (*parts, terms.flow_boundary), strict=True)}
        return {"loss": loss, **metrics, "lr": optimizer.param_groups[0]["lr"]}

    def save(step: int, epoch_losses: list[float], measured: bool = False) -> None:
        trainer.save(step, epoch_losses, category_ids=[c["id"] for c in categories], **{MEASURED: measured})

    start = "resuming at" if resumed else "training from"
    yield Progress(
        STAGE,
        step,
        config.epochs * len(batches(0)),
        message=(
            f"{start} step {step}: {config.variant} on {len(dataset)} frames, backbone {_describe_backbone(config)}, "
            f"{describe_device(device)}{describe_world()}"
        ),
    )
    yield from trainer.loop(
        config.epochs, batches, step_fn, save, step, losses, load, MemoryHint("frame", "a smaller --crop")
    )
    state: dict[str, Any] = load_checkpoint(run / CHECKPOINT) if is_main() else {MEASURED: True}
    if not state.get(MEASURED):
        # IRN's last step: the mean displacement over the training frames, subtracted at inference
        model.eval()
        model.mean_shift.running_mean.copy_(mean_displacement(model, dataset, device))
        save(int(state["step"]), [float(v) for v in state["epoch_losses"]], measured=True)
        yield Progress(STAGE, int(state["step"]), int(state["step"]), message="mean displacement stored")


def relation_frames(
    config: IRNTrainConfig,
    tags_path: str | os.PathLike,
    cams_dir: str | os.PathLike,
    flow_dir: str | os.PathLike | None,
    frames: str | os.PathLike | None,
) -> RelationFrames:
    """The training frames with their relation labels, as ``config`` says (the flow only for the f-Bound loss)."""
    return RelationFrames(
        tags_path,
        cams_dir,
        flow_dir if config.uses_flow_loss else None,
        use_fcams=config.uses_fcams,
        crop=config.crop,
        margin=config.radius - 1,
        scales=(config.scale_min, config.scale_max),
        conf_fg=config.conf_fg,
        conf_bg=config.conf_bg,
        crf=config.crf,
        frames=frames,
        seed=config.seed,
        working_size=config.working_size,
    )


def make_optimizer(model: IRNet, config: IRNTrainConfig) -> torch.optim.SGD:
    """IRN's SGD: the boundary branch at ``lr``, the displacement branch at ``lr × displacement_lr`` (poly schedule)."""
    edge, displacement = model.branch_parameters()
    lr_d = config.lr * config.displacement_lr
    return torch.optim.SGD(
        [
            {"params": edge, "lr": config.lr, "initial_lr": config.lr},
            {"params": displacement, "lr": lr_d, "initial_lr": lr_d},
        ],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )


def mean_displacement(model: IRNet, dataset: RelationFrames, device: torch.device) -> torch.Tensor:
    """Mean (dy, dx) of the displacement field over every training frame, whole, unflipped, at the working scale (IRN).

    The losses constrain only differences ``D(i) − D(j)``, so the field carries
    a free constant offset; IRN measures it after training and subtracts it.

    Returns
    -------
    (2,) float32 on ``device``
    """
    from training.cam.data import normalize

    total = torch.zeros(2, device=device)
    with torch.no_grad():
        for index in range(len(dataset)):
            x = normalize(dataset.image(index))[None].to(device)
            _, disp = model.forward(x)
            total += disp.float().mean(dim=(0, 2, 3)) + model.mean_shift.running_mean
    return total / max(1, len(dataset))


LEGACY_PREFIX = "cam_net."


def _classifier_arch(weights: dict[str, Any]) -> str:
    """The architecture of the classifier inside IRN weights (keys ``backbone.backbone.…``)."""
    if "backbone.backbone.conv_stem.weight" in weights:
        return LITE0
    return "resnet50" if "backbone.backbone.layer1.0.conv3.weight" in weights else "resnet18"


def _describe_backbone(config: IRNTrainConfig) -> str:
    if config.backbone == CLASSIFIER:
        return "the classifier's (frozen)"
    return f"{config.backbone} (ImageNet, frozen)"


def load_irn_run(run: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[IRNet, list[dict[str, Any]]]:
    """A trained IRN from its run folder, in eval mode.

    Returns
    -------
    model : IRNet
    categories : list of {"id", "name"}, the classifier's outputs in order.

    Raises
    ------
    InputError
        Not a train-irn run, or weights that do not fit.
    """
    from training.cam.network import CAMNet

    run = Path(run)
    if not (run / CHECKPOINT).is_file():
        raise InputError(run, f"no {CHECKPOINT} here: not a train-irn run folder (see 'vis-ws train-irn --out')")
    saved = read_json(run / CONFIG)
    cam_run = saved.pop("cam_run", None) if isinstance(saved, dict) else None
    config = config_from_dict(IRNTrainConfig, saved, run / CONFIG, STAGE)
    categories = read_json(run / CATEGORIES)
    if not isinstance(categories, list) or not categories:
        raise InputError(run / CATEGORIES, "expected a list of {id, name} categories")
    state = load_checkpoint(run / CHECKPOINT)
    weights = dict(state.get("model", {}))
    legacy = any(k.startswith(LEGACY_PREFIX) for k in weights)  # runs before IRN's own backbone: the classifier's
    if legacy:
        n = len(LEGACY_PREFIX)
        weights = {"backbone." + k[n:] if k.startswith(LEGACY_PREFIX) else k: v for k, v in weights.items()}
    if legacy or config.backbone == CLASSIFIER:
        arch = _classifier_arch(weights)
        model = IRNet(CAMNet(len(categories), arch))
    else:
        arch = config.backbone
        model = IRNet(StageBackbone(arch))
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        problem = " ".join(str(exc).split())[:160]
        raise InputError(run / CHECKPOINT, f"weights do not fit IRN on {arch} ({problem}; cam run {cam_run})") from None
    return fast_layout(model.to(device).eval()), categories
