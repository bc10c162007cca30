"""IRN subcommands: ``train-irn`` (IRN / flowIRN) and ``pseudo-labels`` (the whole first module)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training import run_folder
from training.run_folder import Project


def _add_irn_options(p: argparse.ArgumentParser) -> None:
    """IRN's options; their defaults are :class:`~training.irn.train.IRNTrainConfig`'s (its single source)."""
    from training.cli.fields import add_field
    from training.irn.train import BACKBONES, VARIANTS, IRNTrainConfig

    d = IRNTrainConfig()
    add_field(p, d, "variant", choices=VARIANTS)
    add_field(p, d, "backbone", prefix="irn-", choices=BACKBONES)
    for field in ("epochs", "batch_size", "crop", "lr", "radius"):
        add_field(p, d, field, prefix="irn-", what="IRN")
    add_field(p, d, "crf")
    add_field(p, d, "motion_split", metavar="T")
    add_field(p, d, "working_size", metavar="PX")
    add_field(p, d, "seed")
    add_field(p, d, "device")
    p.add_argument("--frames", type=Path, default=None, help="frames folder (default: JPEGImages/ beside TAGS)")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")


def add_instance_arguments(p: argparse.ArgumentParser) -> None:
    """``--instance-bg``, ``--instance-norm`` and ``--instance-split``: how the instances are told apart."""
    from training.irn.inference import INSTANCE_BG, INSTANCE_NORMS
    from training.irn.pseudo_labels import FROZEN_CLASSIFIER_BG, FROZEN_CLASSIFIER_NORM, FROZEN_CLASSIFIER_SPLIT

    p.add_argument(
        "--instance-bg",
        type=float,
        default=None,
        help="background score of the instance argmax (IRN's ins_seg_bg_thres); higher: tighter masks, fewer "
        "instances; default: the value the run's pseudo-labels were made with, else "
        f"{FROZEN_CLASSIFIER_BG} for a frozen classifier (the default), else IRN's {INSTANCE_BG}",
    )
    p.add_argument(
        "--instance-norm",
        choices=INSTANCE_NORMS,
        default=None,
        help="what the propagated scores are divided by before that comparison: the frame's maximum (frame, IRN) "
        "or each tagged class's (class: every tagged class keeps its strongest instance); default: the one the run's "
        f"pseudo-labels were made with, else {FROZEN_CLASSIFIER_NORM} for a frozen classifier, else frame",
    )
    p.add_argument(
        "--instance-split",
        type=float,
        default=None,
        metavar="NCUT",
        help="split a pseudo-label in two touching instances where its best normalized cut over IRN's affinities "
        "is below NCUT (IRN's displacement field gives touching objects of one class one centroid); 0: off (IRN); "
        "default: the value the run's pseudo-labels were made with, else "
        f"{FROZEN_CLASSIFIER_SPLIT} for a frozen classifier, else 0",
    )


def check_instance_arguments(args: argparse.Namespace) -> None:
    """Refuse the values of :func:`add_instance_arguments` out of range before anything is written."""
    from training.irn.pseudo_labels import check_instance_bg, check_instance_split

    if args.instance_bg is not None:
        check_instance_bg(args.instance_bg)
    if args.instance_split is not None:
        check_instance_split(args.instance_split)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-irn`` and ``pseudo-labels`` to ``vis-ws``."""
    from training.backbones import ARCHS
    from training.cam.train import CAMTrainConfig
    from training.cli import formatter
    from training.cli.fields import add_field
    from training.cli.relaunch import add_nproc_argument

    p = sub.add_parser(
        "train-irn",
        help="train IRN / flowIRN (class boundaries + displacement) on relation labels from (f-)CAMs",
        description="Train IRN's boundary and displacement branches on a frozen ImageNet backbone of their own "
        "(--irn-backbone; as IRN, not the classifier), from inter-pixel "
        "relation labels of the stored CAMs (f-CAMs for irn+fcam and flowirn) with IRN's losses, plus the "
        "flow-boundary loss for irn+fbound and flowirn. RUN gets config.json, categories.json, checkpoint.pt.",
        formatter_class=formatter,
    )
    p.add_argument("tags", type=Path, help="frame-tags JSON")
    p.add_argument(
        "--cam-model",
        required=True,
        type=Path,
        help="train-cam run folder (its categories; the backbone with --irn-backbone classifier)",
    )
    p.add_argument("--cams", required=True, type=Path, help="'vis-ws cams' output folder")
    p.add_argument("--flow", type=Path, default=None, help="'vis-ws flow' output (needed for the f-Bound loss)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    _add_irn_options(p)
    add_nproc_argument(p, "data-parallel training, DDP")
    p.set_defaults(func=run_train_irn)

    p = sub.add_parser(
        "pseudo-labels",
        help="frame tags → instance pseudo-labels: flow, classifier, CAMs, flowIRN, pseudo-labels (resumable)",
        description="Run the paper's first module end to end on a frame-tags file: optical flow, the CAM "
        "classifier, CAMs and f-CAMs, IRN/flowIRN, and per-frame instance pseudo-labels. Stages already "
        "finished in RUN are skipped. RUN/pseudo/pseudo_labels.json is YouTube-VIS results, "
        "RUN/pseudo/<video>/pseudo.npz a label volume per video.",
        formatter_class=formatter,
    )
    p.add_argument("tags", type=Path, help="frame-tags JSON")
    p.add_argument("--out", required=True, type=Path, help="run folder (flow/, cam/, cams/, irn/, pseudo/)")
    p.add_argument("--flow-method", choices=("dis", "farneback", "tvl1"), default="dis", help="optical flow method")
    cam = CAMTrainConfig()  # the classifier's defaults: those of `vis-ws train-cam`
    add_field(p, cam, "arch", choices=ARCHS)
    add_field(p, cam, "weights", default=None, metavar="imagenet|none|FILE")
    for field in ("epochs", "batch_size", "crop"):
        add_field(p, cam, field, prefix="cam-", what="classifier")
    add_instance_arguments(p)
    _add_irn_options(p)
    add_nproc_argument(p, "flow, CAMs and pseudo-labels sharded by video, DDP training")
    p.set_defaults(func=run_pseudo_labels)


IRN_OPTIONS = {
    "variant": "variant",
    "backbone": "irn_backbone",
    "epochs": "irn_epochs",
    "batch_size": "irn_batch_size",
    "crop": "irn_crop",
    "lr": "irn_lr",
    "radius": "irn_radius",
    "crf": "crf",
    "seed": "seed",
    "device": "device",
    "working_size": "working_size",
    "motion_split": "motion_split",
}
"""IRNTrainConfig field → option of ``train-irn`` and ``pseudo-labels`` (``--irn-crop`` sets ``crop``)."""

CAM_OPTIONS = {
    "arch": "arch",
    "weights": "weights",
    "epochs": "cam_epochs",
    "batch_size": "cam_batch_size",
    "crop": "cam_crop",
    "seed": "seed",
    "device": "device",
    "working_size": "working_size",
}
"""CAMTrainConfig field → option of ``pseudo-labels`` (``--cam-crop`` sets ``crop``)."""


def _irn_config(args: argparse.Namespace) -> Any:
    from training.cli import config_from_options
    from training.irn.train import IRNTrainConfig

    return config_from_options(IRNTrainConfig, args, IRN_OPTIONS)


def run_train_irn(args: argparse.Namespace) -> int:
    """``vis-ws train-irn``; ``--nproc N`` (N > 1) re-runs it under torchrun, which this also runs under."""
    from training import distributed
    from training.cli.relaunch import run_command
    from training.irn.train import train_irn

    config = _irn_config(args)  # options checked once, before any process is started

    def body() -> int:
        events = train_irn(config, args.tags, args.cam_model, args.cams, args.out, args.flow, args.frames, args.resume)
        distributed.drive_ranks(events, args.progress == "json")  # Ctrl+C stops between steps, checkpoint saved
        if distributed.is_main():
            print(f"wrote {run_folder.checkpoint(args.out)}")
        return 0

    return run_command(args, config.device, body)


def run_pseudo_labels(args: argparse.Namespace) -> int:
    """``vis-ws pseudo-labels``: every stage of the first module, resuming what is done; ``--nproc`` as train-cam."""
    from training import distributed
    from training.cam.train import CAMTrainConfig
    from training.cli import config_from_options
    from training.cli.relaunch import run_command
    from training.data.tags import load_tags
    from training.pipeline import drive_stages, first_module_stages

    load_tags(args.tags)  # bad tags fail before anything is written
    check_instance_arguments(args)
    cam = config_from_options(CAMTrainConfig, args, CAM_OPTIONS)
    irn = _irn_config(args)

    def body() -> int:
        bg, norm, split = args.instance_bg, args.instance_norm, args.instance_split
        stages = first_module_stages(
            args.tags, args.out, cam, irn, args.flow_method, args.frames, args.device, bg, norm, split
        )
        drive_stages(stages, args.progress == "json")
        if distributed.is_main():
            labels = Project(args.out).pseudo / "pseudo_labels.json"
            print(f"wrote {labels} (YouTube-VIS results) and per-video label volumes")
        return 0

    return run_command(args, args.device, body)
