"""The weak pipeline in order (METHOD.md §1-§8): presets, stages and their driver.

What ``vis-ws pipeline``, ``vis-ws pseudo-labels`` and the plugin's Pipeline
dock all run. Everything here takes values, not argparse namespaces. The
per-video stages (:func:`flow_stage`, :func:`cams_stage`,
:func:`pseudo_labels_stage`) read back what the run recorded (the IRN
variant, the instance settings of the pseudo-labels made so far), so a video
labelled from the dock is made exactly as the CLI makes the others.

A stage is a :class:`Stage`: a name and a ``start()`` that returns its progress
generator. Every stage resumes or skips what is done, so running a list again
costs little; :func:`drive_stages` runs a list (under torchrun on every rank,
with a barrier between stages).

Nothing heavy is imported at module level: each stage imports its models when
it starts, so reading the presets costs no torch import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from training import run_folder
from training.errors import InputError
from training.run_folder import Project

if TYPE_CHECKING:
    from training.cam.train import CAMTrainConfig
    from training.data.sources import VideoSource
    from training.irn.train import IRNTrainConfig

PathLike = str | os.PathLike

# Settings per preset. "tiny" runs a small synthetic set on a 2-core CPU in minutes (CI runs it);
# "cpu" is the best that fits about 15-20 minutes of 2 CPU cores for 300 frames of 120x160;
# "default" is the paper's setup (ResNet-50 everywhere), sized for a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "working_size": 0,  # frame size: seconds, not quality
        "cam": {"arch": "resnet18", "epochs": 2, "batch_size": 4, "crop": 64},
        "irn": {"epochs": 1, "batch_size": 4, "crop": 64, "radius": 5},
        "detector": {"backbone": "resnet18", "iterations": 2, "batch_size": 2, "min_size": 64, "max_size": 96},
    },
    "cpu": {  # ImageNet EfficientNet-Lite0 everywhere: the classifier and IRN on frozen features
        "cam": {"arch": "efficientnet_lite0", "epochs": 8, "batch_size": 16, "crop": 160},
        "irn": {"epochs": 3, "batch_size": 8, "crop": 192, "radius": 10},
        "detector": {
            "backbone": "efficientnet_lite0",
            "epochs": 4,
            "batch_size": 2,
            "min_size": 160,
            "max_size": 240,
            "proposals": 300,
            "rois": 128,
        },
        # No MaskConsist step 2: at this budget a longer step 1 gave more. On the validation set (generator
        # seed 7, its own held-out videos; benchmarks/RESULTS.md), held-out video AP: step 1 of 2 epochs
        # + 200 step-2 iterations 30.1 (495 s), 4 epochs 33.2 (about 435 s), 4 epochs + 100 or 200
        # step-2 iterations 30.8 / 32.5 (+140 / +280 s). `vis-ws train --step 2 --init RUN/maskrcnn` adds it.
        "maskconsist": None,
    },
    "default": {
        "cam": {"arch": "resnet50", "epochs": 10, "batch_size": 8, "crop": 224},
        "irn": {"epochs": 3, "batch_size": 8, "crop": 256, "radius": 10},
        "detector": {"backbone": "resnet50", "epochs": 12, "batch_size": 2, "min_size": 480, "max_size": 800},
    },
}

MODEL_HINT = "Run all trains what is missing, or train it from the Training dock or with `vis-ws pseudo-labels`"
"""What a per-video stage tells a user whose project lacks the model it needs."""
FIRST = {"model": MODEL_HINT, "flow": "run Flow first", "cams": "run CAMs first"}
"""What to do about each kind of :func:`missing_input`."""


def missing_input(stage: str, run: PathLike, key: str, fcams: bool = True) -> tuple[str, str] | None:
    """What a per-video stage lacks in ``run`` for video ``key``, before it starts (file checks only).

    Parameters
    ----------
    stage : str
        "cams" or "pseudo-labels" (other stages need nothing of the run).
    run : path
    key : str
        The video's output name (:func:`training.data.sources.video_key`).
    fcams : bool
        Whether the CAM stage makes f-CAMs (it then needs the video's flow).

    Returns
    -------
    (what, step) or None
        ``what`` says what is missing, naming the folder; ``step`` is what
        makes it: "model" (a model to train: Run all, ``vis-ws
        pseudo-labels``), or "flow" / "cams" (that stage of this video). None
        when the stage can run.
    """
    from training.flow.storage import flow_paths

    project = Project(run)
    if stage == "cams":
        if not run_folder.checkpoint(project.cam).is_file():
            return f"no trained classifier in {project.cam}", "model"
        if fcams and not all(p.is_file() for p in flow_paths(project.flow, key)):
            return f"no optical flow of video {key} in {project.flow}", "flow"
    elif stage == "pseudo-labels":
        if not run_folder.checkpoint(project.irn).is_file():
            return f"no trained IRN in {project.irn}", "model"
        if not (project.cams / key / run_folder.CAMS_RECORD).is_file():
            return f"no CAMs of video {key} in {project.cams}", "cams"
    return None


def _check_inputs(stage: str, run: PathLike, sources: list[VideoSource], fcams: bool = True) -> None:
    """Refuse in one line when :func:`missing_input` finds something missing for one of ``sources``."""
    for source in sources:
        missing = missing_input(stage, run, source.key, fcams)
        if missing is not None:
            raise InputError(None, f"{missing[0]}: {FIRST[missing[1]]}")


class Stage(NamedTuple):
    """One step of the pipeline: ``start()`` returns its progress generator (nothing runs before)."""

    name: str
    start: Callable[[], Iterator[Any]]


@dataclass(frozen=True)
class PipelineSettings:
    """What ``vis-ws pipeline`` runs, as values (the CLI's options; None = the preset's or the run's).

    Attributes
    ----------
    preset : str
        A key of :data:`PRESETS` (see :func:`choose_preset`).
    variant : str
        First-module variant: irn, irn+fbound, irn+fcam or flowirn (Table 4).
    supervision : str
        ``weak`` (tags only) or ``full`` (Mask R-CNN on the ground truth, the upper bound).
    weights : str or None
        Where the classifier and Mask R-CNN start: None (each backbone's default: ``imagenet`` for
        efficientnet_lite0, ``none`` for a ResNet), ``imagenet``, ``none`` (random init) or a local
        ImageNet state dict of the preset's backbone (made absolute).
    working_size : int or None
        Short side, in pixels, small frames are seen at (METHOD.md §9); None: the preset's.
    motion_split : float
        flowIRN, experimental: same-class pixel pairs whose flow differs by this much (in units of
        the frame's 95th-percentile motion) are trained as two instances
        (:func:`training.irn.losses.motion_split`); 0: off, as the paper (no reliable gain measured).
    instance_bg, instance_norm, instance_split : float or None, str or None, float or None
        The instance argmax's background score and normalisation, and the normalized-cut split of
        touching instances (0: off); None: recorded, else from the classifier.
    seed : int
        Seeds every stage (initial weights, batch order, augmentation).
    device : str
        auto, cpu, cuda or cuda:N.
    frames : Path or None
        Frames folder (default: ``JPEGImages/`` beside the tags).
    gt : Path or None
        YouTube-VIS ground truth of the videos: the results are scored against it (``eval.json``);
        needed for ``full`` supervision.
    until : {"predictions", "pseudo-labels"}
        The last stage: every stage up to the predictions (``RUN/results.json``), or
        only the first module, up to the pseudo-labels (``RUN/pseudo``), with weak supervision.
    """

    preset: str
    variant: str = "flowirn"
    supervision: str = "weak"
    weights: str | None = None
    working_size: int | None = None
    motion_split: float = 0.0
    instance_bg: float | None = None
    instance_norm: str | None = None
    instance_split: float | None = None
    seed: int = 0
    device: str = "auto"
    frames: Path | None = None
    gt: Path | None = None
    until: str = "predictions"


UNTIL = ("predictions", "pseudo-labels")
"""Where ``vis-ws pipeline --until`` may stop (:attr:`PipelineSettings.until`)."""


def choose_preset(preset: str | None, device: str) -> tuple[str, str]:
    """The preset to run and why: the one asked for, else ``cpu`` without a GPU and ``default`` with one.

    Parameters
    ----------
    preset : str or None, ``--preset``
    device : str, ``--device`` (auto, cpu, cuda, cuda:N)

    Returns
    -------
    (name, reason) : the preset and a line saying how it was chosen
    """
    if preset is not None:
        return preset, f"preset {preset}"
    from training.device import resolve_device

    gpu = resolve_device(device).type == "cuda"
    name = "default" if gpu else "cpu"
    return name, f"preset {name} (no --preset: {'a GPU' if gpu else 'no GPU'} here)"


def working_size(settings: PipelineSettings) -> int:
    """The settings' working size, else the preset's (METHOD.md §9; 360 px unless the preset says otherwise)."""
    from training.working_scale import WORKING_SIZE

    if settings.working_size is not None:
        return int(settings.working_size)
    return int(PRESETS[settings.preset].get("working_size", WORKING_SIZE))


def detector_weights(settings: PipelineSettings, run: PathLike, cam_arch: str) -> str:
    """Where step 1's backbone starts: the settings' weights, else ImageNet where it installs with the project
    (Lite0), else the run's classifier when it is the detector's backbone, else random init ("")."""
    from training.backbones import IMAGENET, default_weights

    backbone = PRESETS[settings.preset]["detector"]["backbone"]
    if settings.weights is not None:
        return settings.weights
    if default_weights(backbone) == IMAGENET:
        return IMAGENET
    if backbone == cam_arch:
        return str(run_folder.checkpoint(Project(run).cam).resolve())
    return ""


def videos(
    tags: PathLike, frames: PathLike | None = None, video_ids: list[int] | None = None, share: bool = True
) -> list[VideoSource]:
    """The videos of ``tags`` (or only ``video_ids``); with ``share``, this process's share of them under torchrun.

    Raises
    ------
    InputError
        ``video_ids`` names a video that ``tags`` does not hold.
    """
    from training.data.sources import iter_videos
    from training.distributed import rank_world, shard

    sources = list(iter_videos(tags, frames, video_ids))
    missing = sorted(set(video_ids or ()) - {int(s.video["id"]) for s in sources})
    if missing:
        raise InputError(tags, f"no video with id {', '.join(map(str, missing))}")
    rank, world = rank_world()
    return shard(sources, rank, world) if share else sources


def flow_stage(
    tags: PathLike,
    run: PathLike,
    video_ids: list[int] | None = None,
    method: str = "dis",
    frames: PathLike | None = None,
) -> Iterator[Any]:
    """Optical flow (METHOD.md §1) of the videos into ``RUN/flow``; videos already there are skipped."""
    from training.flow.video import compute_video_flow

    out = Project(run).flow
    for source in videos(tags, frames, video_ids):
        yield from compute_video_flow(source, out, method)


def cams_stage(
    tags: PathLike,
    run: PathLike,
    video_ids: list[int] | None = None,
    frames: PathLike | None = None,
    device: str = "auto",
    fcams: bool = True,
) -> Iterator[Any]:
    """CAMs (and, with ``fcams``, f-CAMs from ``RUN/flow``) of the videos into ``RUN/cams``, by ``RUN/cam``.

    Raises
    ------
    InputError
        No trained classifier in the run; with ``fcams``, a video without its flow.
    """
    from training.cam.store import write_cams

    project = Project(run)
    sources = videos(tags, frames, video_ids)
    _check_inputs("cams", run, sources, fcams)
    ids = [int(s.video["id"]) for s in sources]
    flow = project.flow if fcams else None
    yield from write_cams(tags, project.cam, project.cams, flow, frames=frames, device=device, video_ids=ids)


def pseudo_labels_stage(
    tags: PathLike,
    run: PathLike,
    video_ids: list[int] | None = None,
    frames: PathLike | None = None,
    device: str = "auto",
    instance_bg: float | None = None,
    instance_norm: str | None = None,
    instance_split: float | None = None,
) -> Iterator[Any]:
    """flowIRN pseudo-labels (METHOD.md §6) of the videos into ``RUN/pseudo``, by ``RUN/irn``.

    The f-CAMs are used when the IRN run's variant trained on them. An instance
    setting left None is the one the run's pseudo-labels were made with
    (:func:`~training.irn.pseudo_labels.recorded_settings`), else the default for
    the run's classifier; a value given redoes the videos made with another.

    Raises
    ------
    InputError
        No trained IRN in the run; a video without its CAMs.
    """
    from training.irn.pseudo_labels import make_pseudo_labels, recorded_settings
    from training.irn.train import IRNTrainConfig
    from training.json_io import read_json

    project = Project(run)
    _check_inputs("pseudo-labels", run, videos(tags, frames, video_ids, share=False))  # shared out by the maker
    config = read_json(run_folder.config(project.irn))
    variant = config.get("variant", "flowirn") if isinstance(config, dict) else "flowirn"
    recorded = recorded_settings(project.pseudo)
    bg = recorded.get("instance_bg") if instance_bg is None else instance_bg
    norm = recorded.get("instance_norm") if instance_norm is None else instance_norm
    split = recorded.get("instance_split") if instance_split is None else instance_split
    yield from make_pseudo_labels(
        tags,
        project.irn,
        project.cams,
        project.pseudo,
        use_fcams=IRNTrainConfig(variant=variant).uses_fcams,
        frames=frames,
        device=device,
        video_ids=video_ids,
        bg_threshold=bg,
        instance_norm=norm,
        instance_split=split,
    )


VIDEO_STAGES: dict[str, Callable[..., Iterator[Any]]] = {
    "flow": flow_stage,
    "cams": cams_stage,
    "pseudo-labels": pseudo_labels_stage,
}
"""The stages that work video by video, each ``stage(tags, run, video_ids, ...)``: the Pipeline dock's buttons."""


def first_module_stages(
    tags: PathLike,
    run: PathLike,
    cam: CAMTrainConfig,
    irn: IRNTrainConfig,
    flow_method: str = "dis",
    frames: PathLike | None = None,
    device: str = "auto",
    instance_bg: float | None = None,
    instance_norm: str | None = None,
    instance_split: float | None = None,
) -> list[Stage]:
    """The paper's first module (``vis-ws pseudo-labels``): flow, classifier, CAMs, IRN, pseudo-labels.

    Layout of ``run``: flow/, cam/, cams/, irn/, pseudo/ (the plugin's project
    layout). Flow is computed only when the IRN variant uses it. Under torchrun the
    per-video stages share the videos out among the ranks and the training
    stages train with DDP.
    """
    from training.cam.train import train_cam
    from training.irn.train import train_irn

    project = Project(run)
    uses_flow = irn.uses_flow_loss or irn.uses_fcams
    flow = project.flow if uses_flow else None
    stages = [Stage("flow", lambda: flow_stage(tags, run, method=flow_method, frames=frames))] if uses_flow else []
    return stages + [
        Stage("train-cam", lambda: train_cam(cam, tags, project.cam, frames=frames, resume=True)),
        Stage("cams", lambda: cams_stage(tags, run, frames=frames, device=device, fcams=uses_flow)),
        Stage(
            "train-irn", lambda: train_irn(irn, tags, project.cam, project.cams, project.irn, flow, frames, resume=True)
        ),
        Stage(
            "pseudo-labels",
            lambda: pseudo_labels_stage(
                tags,
                run,
                frames=frames,
                device=device,
                instance_bg=instance_bg,
                instance_norm=instance_norm,
                instance_split=instance_split,
            ),
        ),
    ]


def pipeline_stages(tags: PathLike, run: PathLike, settings: PipelineSettings) -> list[Stage]:
    """Every stage of ``vis-ws pipeline``: the first module, Mask R-CNN, MaskConsist, predictions.

    MaskConsist (step 2) runs unless the preset's ``maskconsist`` is None (``cpu``:
    a longer step 1 instead); predictions come from the last detector trained.

    With ``full`` supervision: flow, Mask R-CNN on ``settings.gt``, predictions (the upper bound).
    The last stage writes ``RUN/results.json``; with ``until="pseudo-labels"`` the list ends
    with the first module's pseudo-labels.
    """
    from training.cam.train import CAMTrainConfig
    from training.detection.predict import predict
    from training.detection.train import DetectionTrainConfig, train_detector
    from training.irn.train import IRNTrainConfig

    preset = PRESETS[settings.preset]
    common: dict[str, Any] = {"seed": settings.seed, "device": settings.device}
    size = working_size(settings)
    project = Project(run)
    frames, flow = settings.frames, project.flow
    stages: list[Stage] = []
    if settings.supervision == "weak":
        cam = CAMTrainConfig(**preset["cam"], **common, weights=settings.weights, working_size=size)
        irn = IRNTrainConfig(
            variant=settings.variant, **preset["irn"], **common, working_size=size, motion_split=settings.motion_split
        )
        stages += first_module_stages(
            tags,
            run,
            cam,
            irn,
            frames=frames,
            device=settings.device,
            instance_bg=settings.instance_bg,
            instance_norm=settings.instance_norm,
            instance_split=settings.instance_split,
        )
        if settings.until == "pseudo-labels":
            return stages
        if not (irn.uses_flow_loss or irn.uses_fcams):  # MaskConsist warps along the flow
            stages.insert(0, Stage("flow", lambda: flow_stage(tags, run, frames=frames)))
        weights = detector_weights(settings, run, cam.arch)
        step1 = DetectionTrainConfig(step=1, **preset["detector"], **common, weights=weights)
        pseudo = project.pseudo
        train_step1 = partial(train_detector, step1, tags, pseudo, project.maskrcnn, flow, resume=True)
        stages.append(Stage("train (Mask R-CNN)", train_step1))
        model = project.maskrcnn
        maskconsist = preset.get("maskconsist", {})  # None: the preset stops at step 1
        if maskconsist is not None:
            step2 = DetectionTrainConfig(step=2, **{**preset["detector"], **maskconsist}, **common)
            stages.append(
                Stage(
                    "train (MaskConsist)",
                    lambda: train_detector(
                        step2, tags, pseudo, project.maskconsist, flow, init=project.maskrcnn, resume=True
                    ),
                )
            )
            model = project.maskconsist
    else:
        full = DetectionTrainConfig(
            step=1, supervision="full", **preset["detector"], **common, weights=detector_weights(settings, run, "")
        )
        stages += [
            Stage("flow", lambda: flow_stage(tags, run, frames=frames)),
            Stage(
                "train (fully supervised)",
                lambda: train_detector(full, tags, None, project.full, flow, None, True, settings.gt),
            ),
        ]
        model = project.full
    stages.append(Stage("predict", lambda: predict(tags, model, project.results, flow, settings.device, frames=frames)))
    return stages


ANNOUNCE = "==> "
"""Start of the lines :func:`drive_stages` prints: ``==> stages: flow, train-cam, ...``, then ``==> flow`` as each
starts (the plugin's Training dock draws a progress bar per stage from them)."""
PLAN = "stages: "


def drive_stages(stages: list[Stage], json_lines: bool) -> None:
    """Run each stage in turn, announcing the list (``==> stages: a, b``) and each (``==> a``); under torchrun on
    every rank, then a barrier.

    Ctrl+C stops between two steps of a stage (a training stage saves its checkpoint first).
    """
    from training import distributed

    if distributed.is_main():
        print(ANNOUNCE + PLAN + ", ".join(name for name, _ in stages), flush=True)
    for name, start in stages:
        if distributed.is_main():
            print(ANNOUNCE + name, flush=True)
        distributed.drive_ranks(start(), json_lines)
        distributed.barrier()  # the next stage reads what every rank wrote
