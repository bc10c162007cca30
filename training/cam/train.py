"""Training the CAM classifier on frame tags (METHOD.md §2), and reading a trained run back.

A run folder holds::

    RUN/config.json      the CAMTrainConfig (everything needed to reproduce the run)
    RUN/categories.json  the K categories, in the classifier's output order
    RUN/checkpoint.pt    model, optimizer, step, RNG state; written at the end of
                         every epoch and when training is cancelled

:func:`train_cam` is a generator of :class:`~training.progress.Progress`
events; closing it (``gen.close()``, the GUI's cancel) saves the checkpoint,
and ``resume=True`` continues from it to the same final weights as an
uninterrupted run (on CPU, bit for bit: batches and augmentation are pure
functions of (seed, epoch, frame), see :mod:`training.cam.data`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from training.backbones import IMAGENET, LITE0, NO_WEIGHTS, default_weights, weights_file
from training.cam.data import TagFrames, iterate_batches, normalize
from training.cam.network import ARCHS, FREEZE, POOLINGS, CAMNet, load_weights
from training.checkpoint import load_checkpoint
from training.config import config_from_dict, config_to_dict
from training.device import describe_device, fast_layout, resolve_device
from training.distributed import check_split, describe_world, rank_device
from training.errors import InputError
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

STAGE = "train-cam"
# Fields that may differ between a run and its resumption without changing the result.
_RESUME_FREE = ("device", "workers")


@dataclass(frozen=True)
class CAMTrainConfig:
    """How the CAM classifier is trained (IRN's ``train_cam``, adapted to random init on a CPU).

    Attributes
    ----------
    arch : {"efficientnet_lite0", "resnet50", "resnet18"}
        Backbone (:mod:`training.backbones`). EfficientNet-Lite0 (the default)
        has ImageNet weights that install with the project; ResNet-50 is IRN's,
        ResNet-18 is about 3x faster than it on a CPU.
    epochs : int
        Passes over the tagged frames (IRN: 5 on VOC's 10k images; a video set
        of a few hundred frames needs more iterations).
    batch_size : int
        Frames per iteration (IRN: 16).
    lr : float
        Learning rate of the new 1x1 classifier at step 0, decayed by the poly
        schedule ``(1 - step/steps)^0.9``.
    backbone_lr : float or None
        Learning rate of the backbone; None is ``lr / 10``. IRN gives the
        backbone 0.1 and the classifier 1.0 without momentum; with momentum 0.9
        (an effective step 10x larger) 0.01 and 0.1 take the same steps. From
        random init a uniform 0.1 was unstable at batch 8 (loss spikes) and
        0.01 fitted the tags faster (benchmarks/RESULTS.md).
    momentum : float
        SGD momentum (IRN's PolyOptimizer passes none; 0.9 with the rates above).
    weight_decay : float
        L2 penalty on every trained weight (IRN: 1e-4).
    crop : int
        Side of the square training crop (IRN: 512 on VOC's ~500 px images; 224
        covers most of a 240x320 frame).
    scale_range : (float, float)
        Random rescale of each frame before the crop (IRN: long side 320-640
        on ~500 px images, i.e. about 0.65-1.3).
    channel_shuffle : float
        Probability of permuting a frame's RGB channels (not in IRN, whose
        ImageNet features already ignore a video's colours). From random init on
        few videos a classifier otherwise learns each video's background colours
        and its tags instead of the objects (see benchmarks/RESULTS.md).
    pooling : {"gap", "lse"}
        How class score maps become logits (:class:`~training.cam.network.CAMNet`):
        IRN's global average pooling, or log-sum-exp pooling (not in IRN), which
        makes a classifier from random init put its evidence on the objects.
    seed : int
        Seeds the initial weights, the batch order and the augmentation.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    amp : bool
        Mixed precision (float16 autocast + gradient scaling) on CUDA; ignored
        on CPU.
    weights : str or None
        ``imagenet`` (:func:`training.backbones.imagenet_file`: the Lite0
        package's file, or torchvision's ResNet file in the torch hub cache),
        ``none`` (random init) or a local file with ImageNet or vis-ws weights.
        None is the architecture's default (:func:`training.backbones.default_weights`):
        ``imagenet`` for Lite0; random init for a ResNet, whose ImageNet file
        is a download (runs before Lite0 stored None for random init).
    freeze : {"auto", "backbone", "stem", "none"}
        What of the backbone stays fixed (:class:`~training.cam.network.CAMNet`):
        the whole backbone (only the 1x1 classifier trains), IRN's stem
        recipe, or nothing. ``auto``: ``backbone`` when starting from
        ``imagenet`` (measured best on the synthetic set for Lite0: CAM mIoU
        0.46 against 0.40 fine-tuned and 0.34 from random init, and 2.4x
        faster; METHOD.md §2a), else ``none``.
    freeze_stem : bool
        ``freeze="stem"`` (IRN's treatment of ImageNet weights: the stem
        frozen, stages up to stride 8 detached, BatchNorm statistics fixed);
        kept for runs written before ``freeze``.
    workers : int
        DataLoader worker processes (0: decode in the training process).
    working_size : int
        Short side, in pixels, frames are upsampled to before the rescale and
        the crop (:mod:`training.working_scale`, METHOD.md §9); ``vis-ws cams``
        makes the CAMs at the same scale. 0: frame size (runs written before
        this field).
    """

    arch: str = LITE0
    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.1
    backbone_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    crop: int = 224
    scale_range: tuple[float, float] = (0.7, 1.3)
    channel_shuffle: float = 0.0
    pooling: str = "gap"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    weights: str | None = None
    freeze: str = "auto"
    freeze_stem: bool = False
    workers: int = 0
    working_size: int = WORKING_SIZE

    ABSENT: ClassVar[dict[str, Any]] = {"working_size": 0}
    """Fields runs written before them lack, and what those runs did (:func:`training.config.absent_values`)."""

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise InputError(None, f"train-cam: {what}")

        need(self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if not self.weights:  # the architecture's default start (None: random init for a ResNet, as before Lite0)
            object.__setattr__(self, "weights", IMAGENET if default_weights(self.arch) == IMAGENET else None)
        need(self.freeze in ("auto", *FREEZE), f"--freeze must be auto or one of {', '.join(FREEZE)}")
        need(not self.freeze_stem or self.freeze in ("auto", "stem"), "--freeze-stem contradicts --freeze")
        for name in ("epochs", "batch_size", "crop"):
            need(int(getattr(self, name)) >= 1, f"--{name.replace('_', '-')} must be at least 1")
        need(self.crop >= 32, "--crop must be at least 32 (the network downsamples by 16)")
        need(math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}")
        bl = self.backbone_lr
        need(bl is None or (math.isfinite(bl) and bl >= 0), f"backbone_lr must be >= 0, got {bl}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        lo, hi = (float(v) for v in self.scale_range)
        need(0 < lo <= hi, f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        object.__setattr__(self, "scale_range", (lo, hi))
        need(self.pooling in POOLINGS, f"--pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        need(0 <= self.channel_shuffle <= 1, f"channel_shuffle must be in [0, 1], got {self.channel_shuffle}")
        need(self.seed >= 0, f"--seed must be non-negative, got {self.seed}")
        need(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        check_working_size(self.working_size, STAGE)

    @property
    def backbone_freeze(self) -> str:
        """What of the backbone stays fixed: ``freeze`` with ``auto`` and ``freeze_stem`` resolved."""
        if self.freeze_stem:
            return "stem"
        if self.freeze == "auto":
            return "backbone" if self.weights == IMAGENET else "none"
        return self.freeze

    @property
    def backbone_learning_rate(self) -> float:
        """The backbone's initial learning rate (``backbone_lr``, default ``lr / 10``)."""
        return float(self.backbone_lr) if self.backbone_lr is not None else self.lr / 10

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``config.json``)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike | None = None) -> CAMTrainConfig:
        """Rebuild a config from :meth:`to_dict` output; InputError naming ``path`` on unknown fields."""
        return config_from_dict(cls, data, path, STAGE)


