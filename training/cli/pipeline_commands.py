"""``vis-ws pipeline``: frame tags → YouTube-VIS results, the whole weak pipeline in one resumable command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.pipeline import PRESETS, UNTIL, PipelineSettings, choose_preset
from training.run_folder import Project


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pipeline`` to ``vis-ws``."""
    from training.cli import formatter
    from training.cli.fields import add_field
    from training.cli.irn_commands import add_instance_arguments
    from training.irn.train import VARIANTS

    p = sub.add_parser(
        "pipeline",
        help="the whole weak pipeline: tags → pseudo-labels → Mask R-CNN → MaskConsist → YouTube-VIS results",
        description="Run every stage in RUN, skipping or resuming what is done: flow, classifier, CAMs/f-CAMs, "
        "flowIRN, pseudo-labels (RUN/pseudo), Mask R-CNN on the pseudo-labels (RUN/maskrcnn), MaskConsist "
        "(RUN/maskconsist; not in the cpu preset, where a longer Mask R-CNN schedule measured better in the same "
        "time: add it with `vis-ws train --step 2 --init RUN/maskrcnn`), predictions (RUN/results.json) and, with "
        "--gt, YouTube-VIS AP (RUN/eval.json). Each "
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
        help="model sizes and training lengths: tiny (a smoke test), cpu (ImageNet EfficientNet-Lite0, about 17 min "
        "for 300 frames of 120x160 on 2 cores, seen at 360x480), default (the paper's ResNet-50 GPU setup); "
        "default: cpu without a GPU, default with one",
    )
    d = PipelineSettings(preset="")  # the defaults of every option below but --preset
    add_field(p, d, "variant", choices=VARIANTS)
    add_field(p, d, "supervision", choices=("weak", "full"))
    add_field(p, d, "gt", type=Path)
    add_field(p, d, "weights", metavar="imagenet|none|FILE")
    add_field(p, d, "working_size", type=int, metavar="PX")
    add_field(p, d, "motion_split", metavar="T")
    add_instance_arguments(p)
    add_field(p, d, "seed")
    add_field(p, d, "device")
    add_field(p, d, "frames", type=Path)
    add_field(p, d, "until", choices=UNTIL)
    p.add_argument("--progress", choices=("bar", "json"), default="bar", help="progress as a bar or JSON lines")
    p.set_defaults(func=run_pipeline)


def weights_argument(args: argparse.Namespace) -> str | None:
    """``--weights`` as the stages take it: None (each backbone's default), imagenet, none or an absolute path."""
    if args.weights in (None, "imagenet", "none"):
        return args.weights
    return str(Path(args.weights).resolve())


def settings_of(args: argparse.Namespace) -> PipelineSettings:
    """The options of ``vis-ws pipeline`` as :class:`~training.pipeline.PipelineSettings` (the preset chosen)."""
    return PipelineSettings(
        preset=args.preset,
        variant=args.variant,
        supervision=args.supervision,
        weights=weights_argument(args),
        working_size=args.working_size,
        motion_split=args.motion_split,
        instance_bg=args.instance_bg,
        instance_norm=args.instance_norm,
        instance_split=args.instance_split,
        seed=args.seed,
        device=args.device,
        frames=args.frames,
        gt=args.gt,
        until=args.until,
    )


def run_pipeline(args: argparse.Namespace) -> int:
    """``vis-ws pipeline``."""
    from training.atomic import write_json
    from training.cli.irn_commands import check_instance_arguments
    from training.data.tags import load_tags
    from training.data.ytvis import load_ytvis
    from training.errors import InputError
    from training.evaluation import evaluate_ytvis, format_table
    from training.pipeline import drive_stages, pipeline_stages

    load_tags(args.tags)  # bad input fails before anything is written
    args.preset, reason = choose_preset(args.preset, args.device)
    check_instance_arguments(args)
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
    if args.supervision == "full" and args.until != "predictions":
        raise InputError(None, "--until pseudo-labels is for weak supervision (full supervision makes none)")
    drive_stages(pipeline_stages(args.tags, args.out, settings_of(args)), args.progress == "json")
    if args.until == "pseudo-labels":
        print(f"wrote {Project(args.out).pseudo / 'pseudo_labels.json'} (the first module's pseudo-labels)")
        return 0
    results = Project(args.out).results
    print(f"wrote {results} (YouTube-VIS results)")
    if gt is not None:
        stats = evaluate_ytvis(gt, json.loads(results.read_text()), str(args.gt), str(results))
        write_json(Project(args.out).evaluation, stats, indent=1)
        print(format_table(stats))
    return 0
