"""``vis-ws pipeline``: frame tags → YouTube-VIS results, the whole weak pipeline in one resumable command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training import run_folder
from training.run_folder import Project

# Settings per preset. "tiny" runs a small synthetic set on a 2-core CPU in minutes (CI runs it);
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
        "detector": {"backbone": "efficientnet_lite0", "epochs": 2, "batch_size": 2, "min_size": 160,
                     "max_size": 240, "proposals": 300, "rois": 128},  # fmt: skip
        # step 2 trains on frame pairs (t, t+δ), δ ≤ 5: 2 epochs of them were 2,160 iterations here
        "maskconsist": {"iterations": 200},
    },
    "default": {
        "cam": {"arch": "resnet50", "epochs": 10, "batch_size": 8, "crop": 224},
        "irn": {"epochs": 3, "batch_size": 8, "crop": 256, "radius": 10},
        "detector": {"backbone": "resnet50", "epochs": 12, "batch_size": 2, "min_size": 480, "max_size": 800},
    },
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pipeline`` to ``vis-ws``."""
    from training.cli import formatter
    from training.cli.irn_commands import add_instance_arguments, add_motion_split_argument, add_working_size_argument

    p = sub.add_parser(
        "pipeline",
        help="the whole weak pipeline: tags → pseudo-labels → Mask R-CNN → MaskConsist → YouTube-VIS results",
        description="Run every stage in RUN, skipping or resuming what is done: flow, classifier, CAMs/f-CAMs, "
        "flowIRN, pseudo-labels (RUN/pseudo), Mask R-CNN on the pseudo-labels (RUN/maskrcnn), MaskConsist "
        "(RUN/maskconsist), predictions (RUN/results.json) and, with --gt, YouTube-VIS AP (RUN/eval.json). Each "
        "stage's config is saved beside its output. --supervision full trains Mask R-CNN on the ground truth "
        "instead (the upper bound). The paper starts every network from ImageNet: EfficientNet-Lite0's ImageNet "
        "weights install with the project and IRN always reads its own frozen ImageNet backbone; a preset's ResNet "
        "starts from ImageNet with --weights imagenet (torchvision's file in the torch hub cache) and otherwise from "
        "random weights, Mask R-CNN's ResNet then from the classifier trained on the tags.",
        formatter_class=formatter,
    )
    p.add_argument("tags", type=Path, help="frame-tags JSON (the weak labels); frames in JPEGImages/ beside it")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="model sizes and training lengths: tiny (a smoke test), cpu (ImageNet EfficientNet-Lite0, about 22 min "
        "for 300 frames of 120x160 on 2 cores, seen at 360x480), default (the paper's ResNet-50 GPU setup); "
        "default: cpu without a GPU, default with one",
    )
    p.add_argument("--variant", default="flowirn", help="first-module variant (irn, irn+fbound, irn+fcam, flowirn)")
    p.add_argument("--supervision", choices=("weak", "full"), default="weak", help="weak: tags only; full: GT masks")
    p.add_argument("--gt", type=Path, default=None, help="YouTube-VIS ground truth: scores the results (eval.json)")
    p.add_argument(
        "--weights",
        default=None,
        metavar="imagenet|none|FILE",
        help="where the classifier and Mask R-CNN start: imagenet, none (random init) or a local ImageNet state dict "
        "of the preset's backbone; default: imagenet for efficientnet_lite0, none for a ResNet",
    )
    add_working_size_argument(p, None)
    add_motion_split_argument(p)
    add_instance_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed of every stage")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--frames", type=Path, default=None, help="frames folder (default: JPEGImages/ beside TAGS)")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")
    p.set_defaults(func=run_pipeline)


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


def weights_argument(args: argparse.Namespace) -> str | None:
    """``--weights`` as the stages take it: None (each backbone's default), imagenet, none or an absolute path."""
    if args.weights in (None, "imagenet", "none"):
        return args.weights
    return str(Path(args.weights).resolve())


def detector_weights(args: argparse.Namespace, cam_arch: str) -> str:
    """Where step 1's backbone starts: --weights, else ImageNet where it installs with the project (Lite0),
    else the run's classifier when it is the detector's backbone, else random init ("")."""
    from training.backbones import IMAGENET, default_weights

    weights = weights_argument(args)
    backbone = PRESETS[args.preset]["detector"]["backbone"]
    if weights is not None:
        return weights
    if default_weights(backbone) == IMAGENET:
        return IMAGENET
    if backbone == cam_arch:
        return str(run_folder.checkpoint(Project(args.out).cam).resolve())
    return ""


