"""Mask R-CNN / MaskConsist: speed on this CPU, and (for the lead) quality on the synthetic benchmark (METHOD.md §7-§8).

Speed (240x320 frames, random init, one synthetic video of 4 frames whose
ground truth stands in for the pseudo-labels): through ``train_detector``,
step-1 training iterations/s (batch 2) and step-2 MaskConsist iterations/s
(batch 2, δ = 1: two predictions + matching + one training pass per item)
per backbone, and ``predict_video`` frames/s (IoM-NMS included). The first
iteration is a warm-up and not counted.

Quality (long, not run by the tests): step 1 on RUN/pseudo (``vis-ws
pseudo-labels`` output of TAGS), step 2 from it, each switch set of the
paper's Table 5, ``vis-ws predict`` on GT's videos and the YouTube-VIS AP of
each run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_maskconsist.py --part speed [--iterations 3]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_maskconsist.py --part quality \
        --tags T.json --pseudo RUN/pseudo --flow RUN/flow --gt GT.json --work DIR
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from training.detection.model import BACKBONES, load_detector  # noqa: E402
from training.detection.predict import predict, predict_video  # noqa: E402
from training.maskconsist.train import DetectionTrainConfig, train_detector  # noqa: E402

SIZE = {"min_size": 240, "max_size": 320}
ABLATION = {  # paper Table 5 rows: (intra, inter, iom)
    "none": (False, False, False),
    "inter+iom": (False, True, True),
    "intra+iom": (True, False, True),
    "intra+inter": (True, True, False),
    "all": (True, True, True),
}


def _rate(events: Any) -> float:
    """Iterations/s of a training generator, the first iteration excluded."""
    stamps = [time.perf_counter() for e in events if "loss" in e.metrics]
    return (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)


def prepare_speed_set(work: Path) -> tuple[Path, Path, Path]:
    """One synthetic 240x320 video of 4 frames, its DIS flow and its ground truth as pseudo-labels."""
    from training.cli import main
    from training.data.sources import iter_videos
    from training.data.ytvis import gt_volume, load_ytvis
    from training.export import save_labels

    args = ["--videos", "1", "--frames", "4", "--height", "240", "--width", "320", "--seed", "0"]
    main(["sample", "--out", str(work / "data"), *args])
    tags = work / "data" / "tags.json"
    main(["flow", str(tags), "--out", str(work / "flow"), "--progress", "json"])
    gt = load_ytvis(work / "data" / "gt.json")
    for v in iter_videos(tags):
        save_labels(work / "pseudo" / v.key / "pseudo.npz", gt_volume(gt, v.video["id"]))
    return tags, work / "pseudo", work / "flow"


def speed(work: Path, iterations: int, backbones: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Step-1 it/s, step-2 it/s and prediction frames/s per backbone at 240x320 on the CPU."""
    tags, pseudo, flow = prepare_speed_set(work)
    frames = np.random.default_rng(0).integers(0, 256, (iterations + 1, 240, 320, 3), dtype=np.uint8)
    out: dict[str, dict[str, float]] = {}
    for backbone in backbones:
        common = {"backbone": backbone, "iterations": iterations + 1, "batch_size": 2, "device": "cpu", **SIZE}
        s1 = work / f"{backbone}-step1"
        step1 = _rate(train_detector(DetectionTrainConfig(**common), tags, pseudo, s1))
        cfg2 = DetectionTrainConfig(step=2, delta_max=1, score_threshold=0.5, **common)
        step2 = _rate(train_detector(cfg2, tags, pseudo, work / f"{backbone}-step2", flow, s1))
        model, category_ids, _ = load_detector(s1)
        predict_video(model, frames[:1], category_ids=category_ids)  # warm-up
        t0 = time.perf_counter()
        predict_video(model, frames[1:], category_ids=category_ids)
        fps = iterations / (time.perf_counter() - t0)
        out[backbone] = {"step-1 it/s (batch 2)": step1, "step-2 it/s (batch 2)": step2, "predict frames/s": fps}
        print(json.dumps({backbone: {k: round(v, 3) for k, v in out[backbone].items()}}), flush=True)
    return out


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """Step 1, then step 2 for every Table-5 switch set, each scored on GT (YouTube-VIS AP)."""
    from training.data.ytvis import load_ytvis
    from training.evaluation import evaluate_ytvis

    work: Path = args.work
    common = {"backbone": args.backbone, "epochs": args.epochs, "device": args.device, **SIZE}
    gt = load_ytvis(args.gt)
    report: dict[str, Any] = {}

    def score(run: Path, name: str) -> None:
        out = work / f"{name}.results.json"
        for _ in predict(args.gt, run, out, args.flow_gt, args.device):
            pass
        report[name] = evaluate_ytvis(gt, json.loads(out.read_text()))
        print(json.dumps({name: {k: round(v, 4) for k, v in report[name].items()}}), flush=True)

    s1 = work / "step1"
    for _ in train_detector(DetectionTrainConfig(**common), args.tags, args.pseudo, s1, resume=True):
        pass
    score(s1, "step 1")
    for name, (intra, inter, iom) in ABLATION.items():
        cfg = DetectionTrainConfig(step=2, intra=intra, inter=inter, iom=iom, **common)
        run = work / f"step2-{name}"
        for _ in train_detector(cfg, args.tags, args.pseudo, run, args.flow, s1, resume=run.exists()):
            pass
        score(run, f"step 2 {name}")
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("speed", "quality"), default="speed")
    p.add_argument("--iterations", type=int, default=3, help="speed: timed iterations / frames per backbone")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument("--tags", type=Path, help="quality: frame tags of the training videos")
    p.add_argument("--pseudo", type=Path, help="quality: RUN/pseudo of 'vis-ws pseudo-labels'")
    p.add_argument("--flow", type=Path, help="quality: flow of the training videos")
    p.add_argument("--gt", type=Path, help="quality: ground truth of the evaluation videos")
    p.add_argument("--flow-gt", type=Path, default=None, help="quality: flow of the evaluation videos")
    p.add_argument("--backbone", choices=BACKBONES, default="resnet50")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--device", default="auto")
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args()
    if args.part == "speed":
        with tempfile.TemporaryDirectory() as tmp:
            speed(Path(tmp), args.iterations, tuple(args.backbones))
    else:
        if None in (args.tags, args.pseudo, args.flow, args.gt, args.work):
            p.error("--part quality needs --tags, --pseudo, --flow, --gt and --work")
        quality(args)


if __name__ == "__main__":
    main()
