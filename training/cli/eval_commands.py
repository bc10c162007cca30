"""``vis-ws eval``: YouTube-VIS video AP or frame-level COCO mask AP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` to ``vis-ws``."""
    from training.cli import formatter

    p = sub.add_parser(
        "eval",
        help="score results against a YouTube-VIS ground truth (video AP or frame AP)",
        description="Evaluate YouTube-VIS results: video AP as the official YouTube-VIS evaluator "
        "(tube IoU, 12 stats), or with --frame-level COCO mask AP with every frame as an image "
        "(pseudo-label quality).",
        formatter_class=formatter,
    )
    p.add_argument("--gt", required=True, type=Path, help="YouTube-VIS ground-truth JSON")
    p.add_argument("--results", required=True, type=Path, help="YouTube-VIS results JSON (a list)")
    p.add_argument("--frame-level", action="store_true", help="COCO mask AP over frames instead of video AP")
    p.add_argument("--json", action="store_true", help="print one JSON object with the 12 stats")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """``vis-ws eval``."""
    from training.data.ytvis import load_ytvis
    from training.evaluation import evaluate_frames, evaluate_ytvis, format_table
    from training.json_io import read_json

    gt = load_ytvis(args.gt)
    results = read_json(args.results)
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a results file saved in dataset form
    if not isinstance(results, list):
        raise InputError(args.results, "expected a JSON list of results (video_id, category_id, score, segmentations)")
    evaluate = evaluate_frames if args.frame_level else evaluate_ytvis
    stats = evaluate(gt, results, gt_path=str(args.gt), results_path=str(args.results))
    if args.json:
        print(json.dumps({k: float(v) for k, v in stats.items()}))
    else:
        level = "frame-level COCO mask AP" if args.frame_level else "YouTube-VIS video AP"
        print(f"{level}: {len(results)} results on {len(gt['videos'])} videos")
        print(format_table(stats))
    return 0