def cam_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IRN's classification loss: multi-label soft margin of (N, K) logits against (N, K) 0/1 tags."""
    return F.multilabel_soft_margin_loss(logits.float(), targets)


def build_model(config: CAMTrainConfig, n_classes: int) -> CAMNet:
    """The initial network: seeded random init, then ``config.weights`` if any (ImageNet or a file)."""
    torch.manual_seed(config.seed)
    model = CAMNet(n_classes, config.arch, freeze=config.backbone_freeze, pooling=config.pooling)
    path = weights_file(config.weights or NO_WEIGHTS, config.arch)
    if path is not None:
        load_weights(model, path)
    return model


def make_optimizer(model: CAMNet, config: CAMTrainConfig) -> torch.optim.SGD:
    """SGD with two groups: backbone (group 0) and the new classifier (group 1)."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    return torch.optim.SGD(
        [
            {"params": backbone, "lr": config.backbone_learning_rate, "initial_lr": config.backbone_learning_rate},
            {"params": list(model.classifier.parameters()), "lr": config.lr, "initial_lr": config.lr},
        ],
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )


def _describe_start(config: CAMTrainConfig) -> str:
    """``ImageNet weights, backbone frozen`` and the like, for the first progress message."""
    start = {IMAGENET: "ImageNet weights", NO_WEIGHTS: "random init", None: "random init"}.get(config.weights)
    frozen = {"backbone": "backbone frozen", "stem": "stem frozen", "none": "all layers trained"}
    return f"{start or 'weights ' + str(config.weights)}, {frozen[config.backbone_freeze]}"


def _check_categories(run: Path, category_ids: list[int]) -> None:
    cats = read_json(run / CATEGORIES)
    if not isinstance(cats, list) or [c.get("id") for c in cats if isinstance(c, dict)] != category_ids:
        raise InputError(run / CATEGORIES, "cannot resume: the tags file now has other categories than the run")


def train_cam(
    config: CAMTrainConfig,
    tags_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    frames: str | os.PathLike | None = None,
    resume: bool = False,
) -> Generator[Progress, None, None]:
    """Train the CAM classifier on frame tags; a generator of progress events.

    Under ``torchrun`` (:mod:`training.distributed`) every rank trains on its
    slice of each global batch (DDP); rank 0 writes the run folder.

    Parameters
    ----------
    config : CAMTrainConfig
    tags_path : path
        Frame-tags JSON; frames in ``JPEGImages/`` beside it or ``frames``.
    out_dir : path
        The run folder (see the module docstring).
    frames : path, optional
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` (same options required); with
        no checkpoint there, start from scratch.

    Yields
    ------
    Progress
        One per iteration (``metrics``: loss, lr) and one message per epoch.

    Raises
    ------
    InputError
        Bad tags or frames (nothing is written), an existing checkpoint without
        ``resume``, options that differ from the run being resumed.
    TrainingStopped
        The loss became NaN or infinite, or a batch did not fit in memory; the
        last good checkpoint is kept.
    """
    run = Path(out_dir)
    ckpt_path = run / CHECKPOINT
    weights_file(config.weights or NO_WEIGHTS, config.arch)  # a missing ImageNet file fails before anything is written
    resumed = prepare_run(run, resume)
    dataset = TagFrames(
        tags_path,
        frames,
        config.crop,
        config.scale_range,
        config.seed,
        channel_shuffle=config.channel_shuffle,
        working_size=config.working_size,
    )
    device = rank_device(resolve_device(config.device))
    check_split(STAGE, min(len(dataset), config.batch_size))
    model = build_model(config, len(dataset.category_ids))
    optimizer = make_optimizer(model, config)
    trainer = TrainingRun(STAGE, run, config, model, optimizer, device)
    if resumed:
        _check_categories(run, dataset.category_ids)
    files = {CONFIG: config.to_dict(), CATEGORIES: dataset.categories}
    # freeze "stem": the stages before the detach get no gradient
    step, losses, state = trainer.open(resumed, _RESUME_FREE, files, config.backbone_freeze == "stem")
    if resumed and state.get("n_frames") != len(dataset):
        raise InputError(
            ckpt_path,
            f"cannot resume: the run was trained on {state.get('n_frames')} tagged frames, "
            f"the tags now list {len(dataset)}; train into a new --out",
        )
    net = trainer.net

    def batches(epoch: int) -> list[list[int]]:
        return epoch_batches(len(dataset), config.batch_size, config.seed, epoch)

    def load(epoch: int, slices: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dataset.set_epoch(epoch)  # before the DataLoader's workers copy the dataset
        return iterate_batches(dataset, slices, config.workers)

    def step_fn(batch: tuple[torch.Tensor, torch.Tensor], step: int, total: int) -> dict[str, float]:
        trainer.set_lr(step, total)
        x, y = batch
        net.train()
        optimizer.zero_grad(set_to_none=True)
        with trainer.precision.autocast():
            logits = net(x.to(device))
        loss = trainer.backward(cam_loss(logits, y.to(device)))
        return {"loss": loss, "lr": optimizer.param_groups[1]["lr"]}

    def save(step: int, epoch_losses: list[float]) -> None:
        extra = {"epoch": step // len(batches(0)), "category_ids": list(dataset.category_ids), "n_frames": len(dataset)}
        trainer.save(step, epoch_losses, **extra)

    total = config.epochs * len(batches(0))
    start = "resuming at" if resumed else "training from"
    yield Progress(
        STAGE,
        step,
        total,
        "it",
        message=(
            f"{start} step {step}/{total}: {config.arch} ({_describe_start(config)}) on {len(dataset)} frames of "
            f"{len(dataset.readers)} videos, "
            f"{len(dataset.category_ids)} classes, {describe_device(device)}{describe_world()}"
        ),
    )
    memory = MemoryHint("frame", "a smaller --crop", "a lighter --arch")
    yield from trainer.loop(config.epochs, batches, step_fn, save, step, losses, load=load, memory=memory)


def load_run(run: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[CAMNet, list[dict[str, Any]], Path]:
    """A trained CAM network from its run folder, in eval mode on ``device``.

    Parameters
    ----------
    run : path
        Folder written by :func:`train_cam` (``vis-ws train-cam --out RUN``).
    device : torch.device or str

    Returns
    -------
    model : CAMNet
    categories : list of dict
        ``{"id", "name"}`` per output, in order.
    checkpoint : Path
        The weights file (to fingerprint outputs made with it).

    Raises
    ------
    InputError
        Not a run folder, or files that do not fit together.
    """
    run = Path(run)
    if not (run / CHECKPOINT).is_file():
        raise InputError(run, f"no {CHECKPOINT} here: not a train-cam run folder (see 'vis-ws train-cam --out')")
    config = CAMTrainConfig.from_dict(read_json(run / CONFIG), run / CONFIG)
    categories = read_json(run / CATEGORIES)
    if not isinstance(categories, list) or not all(isinstance(c, dict) and "id" in c for c in categories):
        raise InputError(run / CATEGORIES, "expected a list of {id, name} categories")
    model = CAMNet(len(categories), config.arch, freeze=config.backbone_freeze, pooling=config.pooling)
    state = load_checkpoint(run / CHECKPOINT)
    try:
        model.load_state_dict(state.get("model", state))
    except RuntimeError as exc:
        problem = " ".join(str(exc).split())[:160]
        raise InputError(
            run / CHECKPOINT, f"weights do not fit {config.arch} with {len(categories)} classes ({problem})"
        ) from None
    return fast_layout(model.to(device).eval()), categories, run / CHECKPOINT


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated average precision of one class (mean precision at each positive).

    Parameters
    ----------
    scores : (N,) float
    positives : (N,) bool

    Returns
    -------
    ap : float, NaN when there is no positive
    """
    pos = np.asarray(positives, bool)
    if not pos.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = pos[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def classification_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes with at least one positive frame of their average precision.

    Parameters
    ----------
    scores : (N, K) float
        Per-frame class scores (logits or probabilities).
    targets : (N, K) bool or 0/1
        Frame tags.

    Returns
    -------
    map : float, NaN when no class has a positive
    """
    s, t = np.asarray(scores), np.asarray(targets).astype(bool)
    aps = [average_precision(s[:, k], t[:, k]) for k in range(t.shape[1])]
    aps = [a for a in aps if not math.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


@torch.inference_mode()
def frame_scores(model: CAMNet, dataset: TagFrames, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of every dataset frame at full size, unaugmented.

    Returns
    -------
    scores : (N, K) float32 sigmoid of the logits
    targets : (N, K) float32 tags
    """
    device = next(model.parameters()).device
    model.eval()
    out: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            out.append(torch.sigmoid(model(torch.stack(batch).to(device))).float().cpu().numpy())
            batch.clear()

    for i in range(len(dataset)):
        x = normalize(dataset.image(i))
        if batch and (x.shape != batch[0].shape or len(batch) == batch_size):
            flush()
        batch.append(x)
    flush()
    targets = np.stack([it.target for it in dataset.items])
    return np.concatenate(out), targets