def working_size(args: argparse.Namespace) -> int:
    """``--working-size``, else the preset's (METHOD.md §9; 360 px unless the preset says otherwise)."""
    from training.working_scale import WORKING_SIZE

    if args.working_size is not None:
        return int(args.working_size)
    return int(PRESETS[args.preset].get("working_size", WORKING_SIZE))


def pipeline_stages(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Every stage of ``vis-ws pipeline`` as (name, start) pairs."""
    from training.cam.train import CAMTrainConfig
    from training.cli.irn_commands import first_module_stages
    from training.detection.predict import predict
    from training.irn.train import IRNTrainConfig
    from training.maskconsist.train import DetectionTrainConfig, train_detector

    preset = PRESETS[args.preset]
    run, tags, common = args.out, args.tags, {"seed": args.seed, "device": args.device}
    weights = weights_argument(args)
    size = working_size(args)
    cam = CAMTrainConfig(**preset["cam"], **common, weights=weights, working_size=size)
    irn = IRNTrainConfig(
        variant=args.variant, **preset["irn"], **common, working_size=size, motion_split=args.motion_split
    )
    project = Project(run)
    flow = project.flow
    stages: list[tuple[str, Any]] = []
    if args.supervision == "weak":
        # None: from the classifier, as `pseudo-labels` (pseudo_labels.default_instance_bg / default_instance_norm)
        bg, norm = args.instance_bg, args.instance_norm
        stages += first_module_stages(
            tags, run, cam, irn, frames=args.frames, device=args.device, instance_bg=bg, instance_norm=norm
        )
        if not (irn.uses_flow_loss or irn.uses_fcams):
            from training.flow.video import compute_flow

            stages.insert(0, ("flow", lambda: compute_flow(tags, flow, frames=args.frames)))  # MaskConsist warps
        step1 = DetectionTrainConfig(step=1, **preset["detector"], **common, weights=detector_weights(args, cam.arch))
        step2 = DetectionTrainConfig(step=2, **{**preset["detector"], **preset.get("maskconsist", {})}, **common)
        pseudo = project.pseudo
        stages += [
            ("train (Mask R-CNN)", lambda: train_detector(step1, tags, pseudo, project.maskrcnn, flow, resume=True)),
            (
                "train (MaskConsist)",
                lambda: train_detector(
                    step2, tags, pseudo, project.maskconsist, flow, init=project.maskrcnn, resume=True
                ),
            ),
        ]
        model = project.maskconsist
    else:
        from training.flow.video import compute_flow

        full_weights = detector_weights(args, "")  # no classifier in this run
        full = DetectionTrainConfig(step=1, supervision="full", **preset["detector"], **common, weights=full_weights)
        stages += [
            ("flow", lambda: compute_flow(tags, flow, frames=args.frames)),
            (
                "train (fully supervised)",
                lambda: train_detector(full, tags, None, project.full, flow, None, True, args.gt),
            ),
        ]
        model = project.full
    stages.append(
        ("predict", lambda: predict(tags, model, project.results, flow, args.device, frames=args.frames))
    )
    return stages


def run_pipeline(args: argparse.Namespace) -> int:
    """``vis-ws pipeline``."""
    from training.atomic import write_json
    from training.cli.irn_commands import run_stages
    from training.data.tags import load_tags
    from training.data.ytvis import load_ytvis
    from training.errors import InputError
    from training.evaluation import evaluate_ytvis, format_table
    from training.irn.pseudo_labels import check_instance_bg

    load_tags(args.tags)  # bad input fails before anything is written
    args.preset, reason = choose_preset(args.preset, args.device)
    if args.instance_bg is not None:
        check_instance_bg(args.instance_bg)
    print(f"==> {reason}", flush=True)
    if args.weights not in (None, "imagenet", "none") and not Path(args.weights).is_file():
        raise InputError(args.weights, "no such weights file (--weights takes imagenet, none or a local state dict)")
    if args.weights == "imagenet":  # a missing ResNet file fails before anything is written
        from training.backbones import IMAGENET, weights_file

        for stage in ("cam", "detector"):
            weights_file(IMAGENET, PRESETS[args.preset][stage].get("arch") or PRESETS[args.preset][stage]["backbone"])
    gt = load_ytvis(args.gt) if args.gt is not None else None
    if args.supervision == "full" and gt is None:
        raise InputError(None, "--supervision full trains on ground-truth masks: give --gt GT.json")
    run_stages(pipeline_stages(args), args.progress == "json")
    results = Project(args.out).results
    print(f"wrote {results} (YouTube-VIS results)")
    if gt is not None:
        stats = evaluate_ytvis(gt, json.loads(results.read_text()), str(args.gt), str(results))
        write_json(Project(args.out).evaluation, stats, indent=1)
        print(format_table(stats))
    return 0
