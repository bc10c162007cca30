"""CAM subcommands: ``train-cam`` (classifier on frame tags) and ``cams`` (per-frame CAMs and f-CAMs)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

WEIGHTS_HELP = (
    "where the backbone starts: imagenet (Lite0: the weights installed with the project; a ResNet: torchvision's "
    "file in the torch hub cache, downloaded there when missing and a network answers), none (random init) or a "
    "local file (ImageNet state dict or vis-ws checkpoint); default: imagenet for efficientnet_lite0, none for a ResNet"
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-cam`` and ``cams`` to ``vis-ws``."""
    _add_train_cam(sub)
    _add_cams(sub)


def _add_train_cam(sub: argparse._SubParsersAction) -> None:
    from training.backbones import ARCHS
    from training.cam.network import FREEZE
    from training.cam.train import CAMTrainConfig
    from training.cli import formatter
    from training.cli.irn_commands import add_working_size_argument
    from training.cli.relaunch import add_nproc_argument

    d = CAMTrainConfig()
    p = sub.add_parser(
        "train-cam",
        help="train the CAM classifier (IRN's ResNet, output stride 16) on frame tags",
        description="Train IRN's CAM network on frame-level tags only (multi-label soft-margin loss, SGD with "
        "a poly schedule). RUN gets config.json, categories.json and checkpoint.pt, saved every epoch and on "
        "Ctrl+C; --resume continues to the same weights as an uninterrupted run.",
        formatter_class=formatter,
    )
    p.add_argument("tags", type=Path, help="frame-tags JSON ('vis-ws tags'); frames in JPEGImages/ beside it")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument(
        "--arch",
        choices=ARCHS,
        default=d.arch,
        help="backbone: EfficientNet-Lite0 (ImageNet weights installed with the project), ResNet-50 (IRN's) or -18",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the tagged frames")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="frames per iteration")
    p.add_argument("--crop", type=int, default=d.crop, help="side of the square training crop")
    p.add_argument(
        "--lr",
        type=float,
        default=d.lr,
        help="classifier learning rate at step 0 (the backbone gets a tenth), poly decay",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed of init, batch order and augmentation")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--weights", default=None, metavar="imagenet|none|FILE", help=WEIGHTS_HELP)
    p.add_argument(
        "--freeze",
        choices=("auto", *FREEZE),
        default=d.freeze,
        help="what of the backbone stays fixed: the whole backbone (only the 1x1 classifier trains), IRN's stem "
        "recipe or nothing; auto: backbone from imagenet weights, else none",
    )
    p.add_argument(
        "--channel-shuffle",
        type=float,
        default=d.channel_shuffle,
        help="probability of permuting a frame's RGB channels (stops a classifier from learning videos by colour)",
    )
    p.add_argument(
        "--pooling",
        choices=("gap", "lse"),
        default=d.pooling,
        help="class scores from the score maps: gap (IRN) or lse, log-sum-exp (localises better from random init)",
    )
    p.add_argument(
        "--freeze-stem",
        action="store_true",
        help="IRN's recipe for ImageNet weights (--freeze stem): the stem frozen, stages up to stride 8 detached, "
        "BatchNorm statistics fixed",
    )
    p.add_argument("--workers", type=int, default=d.workers, help="data loader processes")
    add_working_size_argument(p, d.working_size)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--frames", type=Path, default=None, help="frames folder (default: JPEGImages/ beside TAGS)")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")
    add_nproc_argument(p, "data-parallel training, DDP")
    p.set_defaults(func=run_train_cam)


def _add_cams(sub: argparse._SubParsersAction) -> None:
    from training.cam.fcam import AMPLIFICATION, THRESHOLD
    from training.cli import formatter

    p = sub.add_parser(
        "cams",
        help="write per-frame CAMs (and f-CAMs with --flow) of a tagged dataset",
        description="Multi-scale (1.0, 0.5, 1.5, 2.0) + flip CAMs of every frame for its tagged classes, "
        "max-normalised, at the stride-4 grid and at frame size; with --flow also f-CAMs (CAM x A where the flow "
        "moves more than T px against the camera). OUT/<video>/<frame>.npz, float16; frames already written "
        "by the same model and parameters are skipped.",
        formatter_class=formatter,
    )
    p.add_argument("input", type=Path, help="frame-tags JSON: each frame's tags choose its classes")
    p.add_argument("--model", required=True, type=Path, help="train-cam run folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--flow", type=Path, default=None, help="'vis-ws flow' output folder (adds f-CAMs)")
    p.add_argument("--amplification", type=float, default=AMPLIFICATION, help="f-CAM factor A on moving pixels")
    p.add_argument(
        "--threshold", type=float, default=THRESHOLD, help="f-CAM motion threshold T (px, camera motion removed)"
    )
    p.add_argument("--frames", type=Path, default=None, help="frames folder (default: JPEGImages/ beside INPUT)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")
    p.set_defaults(func=run_cams)


def run_train_cam(args: argparse.Namespace) -> int:
    """``vis-ws train-cam``; ``--nproc N`` (N > 1) re-runs it under torchrun, which this also runs under."""
    from training import distributed
    from training.cam.train import CHECKPOINT, CAMTrainConfig, train_cam
    from training.cli.relaunch import run_command

    config = CAMTrainConfig(
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        crop=args.crop,
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        weights=args.weights,
        freeze=args.freeze,
        freeze_stem=args.freeze_stem,
        channel_shuffle=args.channel_shuffle,
        pooling=args.pooling,
        workers=args.workers,
        working_size=args.working_size,
    )  # options checked once, before any process is started

    def body() -> int:
        events = train_cam(config, args.tags, args.out, frames=args.frames, resume=args.resume)
        distributed.drive_ranks(events, json_lines=args.progress == "json")
        if distributed.is_main():
            print(f"wrote {args.out / CHECKPOINT}")
        return 0

    return run_command(args, config.device, body)


def run_cams(args: argparse.Namespace) -> int:
    """``vis-ws cams``."""
    from training.cam.store import write_cams
    from training.errors import InputError
    from training.progress import drive

    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "exists and is not a folder")
    if not (math.isfinite(args.amplification) and args.amplification >= 1):
        raise InputError(None, f"--amplification must be a number >= 1, got {args.amplification}")
    if not (math.isfinite(args.threshold) and args.threshold >= 0):
        raise InputError(None, f"--threshold must be a number >= 0, got {args.threshold}")
    events = write_cams(
        args.input,
        args.model,
        args.out,
        flow_dir=args.flow,
        amplification=args.amplification,
        threshold=args.threshold,
        frames=args.frames,
        device=args.device,
    )
    last = drive(events, json_lines=args.progress == "json")
    n = last.total if last is not None else 0
    what = "CAMs and f-CAMs" if args.flow is not None else "CAMs"
    print(f"wrote {what} of {n} frames to {args.out}")
    return 0
