"""Training the detector: step 1 on flowIRN pseudo-labels, step 2 with MaskConsist (METHOD.md §7).

Step 1 trains Mask R-CNN on the pseudo-labels P_fIRN of every frame
(``supervision="full"``: on ground-truth masks, the fully supervised upper
bound). Step 2 starts from the step-1 weights; each batch item is an ordered
frame pair (t, t2) of one video, t2 = t ± δ with δ in 1..``delta_max``: the
model predicts both frames (eval mode, no gradient),
:func:`~training.maskconsist.matching.maskconsist_pair` turns predictions,
pseudo-labels and flow into frame t2's targets, and the model trains on frame
t2 with them. Every pair (t, t+δ) is used in both orders, so high-quality
predictions move from each frame to the other and every frame of a video is
trained (in one direction only, the first δ frames would never be a target).
A one-frame video has no pair: its frame trains on its step-1 targets.

A run folder holds ``config.json``, ``categories.json``, ``checkpoint.pt``
(weights, optimizer, RNG, ``category_ids``) and, in step 2,
``matches/<video key>.json``: per frame pair the latest matching (what the
viewer draws), see :func:`training.maskconsist.targets.summarize_pair`.
The targets themselves are MaskConsist's (:mod:`training.maskconsist.targets`);
this module is the detector's training around them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.backbones import IMAGENET, LITE0, NO_WEIGHTS, default_weights, weights_file
from training.checkpoint import load_checkpoint
from training.config import config_to_dict
from training.data.sources import iter_videos, load_dataset_json
from training.data.video import FrameReader
from training.detection.data import training_sample, volume_frame_masks
from training.detection.model import (
    BACKBONES,
    build_mask_rcnn,
    has_frozen_norm,
    load_backbone_weights,
    sampling_options,
)
from training.detection.predict import predict_frames
from training.device import describe_device, resolve_device
from training.distributed import check_split, describe_world, gather_objects, is_main, rank_device
from training.errors import InputError
from training.export.labels import LabelVolume, load_labels
from training.flow.storage import VideoFlow, read_video_flow
from training.loop import (
    CHECKPOINT,
    CONFIG,
    MemoryHint,
    TrainingRun,
    prepare_run,
)
from training.maskconsist.masks import FrameMasks
from training.maskconsist.matching import IOM_RANKS
from training.maskconsist.targets import pair_matches, read_matches, write_matches
from training.progress import Progress
from training.run_folder import CATEGORIES, MATCHES
from training.sampling import epoch_batches

STAGE = "train"
PSEUDO_FILE = "pseudo.npz"
_RESUME_FREE = ("device", "weights")  # weights only start a new run


@dataclass(frozen=True)
class DetectionTrainConfig:
    """How the detector is trained (torchvision's Mask R-CNN recipe, sized for small sets).

    Attributes
    ----------
    backbone : {"efficientnet_lite0", "resnet50", "resnet18", "mobilenet_v3"}
        EfficientNet-Lite0-FPN (the default: ImageNet weights installed with
        the project); ResNet-50-FPN is the paper's; ResNet-18 and MobileNetV3
        suit a CPU.
    weights : str
        Step 1: where the backbone starts: ``imagenet`` (Lite0: the weights
        installed with the project; a ResNet's or MobileNet's file from the
        torch hub cache, downloaded when missing and a network answers:
        :func:`training.backbones.imagenet_file`), ``none`` (random init,
        stored as "") or a local file (an ImageNet state dict, a ``train-cam``
        checkpoint of the same backbone or a detector run:
        :func:`~training.detection.model.load_backbone_weights`). Left empty in
        step 1 it becomes the backbone's default
        (:func:`training.backbones.default_weights`): ``imagenet`` for Lite0,
        ``none`` otherwise. Step 2 starts from ``init``.
    step : {1, 2}
        1: train on pseudo-labels; 2: MaskConsist, from a step-1 model (``init``).
    supervision : {"weak", "full"}
        Targets from pseudo-labels, or from ground truth (upper bound).
    epochs : int
        Passes over the items (frames in step 1, frame pairs in step 2).
    iterations : int
        When > 0, train exactly this many iterations instead of ``epochs``
        (one checkpoint at the end, and on cancel).
    batch_size : int
        Items per iteration.
    lr : float
        SGD learning rate; 0 means the linear scaling rule of Detectron /
        torchvision's references, ``0.02 * batch_size / 16``, and a tenth of
        it in step 2, which fine-tunes the step-1 model (restarting at step
        1's rate lost step 1's video AP on the synthetic benchmark:
        benchmarks/RESULTS.md).
    momentum, weight_decay : float
        SGD (0.9, 1e-4 as in torchvision's references).
    warmup : int
        Linear warm-up iterations (from 0.1 % of the lr) before the poly schedule.
    min_size, max_size : int
        Frames are resized to this short side / at most this long side.
    proposals, rois : int
        RPN proposals per image and RoIs sampled per image for the heads
        (:func:`~training.detection.model.sampling_options`; COCO's 2000 / 512).
    flip : float
        Probability of a horizontal flip of a training sample.
    intra, inter, iom : bool
        MaskConsist switches (paper Table 5): intra-frame expansion,
        inter-frame matching, IoM-NMS of the targets.
    iom_rank : {"repair", "fuller", "score"}
        Which of two overlapping targets the IoM-NMS keeps: "repair" (the
        larger, but a pseudo-label over a transferred mask of the same
        extent; scores ordered only within a source, since IRN's and the
        detector's are not comparable), "fuller" (the larger) or "score" (one
        score order over both sources, the rule before 2026-12: it dropped
        nearly every transferred repair). See
        :func:`~training.maskconsist.matching.maskconsist_pair`.
    maskcon_first : bool
        IoM-NMS ranks transferred masks above every pseudo-label instead
        (overrides ``iom_rank``; not in the paper; off by default, see RESULTS.md).
    delta_max : int
        Frame pairs (t, t±δ) use every δ in 1..delta_max (δ is not published).
    score_threshold : float
        Predictions below this score are left out of the matching.
    seed : int
        Seeds the initial weights, the batch order and the augmentation.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    amp : bool
        Mixed precision on CUDA (ignored on the CPU).
    """

    backbone: str = LITE0
    weights: str = ""
    step: int = 1
    supervision: str = "weak"
    epochs: int = 12
    iterations: int = 0
    batch_size: int = 2
    lr: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup: int = 100
    min_size: int = 480
    max_size: int = 800
    proposals: int = 2000
    rois: int = 512
    flip: float = 0.5
    intra: bool = True
    inter: bool = True
    iom: bool = True
    iom_rank: str = "repair"
    maskcon_first: bool = False
    delta_max: int = 5
    score_threshold: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise InputError(None, f"train: {what}")

        need(self.backbone in BACKBONES, f"--backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        need(self.step in (1, 2), f"--step must be 1 or 2, got {self.step}")
        weights = "" if self.weights == NO_WEIGHTS else self.weights
        need(not (weights and self.step == 2), "--weights is for step 1; step 2 starts from --init")
        if self.step == 1 and not weights:
            weights = "" if default_weights(self.backbone) == NO_WEIGHTS else IMAGENET
        object.__setattr__(self, "weights", weights)
        need(self.supervision in ("weak", "full"), f"--supervision must be weak or full, got {self.supervision!r}")
        need(self.epochs >= 1 and self.batch_size >= 1, "--epochs and --batch-size must be at least 1")
        need(self.iterations >= 0 and self.warmup >= 0, "--iterations and warmup must be >= 0")
        need(math.isfinite(self.lr) and self.lr >= 0, f"--lr must be >= 0 (0: the linear scaling rule), got {self.lr}")
        need(32 <= self.min_size <= self.max_size, "need 32 <= --min-size <= --max-size")
        need(self.proposals >= 2 and self.rois >= 1, "--proposals must be >= 2 and --rois >= 1")
        need(0 <= self.flip <= 1 and 0 <= self.score_threshold <= 1, "flip and score_threshold must be in [0, 1]")
        need(self.iom_rank in IOM_RANKS, f"--iom-rank must be one of {', '.join(IOM_RANKS)}, got {self.iom_rank!r}")
        need(self.delta_max >= 1, f"--delta-max must be at least 1, got {self.delta_max}")
        need(self.seed >= 0, "--seed must be >= 0")

    @property
    def base_lr(self) -> float:
        """The learning rate in use (when ``lr`` is 0: the linear scaling rule, a tenth of it in step 2)."""
        if self.lr > 0:
            return self.lr
        return 0.02 * self.batch_size / 16 / (10 if self.step == 2 else 1)


@dataclass
class TrainVideo:
    """One video of the training set.

    Attributes
    ----------
    key : str
    reader : FrameReader
    targets : LabelVolume
        Pseudo-labels (or ground truth), (T, H, W).
    flow : VideoFlow or None
        Needed in step 2 for videos of two frames or more.
    """

    key: str
    reader: FrameReader
    targets: LabelVolume
    flow: VideoFlow | None = None


def frame_pairs(n_frames: Sequence[int], step: int, delta_max: int) -> list[tuple[int, int, int]]:
    """The training items: (video index, t, t2) with targets at frame t2.

    Step 1: every frame (t = t2). Step 2: every pair (t, t+δ), δ in 1..delta_max,
    in both orders: (t, t+δ) then (t+δ, t); a one-frame video gives its frame
    alone (t = t2 = 0).
    """
    items = []
    for v, n in enumerate(n_frames):
        if step == 1 or n == 1:
            items += [(v, t, t) for t in range(n)]
        else:
            pairs = [(t, t + d) for d in range(1, delta_max + 1) for t in range(n - d)]
            items += [(v, a, b) for t, t2 in pairs for a, b in ((t, t2), (t2, t))]
    return items


def plan_batches(
    n_items: int, batch_size: int, seed: int, epochs: int, iterations: int
) -> tuple[int, list[list[list[tuple[int, int]]]]]:
    """Batches of every epoch as (pass, item) pairs, a pure function of the arguments.

    With ``iterations`` > 0 there is one loop epoch made of the first
    ``iterations`` batches of consecutive shuffled passes.

    Returns
    -------
    epochs : int, the epoch count for :func:`~training.loop.epoch_loop`
    batches : list over epochs of lists of batches of (pass, item index)
    """
    if iterations <= 0:
        return epochs, [
            [[(e, i) for i in b] for b in epoch_batches(n_items, batch_size, seed, e)] for e in range(epochs)
        ]
    flat: list[list[tuple[int, int]]] = []
    e = 0
    while len(flat) < iterations:
        flat += [[(e, i) for i in b] for b in epoch_batches(n_items, batch_size, seed, e)]
        e += 1
    return 1, [flat[:iterations]]


class MatchLog:
    """Step 2's latest MaskConsist matching per frame pair, kept in ``RUN/matches/<video>.json`` for the viewer.

    Parameters
    ----------
    folder : Path
        ``RUN/matches``.
    resumed : list of str
        Keys of the videos whose files a resumed run reads back first.
    """

    def __init__(self, folder: Path, resumed: list[str]) -> None:
        self.folder = folder
        self.pairs: dict[str, dict[str, Any]] = {}
        for key in resumed:
            saved = read_matches(folder / f"{key}.json")
            if saved is not None:
                self.pairs[key] = {f"{p['t']}-{p['t2']}": p for p in saved}

    def record(self, step_pairs: dict[str, dict[str, Any]]) -> None:
        """Add one step's pair summaries (``{video: {"t-t2": summary}}``) of every rank; rank 0 rewrites the files."""
        touched = set()
        for ranked in gather_objects(step_pairs):  # the pairs of every rank: the whole global batch
            for key, pairs in ranked.items():
                self.pairs.setdefault(key, {}).update(pairs)
                touched.add(key)
        if is_main():
            for key in sorted(touched):
                write_matches(self.folder / f"{key}.json", key, list(self.pairs[key].values()))


def load_train_videos(
    dataset_json: str | os.PathLike,
    pseudo_dir: str | os.PathLike | None,
    config: DetectionTrainConfig,
    flow_dir: str | os.PathLike | None = None,
    gt_json: str | os.PathLike | None = None,
    frames: str | os.PathLike | None = None,
) -> tuple[list[TrainVideo], list[dict[str, Any]]]:
    """Every video with its targets (and flow in step 2), checked before training.

    Returns
    -------
    videos : list of TrainVideo
    categories : list of {"id", "name"} of the dataset JSON

    Raises
    ------
    InputError
        Missing pseudo-labels, ground truth or flow of a video, or a size mismatch.
    """
    from training.data.ytvis import gt_volume, load_ytvis

    data = load_dataset_json(dataset_json)
    categories = [{"id": int(c["id"]), "name": str(c.get("name", c["id"]))} for c in data["categories"]]
    gt: dict[str, Any] | None = None
    gt_path = Path(gt_json) if gt_json is not None else Path(dataset_json)
    if config.supervision == "full":
        gt = load_ytvis(gt_path)
        if not gt.get("annotations"):
            raise InputError(gt_path, "--supervision full needs ground truth masks: pass --gt GT.json")
    elif pseudo_dir is None:
        raise InputError(None, "train: --supervision weak needs --pseudo RUN/pseudo ('vis-ws pseudo-labels' output)")
    if config.step == 2 and flow_dir is None:
        raise InputError(None, "train: --step 2 (MaskConsist) needs --flow DIR ('vis-ws flow' output of the videos)")
    videos = []
    known = {c["id"] for c in categories}
    for src in iter_videos(dataset_json, frames):
        if gt is not None:
            volume, where = gt_volume(gt, int(src.video["id"]), gt_path), gt_path
        else:
            where = Path(pseudo_dir) / src.key / PSEUDO_FILE  # type: ignore[arg-type]
            if not where.is_file():
                raise InputError(where, f"no pseudo-labels for video {src.key!r}: run 'vis-ws pseudo-labels' first")
            volume = load_labels(where)
        t, h, w, _ = src.reader.shape
        if volume.labels.shape != (t, h, w):
            raise InputError(
                where, f"video {src.key!r}: labels {volume.labels.shape} do not fit its frames {(t, h, w)}"
            )
        unknown = sorted(set(volume.categories.values()) - known)
        if unknown:
            raise InputError(where, f"video {src.key!r}: category id {unknown[0]} is not in {dataset_json}")
        flow = read_video_flow(flow_dir, src.key) if config.step == 2 and t > 1 else None  # type: ignore[arg-type]
        if flow is not None and flow.n_frames != t:
            raise InputError(flow_dir, f"video {src.key!r}: flow has {flow.n_frames} frames, the video {t}")
        videos.append(TrainVideo(src.key, src.reader, volume, flow))
    if not videos:
        raise InputError(dataset_json, "no videos to train on")
    return videos, categories


def _init_state(init: str | os.PathLike, category_ids: list[int], backbone: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint of a step-1 run that step 2 starts from, checked against this run."""
    path = Path(init)
    path = path / CHECKPOINT if path.is_dir() else path
    state = load_checkpoint(path)
    if [int(c) for c in state.get("category_ids", [])] != category_ids:
        raise InputError(path, f"--init was trained on categories {state.get('category_ids')}, not {category_ids}")
    if dict(state.get("config", {})).get("backbone") != backbone:
        raise InputError(path, f"--init is not a {backbone} detector; pass the same --backbone as its run")
    if not isinstance(state.get("model"), dict):
        raise InputError(path, "not a 'vis-ws train' checkpoint (no model weights)")
    return path, state


def _new_model(config: DetectionTrainConfig, n_classes: int, pretrained: bool) -> torch.nn.Module:
    options = sampling_options(config.proposals, config.rois)
    return build_mask_rcnn(n_classes, config.backbone, config.min_size, config.max_size, pretrained, **options)


def _build_model(
    config: DetectionTrainConfig,
    n_classes: int,
    run: Path,
    resumed: bool,
    init: str | os.PathLike | None,
    ids: list[int],
) -> torch.nn.Module:
    """The detector at the start of training: resumed weights come later; else ``init``, ``weights`` or random."""
    if resumed:  # built like the checkpoint's weights; resume_state loads them
        pretrained = has_frozen_norm(dict(load_checkpoint(run / CHECKPOINT).get("model", {})))
        return _new_model(config, n_classes, pretrained)
    if init is not None:
        path, state = _init_state(init, ids, config.backbone)
        model = _new_model(config, n_classes, has_frozen_norm(state["model"]))
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise InputError(path, f"not a 'vis-ws train' checkpoint ({type(exc).__name__})") from None
        return model
    start = weights_file(config.weights, config.backbone)
    model = _new_model(config, n_classes, start is not None)
    if start is not None:
        load_backbone_weights(model, start, config.backbone)
    return model


def _describe_start(config: DetectionTrainConfig, resumed: bool, init: str | os.PathLike | None) -> str:
    """`` from ImageNet weights`` and the like, for the first progress message of a new step-1 run."""
    if resumed or init is not None:
        return ""
    if config.weights == IMAGENET:
        return " from ImageNet weights"
    return f" from {config.weights}" if config.weights else " from random init"


def _optimizer(model: torch.nn.Module, config: DetectionTrainConfig) -> torch.optim.SGD:
    """SGD over the trainable parameters at the config's base rate (``initial_lr`` set for the poly schedule)."""
    params = [p for p in model.parameters() if p.requires_grad]
    base = config.base_lr
    group = {"params": params, "lr": base, "initial_lr": base}
    return torch.optim.SGD([group], lr=base, momentum=config.momentum, weight_decay=config.weight_decay)


def frame_targets_of(
    model: torch.nn.Module,
    config: DetectionTrainConfig,
    category_ids: list[int],
    video: TrainVideo,
    t: int,
    t2: int,
    pairs: dict[str, dict[str, Any]],
) -> FrameMasks:
    """The training targets of frame ``t2`` of ``video`` for the item (t, t2).

    Step 1 (t == t2): its pseudo-labels (or ground truth). Step 2: MaskConsist's
    targets from the model's predictions on both frames, the pseudo-labels and
    the flow between them (METHOD.md §7); the pair's summary goes into
    ``pairs[video.key]["t-t2"]`` (the run's matches file).
    """
    pseudo_t2 = volume_frame_masks(video.targets, t2)
    if t == t2:
        return pseudo_t2
    assert video.flow is not None  # checked by load_train_videos
    pred_t, pred_t2 = predict_frames(
        model, [video.reader[t], video.reader[t2]], category_ids, config.score_threshold, iom_threshold=None
    )
    pseudo_t = volume_frame_masks(video.targets, t)
    targets, summary = pair_matches(
        pred_t, pred_t2, pseudo_t, pseudo_t2, video.flow.carry(t, t2), t, t2,
        config.intra, config.inter, config.iom, config.maskcon_first, config.iom_rank,
    )  # fmt: skip
    pairs.setdefault(video.key, {})[f"{t}-{t2}"] = summary
    return targets


def train_detector(
    config: DetectionTrainConfig,
    tags_or_gt_json: str | os.PathLike,
    pseudo_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    flow_dir: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    resume: bool = False,
    gt_json: str | os.PathLike | None = None,
    frames: str | os.PathLike | None = None,
) -> Iterator[Progress]:
    """Train Mask R-CNN (step 1) or MaskConsist (step 2); a generator of progress events.

    Under ``torchrun`` (:mod:`training.distributed`) every rank trains on its
    slice of each global batch (DDP); rank 0 writes the run folder, with the
    frame-pair matches of every rank.

    Parameters
    ----------
    config : DetectionTrainConfig
    tags_or_gt_json : path
        The videos: frame tags (or a YouTube-VIS dataset) with their categories.
    pseudo_dir : path or None
        ``RUN/pseudo`` of ``vis-ws pseudo-labels`` (``<key>/pseudo.npz`` per
        video); unused with ``supervision="full"``.
    out_dir : path
        The run folder.
    flow_dir : path, optional
        ``vis-ws flow`` output; required in step 2.
    init : path, optional
        A step-1 run folder or checkpoint; required in step 2 (unless resuming).
    resume : bool
        Continue ``out_dir/checkpoint.pt``.
    gt_json : path, optional
        Ground truth for ``supervision="full"`` (default: ``tags_or_gt_json``).
    frames : path, optional
        Frames folder of the JSON.

    Yields
    ------
    Progress
        Per iteration: loss, its terms (loss_classifier, loss_box_reg,
        loss_mask, loss_objectness, loss_rpn_box_reg), lr, targets.

    Raises
    ------
    InputError
        Bad inputs, found before anything is written.
    TrainingStopped
        NaN/inf loss, or a batch that does not fit in memory; the last good
        checkpoint is kept.
    """
    run = Path(out_dir)
    if config.step == 1 and not (resume and (run / CHECKPOINT).is_file()):
        weights_file(config.weights, config.backbone)  # a missing ImageNet file fails before anything is written
    resumed = prepare_run(run, resume)
    if config.step == 2 and init is None and not resumed:
        raise InputError(None, "train: --step 2 starts from a step-1 model: pass --init RUN1 (its run folder)")
    videos, categories = load_train_videos(tags_or_gt_json, pseudo_dir, config, flow_dir, gt_json, frames)
    category_ids = [c["id"] for c in categories]
    items = frame_pairs([len(v.reader) for v in videos], config.step, config.delta_max)
    epochs, plan = plan_batches(len(items), config.batch_size, config.seed, config.epochs, config.iterations)
    unit = "frame pair" if config.step == 2 else "frame"
    check_split(STAGE, min(len(b) for b in plan[0]), f"{unit}s")
    device = rank_device(resolve_device(config.device))
    torch.manual_seed(config.seed)
    model = _build_model(config, len(category_ids), run, resumed, init, category_ids)
    optimizer = _optimizer(model, config)
    trainer = TrainingRun(STAGE, run, config, model, optimizer, device)
    inputs = {"pseudo": str(pseudo_dir), "flow": str(flow_dir), "init": str(init), "gt": str(gt_json)}
    files = {CONFIG: {**config_to_dict(config), **inputs}, CATEGORIES: categories}
    # heads without a target in a step get no gradient: DDP must not wait for them
    step, losses, _ = trainer.open(resumed, _RESUME_FREE, files, find_unused_parameters=True)
    net = trainer.net
    log = MatchLog(run / MATCHES, [v.key for v in videos] if resumed else [])

    def batches(epoch: int) -> list[list[tuple[int, int]]]:
        return plan[epoch]

    def step_fn(batch: list[tuple[int, int]], step: int, total: int) -> dict[str, float]:
        warm = min(1.0, 0.001 + (step + 1) / config.warmup) if config.warmup else 1.0
        trainer.set_lr(step, total, warm)
        images, targets, step_pairs, n_targets = [], [], dict[str, dict[str, Any]](), 0
        for e, i in batch:
            vi, t, t2 = items[i]
            v = videos[vi]
            frame_targets = frame_targets_of(model, config, category_ids, v, t, t2, step_pairs)
            n_targets += len(frame_targets)
            image, target = training_sample(v.reader[t2], frame_targets, category_ids, config.seed, e, i, config.flip)
            images.append(image.to(device))
            targets.append({k: x.to(device) for k, x in target.items()})
        net.train()
        optimizer.zero_grad(set_to_none=True)
        with trainer.precision.autocast():
            parts = net(images, targets)
        loss = trainer.backward(sum(parts.values()))
        if config.step == 2:
            log.record(step_pairs)
        metrics = {k: float(x.detach()) for k, x in parts.items()}
        return {"loss": loss, **metrics, "lr": optimizer.param_groups[0]["lr"], "targets": float(n_targets)}

    def save(step: int, epoch_losses: list[float]) -> None:
        trainer.save(step, epoch_losses, category_ids=category_ids)

    what = "MaskConsist frame pairs" if config.step == 2 else "frames"
    start = "resuming at" if resumed else "training from"
    yield Progress(
        STAGE,
        step,
        epochs * len(plan[0]),
        message=(
            f"{start} step {step}: step {config.step} ({config.supervision}) on {len(items)} {what} of "
            f"{len(videos)} videos, Mask R-CNN {config.backbone}{_describe_start(config, resumed, init)}, "
            f"lr {config.base_lr:g}, {describe_device(device)}"
            f"{describe_world()}"
        ),
    )
    memory = MemoryHint(unit, "a smaller --min-size/--max-size", "a lighter --backbone")
    yield from trainer.loop(epochs, batches, step_fn, save, step, losses, memory=memory)
