"""Classifier, CAMs and f-CAMs: speed on this CPU, quality on the synthetic benchmark (METHOD.md §2-§3).

Speed (240x320 frames): CAM inference frames/s with 4 scales + flip for
ResNet-18 and ResNet-50, and training iterations/s (batch 8, crop 224).

Quality: generates a synthetic set (training split; tags only are used to
train), trains a ResNet-18 from random init with ``train_cam``, then measures
classification mAP on the frames and the CAM semantic mIoU against the ground
truth (class map = argmax over [background 0.15, CAMs of the tagged classes],
full resolution, background included in the mean) for plain CAMs and f-CAMs
over a grid of (A, T), with DIS flow (camera motion removed inside ``fcam``).
Also reported: precision and recall of the confident foreground IRN's relation
labels use (argmax with background 0.30, METHOD.md §4).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_cam.py [--part all|speed|quality]
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
import torch  # noqa: E402

from training.cam.fcam import fcam, moving_mask  # noqa: E402
from training.cam.infer import make_cams  # noqa: E402
from training.cam.network import CAMNet  # noqa: E402
from training.cam.train import (  # noqa: E402
    CAMTrainConfig,
    cam_loss,
    classification_map,
    frame_scores,
    load_run,
    train_cam,
)

AMPLIFICATIONS = (1.5, 2.0, 3.0)
THRESHOLDS = (0.5, 1.0, 2.0)
BG_CAM_EVAL = 0.15  # IRN's cam_eval_thres (METHOD.md §2)
BG_CONF_FG = 0.30  # IRN's conf_fg_thres (METHOD.md §4)


def speed(repeats: int = 3) -> dict[str, float]:
    """CAM frames/s and training it/s at 240x320 for ResNet-18 and ResNet-50."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out: dict[str, float] = {}
    for arch in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = CAMNet(4, arch).eval()
        make_cams(model, image, [0, 1])  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            make_cams(model, image, [0, 1])
        out[f"{arch} CAM frames/s"] = repeats / (time.perf_counter() - t0)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(8, 3, 224, 224)
        y = (torch.rand(8, 4) > 0.5).float()
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            opt.zero_grad()
            cam_loss(model(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        out[f"{arch} train it/s (batch 8, crop 224)"] = 1.0 / float(np.median(times[1:]))
        print(json.dumps({k: round(v, 3) for k, v in out.items() if k.startswith(arch)}), flush=True)
    return out


def video_motion(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Per-frame motion as ``VideoFlow.motion``: forward DIS flow, the last frame's negated backward flow."""
    from training.flow import estimate_flow

    fwd = [estimate_flow(frames[t], frames[t + 1], "dis") for t in range(len(frames) - 1)]
    return [*fwd, -estimate_flow(frames[-1], frames[-2], "dis")]


def semantic(maps: np.ndarray, keys: np.ndarray, background: float) -> np.ndarray:
    """(H, W) category ids: argmax over [background, maps] (0 = background)."""
    score = np.concatenate([np.full((1, *maps.shape[1:]), background, np.float32), maps.astype(np.float32)])
    return np.concatenate([[0], keys])[score.argmax(0)]


def confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n) pixel counts, rows = ground truth class, columns = predicted class."""
    return np.bincount(gt.ravel() * n + pred.ravel(), minlength=n * n).reshape(n, n)


def scores_of(conf: np.ndarray) -> dict[str, float]:
    """mIoU (classes present in gt or prediction, background included) and per-class IoU."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {"mIoU": float(np.nanmean(iou)), **{f"IoU {c}": float(v) for c, v in enumerate(iou)}}


def fg_precision_recall(gt: np.ndarray, pred: np.ndarray) -> tuple[int, int, int]:
    """(correct foreground, predicted foreground, ground-truth foreground) pixel counts."""
    return int(((pred == gt) & (pred > 0)).sum()), int((pred > 0).sum()), int((gt > 0).sum())


def quality(work: Path, videos: int, frames: int, config: CAMTrainConfig, seed: int) -> dict[str, Any]:
    """Train a ResNet-18 on tags, score its classification and its (f-)CAMs against the ground truth."""
    from training.cam.data import TagFrames
    from training.data.tags import load_tags, tag_matrix
    from training.data.ytvis import dataset_video_frames, gt_volume, load_ytvis
    from training.synthetic import SyntheticConfig, generate_dataset

    paths = generate_dataset(work / "data", SyntheticConfig(n_videos=videos, n_frames=frames, seed=seed))
    heldout = generate_dataset(work / "heldout", SyntheticConfig(n_videos=16, n_frames=2, seed=seed + 1000))
    t0 = time.perf_counter()
    steps = 0
    for ev in train_cam(config, paths["tags"], work / "run", resume=True):
        steps = ev.done
        if ev.message:
            print(ev.message, flush=True)
    train_s = time.perf_counter() - t0
    model, categories, _ = load_run(work / "run")
    scores, targets = frame_scores(model, TagFrames(paths["tags"]))
    held_scores, held_targets = frame_scores(model, TagFrames(heldout["tags"]))
    result: dict[str, Any] = {
        "config": config.to_dict(),
        "data": f"{videos} videos x {frames} frames, 240x320, seed {seed}",
        "train_s": train_s,
        "train_it_s": steps / train_s,
        "mAP": classification_map(scores, targets),
        "held-out mAP": classification_map(held_scores, held_targets),
        # a random ranking's AP is the positive rate
        "chance mAP": float(np.mean([p for p in held_targets.mean(0) if p > 0])),
    }
    print(json.dumps({k: result[k] for k in ("train_s", "mAP", "held-out mAP")}), flush=True)

    gt, tags = load_ytvis(paths["gt"]), load_tags(paths["tags"])
    n = max(c["id"] for c in categories) + 1
    col = {c["id"]: i for i, c in enumerate(categories)}
    settings = [(1.0, 0.0)] + [(a, t) for a in AMPLIFICATIONS for t in THRESHOLDS]
    conf = {s: np.zeros((n, n), np.int64) for s in settings}
    prf = {s: np.zeros(3, np.int64) for s in settings}
    bg_sweep = {b: np.zeros((n, n), np.int64) for b in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)}
    moving = {thr: np.zeros(3, np.int64) for thr in THRESHOLDS}
    cam_s, n_frames = 0.0, 0
    for v in gt["videos"]:
        volume = gt_volume(gt, v["id"], paths["gt"])
        lut = np.zeros(int(volume.labels.max()) + 1, np.int64)
        for inst, cat in volume.categories.items():
            lut[inst] = cat
        matrix, cat_ids = tag_matrix(tags, v["id"])
        reader = dataset_video_frames(paths["gt"], gt, v["id"])
        images = [reader.read(t) for t in range(len(reader))]
        motion = video_motion(images)
        for t, image in enumerate(images):
            keys = np.array([cat_ids[j] for j in np.flatnonzero(matrix[t])], np.int64)
            t1 = time.perf_counter()
            maps = make_cams(model, image, [col[int(k)] for k in keys])["high_res"]
            cam_s, n_frames = cam_s + time.perf_counter() - t1, n_frames + 1
            g = lut[volume.labels[t]]
            for thr, counts in moving.items():
                counts += fg_precision_recall(g > 0, moving_mask(motion[t], thr, g.shape).astype(np.int64))
            for b, c in bg_sweep.items():
                c += confusion(g, semantic(maps, keys, b), n)
            for a, thr in settings:
                f = maps if a == 1.0 else fcam(maps, motion[t], a, thr)
                conf[(a, thr)] += confusion(g, semantic(f, keys, BG_CAM_EVAL), n)
                prf[(a, thr)] += fg_precision_recall(g, semantic(f, keys, BG_CONF_FG))
    result["cam_frames_s"] = n_frames / cam_s
    result["background_sweep"] = {str(b): scores_of(c)["mIoU"] for b, c in bg_sweep.items()}
    rows = []
    for a, thr in settings:
        correct, predicted, truth = prf[(a, thr)]
        rows.append(
            {
                "A": a,
                "T": thr,
                **scores_of(conf[(a, thr)]),
                "fg precision@0.30": correct / max(predicted, 1),
                "fg recall@0.30": correct / max(truth, 1),
            }
        )
    result["fcam"] = rows
    result["moving"] = {
        str(thr): {"precision": int(c[0]) / max(int(c[1]), 1), "recall": int(c[0]) / max(int(c[2]), 1)}
        for thr, c in moving.items()
    }
    return result


def table(rows: list[dict[str, Any]]) -> str:
    """The f-CAM ablation as a markdown table."""
    ious = sorted(k for k in rows[0] if k.startswith("IoU "))
    head = ["A", "T (px)", "mIoU", *ious, "fg precision@0.30", "fg recall@0.30"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = ["1 (CAM)" if r["A"] == 1.0 else f"{r['A']:g}", "-" if r["A"] == 1.0 else f"{r['T']:g}"]
        cells += [f"{r[k]:.3f}" for k in ("mIoU", *ious, "fg precision@0.30", "fg recall@0.30")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("all", "speed", "quality"), default="all")
    p.add_argument("--videos", type=int, default=8, help="synthetic videos")
    p.add_argument("--frames", type=int, default=16, help="frames per video")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--channel-shuffle", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic set")
    p.add_argument("--work", type=Path, default=None, help="folder for data and run (default: a temp folder)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    results: dict[str, Any] = {}
    if args.part in ("all", "speed"):
        results["speed"] = speed()
    if args.part in ("all", "quality"):
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            config = CAMTrainConfig(
                arch="resnet18",
                epochs=args.epochs,
                crop=args.crop,
                lr=args.lr,
                channel_shuffle=args.channel_shuffle,
                device="cpu",
                working_size=0,  # scored at frame size below (make_cams, frame_scores), as this benchmark always was
            )
            results["quality"] = quality(work, args.videos, args.frames, config, args.seed)
        q = results["quality"]
        print(
            f"\nmAP {q['mAP']:.3f}; training {q['train_s']:.0f} s ({q['train_it_s']:.2f} it/s); "
            f"CAMs {q['cam_frames_s']:.2f} frames/s"
        )
        print(f"held-out mAP {q['held-out mAP']:.3f} (chance {q['chance mAP']:.3f})")
        print("mIoU by background score:", {k: round(v, 3) for k, v in q["background_sweep"].items()})
        print("moving mask vs objects:", json.dumps(q["moving"]))
        print(table(q["fcam"]))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
