"""CAM subcommands: ``train-cam`` (classifier on frame tags) and ``cams`` (per-frame CAMs and f-CAMs)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-cam`` and ``cams`` to ``vis-ws``."""
    _add_train_cam(sub)
    _add_cams(sub)


def _add_train_cam(sub: argparse._SubParsersAction) -> None:
    from training.backbones import ARCHS
    from training.cam.network import FREEZE
    from training.cam.train import CAMTrainConfig
    from training.cli import formatter
    from training.cli.fields import add_field
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
    add_field(p, d, "arch", choices=ARCHS)
    for field in ("epochs", "batch_size", "crop", "lr", "seed", "device"):
        add_field(p, d, field)
    add_field(p, d, "amp", flag="--no-amp")
    add_field(p, d, "weights", default=None, metavar="imagenet|none|FILE")  # None: the arch's default
    add_field(p, d, "freeze", choices=("auto", *FREEZE))
    add_field(p, d, "channel_shuffle")
    add_field(p, d, "pooling", choices=("gap", "lse"))
    add_field(p, d, "freeze_stem", action="store_true")
    add_field(p, d, "workers")
    add_field(p, d, "working_size", metavar="PX")
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
