"""Detector subcommands: ``train`` (Mask R-CNN step 1 / MaskConsist step 2) and ``predict`` (YouTube-VIS results)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from training import run_folder

if TYPE_CHECKING:
    from training.detection.train import DetectionTrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``predict`` to ``vis-ws``."""
    _add_train(sub)
    _add_predict(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from training.cli import formatter
    from training.cli.fields import add_field
    from training.cli.relaunch import add_nproc_argument
    from training.detection.model import BACKBONES
    from training.detection.train import DetectionTrainConfig

    d = DetectionTrainConfig()  # the one source of every default below
    p = sub.add_parser(
        "train",
        help="train Mask R-CNN on pseudo-labels (--step 1) or with MaskConsist (--step 2)",
        description="Step 1 trains Mask R-CNN on the flowIRN pseudo-labels of every frame (or on ground truth "
        "with --supervision full). Step 2 (MaskConsist) starts from a step-1 run (--init) and trains each frame "
        "of a pair (t, t+δ) on targets made from the model's predictions on both frames, the pseudo-labels "
        "and the flow (both orders of every pair). "
        "RUN gets config.json, categories.json, checkpoint.pt and, in step 2, matches/<video>.json.",
        formatter_class=formatter,
    )
    p.add_argument("tags", type=Path, help="frame-tags JSON (or YouTube-VIS dataset) of the training videos")
    p.add_argument("--pseudo", type=Path, default=None, help="RUN/pseudo of 'vis-ws pseudo-labels' (weak supervision)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument("--flow", type=Path, default=None, help="'vis-ws flow' output (needed by --step 2)")
    add_field(p, d, "backbone", choices=BACKBONES)
    add_field(p, d, "weights", default=None, metavar="imagenet|none|FILE")
    add_field(p, d, "step", choices=(1, 2))
    p.add_argument("--init", type=Path, default=None, help="step-1 run folder to start step 2 from")
    for field in ("epochs", "iterations", "batch_size", "lr", "warmup", "min_size", "max_size", "proposals", "rois"):
        add_field(p, d, field)
    _add_maskconsist_options(p, d)
    add_field(p, d, "supervision", choices=("weak", "full"))
    p.add_argument("--gt", type=Path, default=None, help="ground-truth YouTube-VIS JSON for --supervision full")
    add_field(p, d, "seed")
    add_field(p, d, "device")
    p.add_argument("--frames", type=Path, default=None, help="frames folder (default: JPEGImages/ beside TAGS)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")
    add_nproc_argument(p, "data-parallel training, DDP")
    p.set_defaults(func=run_train)


def _add_maskconsist_options(p: argparse.ArgumentParser, d: DetectionTrainConfig) -> None:
    """``train``'s step-2 options: the frame pairs, the matching and IoM-NMS (defaults from ``d``)."""
    from training.cli.fields import add_field
    from training.maskconsist.matching import IOM_RANKS

    add_field(p, d, "delta_max")
    add_field(p, d, "score_threshold")
    for switch in ("intra", "inter", "iom"):
        add_field(p, d, switch, flag=f"--no-{switch}")
    add_field(p, d, "iom_rank", choices=IOM_RANKS)
    add_field(p, d, "maskcon_first", action="store_true")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    from training.cli import formatter
    from training.cli.relaunch import add_nproc_argument
    from training.link import PREDICTION_IOU, PREDICTION_SAME_CLASS, PREDICTION_TUBE_SCORE, TUBE_SCORES

    p = sub.add_parser(
        "predict",
        help="run a trained detector on videos: YouTube-VIS results (tubes linked with flow)",
        description="Predict instance masks in every frame (IoM-NMS per frame), link them into tubes across "
        "frames (same class, flow-warped mask IoU, Hungarian; tube score = mean frame score) and write "
        "YouTube-VIS results, scored by 'vis-ws eval'.",
        formatter_class=formatter,
    )
    p.add_argument("input", type=Path, help="dataset JSON, folder of frames or video file")
    p.add_argument("--model", required=True, type=Path, help="'vis-ws train' or 'vis-ws pipeline' run folder")
    p.add_argument("--out", required=True, type=Path, help="results JSON to write")
    p.add_argument("--flow", type=Path, default=None, help="'vis-ws flow' output of INPUT (flow-warped linking)")
    p.add_argument("--score-threshold", type=float, default=0.05, help="drop detections below this score")
    p.add_argument("--iom-threshold", type=float, default=0.5, help="IoM-NMS threshold per frame")
    link_help = "least flow-warped mask IoU that continues a tube, in (0, 1]"
    p.add_argument("--link-iou", type=float, default=PREDICTION_IOU, help=link_help)
    p.add_argument(
        "--link-classes",
        choices=("any", "same"),
        default="same" if PREDICTION_SAME_CLASS else "any",
        help="link detections of any class (a tube takes the class of its larger summed score) or only of one",
    )
    p.add_argument(
        "--tube-score",
        choices=TUBE_SCORES,
        default=PREDICTION_TUBE_SCORE,
        help="a tube's score: the mean of its detections' scores, or their sum over the video's length (video: "
        "ranks tubes seen in few frames lower, but is no longer a confidence)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--frames", type=Path, default=None, help="frames folder of a dataset JSON")
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")
    add_nproc_argument(p, "videos sharded over the processes")
    p.set_defaults(func=run_predict)


def _weights_argument(value: str | None) -> str:
    """``--weights`` as the config stores it: "" (the backbone's default), imagenet, none, or an absolute path."""
    if value is None or value in ("imagenet", "none"):
        return value or ""
    return str(Path(value).resolve())


def run_train(args: argparse.Namespace) -> int:
    """``vis-ws train``; ``--nproc N`` (N > 1) re-runs it under torchrun, which this also runs under."""
    from training import distributed
    from training.cli.relaunch import run_command
    from training.detection.train import DetectionTrainConfig, train_detector

    config = DetectionTrainConfig(
        backbone=args.backbone,
        weights=_weights_argument(args.weights),
        step=args.step,
        supervision=args.supervision,
        epochs=args.epochs,
        iterations=args.iterations,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        min_size=args.min_size,
        max_size=args.max_size,
        proposals=args.proposals,
        rois=args.rois,
        intra=not args.no_intra,
        inter=not args.no_inter,
        iom=not args.no_iom,
        iom_rank=args.iom_rank,
        maskcon_first=args.maskcon_first,
        delta_max=args.delta_max,
        score_threshold=args.score_threshold,
        seed=args.seed,
        device=args.device,
    )  # options checked once, before any process is started

    def body() -> int:
        events = train_detector(
            config, args.tags, args.pseudo, args.out, args.flow, args.init, args.resume, args.gt, args.frames
        )
        distributed.drive_ranks(events, args.progress == "json")  # Ctrl+C stops between steps, checkpoint saved
        if distributed.is_main():
            print(f"wrote {run_folder.checkpoint(args.out)}")
        return 0

    return run_command(args, config.device, body)


def run_predict(args: argparse.Namespace) -> int:
    """``vis-ws predict``; with ``--nproc N`` each process predicts every N-th video, rank 0 writes the results."""
    from training import distributed
    from training.cli.relaunch import run_command
    from training.detection.predict import predict
    from training.errors import InputError

    if not 0.0 < args.link_iou <= 1.0:
        raise InputError(None, f"predict: --link-iou must lie in (0, 1], got {args.link_iou}")

    def body() -> int:
        events = predict(
            args.input,
            args.model,
            args.out,
            args.flow,
            args.device,
            args.score_threshold,
            args.iom_threshold,
            args.link_iou,
            frames=args.frames,
            same_class=args.link_classes == "same",
            tube_score=args.tube_score,
        )
        distributed.drive_ranks(events, args.progress == "json")
        if distributed.is_main():
            print(f"wrote {args.out}")
        return 0

    return run_command(args, args.device, body)
