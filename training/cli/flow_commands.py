"""Optical flow subcommands: ``flow`` and ``train-flow``."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the optical flow subcommands to ``vis-ws``."""
    from training.cli import formatter
    from training.cli.fields import add_field
    from training.flow.classical import METHODS
    from training.flow.config import PHOTOMETRIC, FlowTrainConfig

    p = sub.add_parser(
        "flow",
        help="compute optical flow (forward, backward, occlusion) for every video of INPUT",
        description="Write OUT/<video>.flow.npy, a (T-1, H, W, 5) float16 array per video: forward "
        "flow (dx, dy), backward flow (dx, dy) and the occlusion mask of the forward-backward check, "
        "plus OUT/<video>.flow.json recording method, frame size and parameters. Videos whose flow "
        "is already there with the same settings are skipped.",
        formatter_class=formatter,
    )
    p.add_argument("input", type=Path, help="dataset JSON, folder of frames or video file")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="dis",
        help="dis: OpenCV DIS (fast); farneback; tvl1: scikit-image TV-L1 (slow); raft: a RAFT-small model (--model)",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="CKPT",
        help="for --method raft: a train-flow run folder or checkpoint, or torchvision RAFT-small weights",
    )
    p.add_argument(
        "--frames", type=Path, default=None, help="frames folder of a dataset JSON (default: JPEGImages/ beside it)"
    )
    p.add_argument("--device", default="auto", help="for --method raft: auto, cpu, cuda or cuda:N")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress bar or JSON lines on stdout")
    p.set_defaults(func=run_flow)

    d = FlowTrainConfig()
    p = sub.add_parser(
        "train-flow",
        help="train a RAFT-small flow network on INPUT's videos without ground truth",
        description="Unsupervised training of torchvision RAFT-small (random init or --weights) on random "
        "crops of consecutive frame pairs: census photometric loss on non-occluded pixels plus "
        "edge-aware smoothness. Writes RUN/config.json and RUN/checkpoint.pt (every "
        "--checkpoint-every iterations and at the end); use the run with 'vis-ws flow --method raft "
        "--model RUN'.",
        formatter_class=formatter,
    )
    p.add_argument("input", type=Path, help="dataset JSON, folder of frames or video file")
    p.add_argument("--out", required=True, type=Path, metavar="RUN", help="run folder")
    add_field(p, d, "frames", type=Path)
    for field in ("iterations", "batch_size"):
        add_field(p, d, field)
    add_field(p, d, "crop", type=int, nargs=2, metavar=("H", "W"), default=list(d.crop))
    for field in ("lr", "flow_updates"):
        add_field(p, d, field)
    add_field(p, d, "photometric", choices=PHOTOMETRIC)
    for field in ("smoothness_weight", "checkpoint_every", "seed"):
        add_field(p, d, field)
    add_field(p, d, "weights", type=Path, metavar="PATH")
    add_field(p, d, "device")
    add_field(p, d, "amp", flag="--no-amp")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress bar or JSON lines on stdout")
    p.set_defaults(func=run_train_flow)


def model_path(path: Path) -> Path:
    """A ``--model`` value as a weights file: a run folder means its checkpoint."""
    from training.flow.config import CHECKPOINT_NAME

    return path / CHECKPOINT_NAME if path.is_dir() else path


def run_flow(args: argparse.Namespace) -> int:
    """``vis-ws flow``."""
    from training.data.sources import iter_videos
    from training.device import resolve_device
    from training.flow.video import compute_video_flow
    from training.progress import drive

    if args.method == "raft" and args.model is None:
        raise InputError(None, "--method raft needs --model (a train-flow run or RAFT-small weights)")
    if args.method != "raft" and args.model is not None:
        raise InputError(args.model, f"--model is only used with --method raft, not {args.method}")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "exists and is not a folder")
    model = None
    if args.method == "raft":
        from training.flow.raft import load_raft

        model = load_raft(model_path(args.model), resolve_device(args.device))
    wrote = skipped = 0
    for source in iter_videos(args.input, args.frames):
        last = drive(compute_video_flow(source, args.out, args.method, model), json_lines=args.progress == "json")
        if last is not None and last.metrics.get("skipped"):
            skipped += 1
        else:
            wrote += 1
        if args.progress != "json" and last is not None:
            print(last.message)
    if args.progress != "json":
        print(f"flow ({args.method}) of {wrote + skipped} videos in {args.out}: {wrote} computed, {skipped} skipped")
    return 0


def run_train_flow(args: argparse.Namespace) -> int:
    """``vis-ws train-flow``."""
    from training.flow.config import CHECKPOINT_NAME, FlowTrainConfig
    from training.flow.train import train_flow
    from training.progress import drive

    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "exists and is not a folder")
    config = FlowTrainConfig(
        # absolute paths: the run folder alone says what it was trained on
        input=str(args.input.resolve()),
        frames=None if args.frames is None else str(args.frames.resolve()),
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop=(args.crop[0], args.crop[1]),
        lr=args.lr,
        flow_updates=args.flow_updates,
        photometric=args.photometric,
        smoothness_weight=args.smoothness_weight,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        weights=None if args.weights is None else str(model_path(args.weights).resolve()),
        device=args.device,
        amp=not args.no_amp,
    )
    # a NaN loss raises TrainingStopped: `vis-ws` prints its one line and exits 1, the checkpoint is kept
    last = drive(train_flow(config, args.out, resume=args.resume), json_lines=args.progress == "json")
    if args.progress != "json" and last is not None:
        print(f"trained RAFT-small for {last.done} iterations; weights in {args.out / CHECKPOINT_NAME}")
    return 0
