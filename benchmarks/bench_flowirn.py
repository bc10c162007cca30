"""Paper Table 4 on the synthetic benchmark: pseudo-label quality of CAM-only, IRN and the flowIRN variants.

Generates the synthetic set (tags are the only supervision), computes DIS
flow, trains the CAM classifier once (``--arch``: ImageNet EfficientNet-Lite0, frozen, by default), writes
CAMs and f-CAMs, then for each variant trains IRN and makes instance
pseudo-labels of every training frame, and scores them with frame-level COCO
mask AP (each frame an image, as the paper's Tables 4-5). "CAM only" takes
every 4-connected segment of the CAM argmax (background 0.15) as an
instance scored by its highest CAM value. Also prints pseudo-label frames/s.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_flowirn.py [--videos 6 --frames 12 ...]
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
from scipy import ndimage  # noqa: E402

from training.cam.infer import SCALES  # noqa: E402
from training.cam.store import read_frame_cams, write_cams  # noqa: E402
from training.cam.train import CAMTrainConfig, train_cam  # noqa: E402
from training.data.sources import iter_videos  # noqa: E402
from training.data.ytvis import load_ytvis  # noqa: E402
from training.evaluation import evaluate_frames  # noqa: E402
from training.export import LabelVolume, labels_to_ytvis  # noqa: E402
from training.flow.video import compute_flow  # noqa: E402
from training.irn.pseudo_labels import make_pseudo_labels  # noqa: E402
from training.irn.train import VARIANTS, IRNTrainConfig, train_irn  # noqa: E402
from training.progress import Progress  # noqa: E402
from training.synthetic import SyntheticConfig, generate_dataset  # noqa: E402
from training.working_scale import WORKING_SIZE  # noqa: E402

CAM_EVAL_BG = 0.15


def run(events: Any, label: str) -> tuple[Progress | None, float]:
    """Consume a stage's events quietly; print its messages; return (last event, seconds)."""
    t0, last = time.perf_counter(), None
    for ev in events:
        if ev.message:
            print(f"  [{label}] {ev.message}", flush=True)
        last = ev
    return last, time.perf_counter() - t0


def cam_only_results(tags: Path, cams_dir: Path) -> list[dict[str, Any]]:
    """Instances from CAMs alone: segments of the argmax over [0.15 background, full-resolution CAMs]."""
    results: list[dict[str, Any]] = []
    for src in iter_videos(tags):
        n = len(src.reader)
        h, w = src.reader.frame_shape
        labels = np.zeros((n, h, w), np.int32)
        cats: dict[int, int] = {}
        scores: dict[int, float] = {}
        for t in range(n):
            maps = read_frame_cams(cams_dir, src.key, t)
            if len(maps.keys) == 0:
                continue
            stack = np.concatenate([np.full((1, h, w), CAM_EVAL_BG, np.float32), maps.high_res])
            arg = stack.argmax(0)
            for c, key in enumerate(maps.keys):
                seg, count = ndimage.label(arg == c + 1)
                for s in range(1, count + 1):
                    m = seg == s
                    k = len(cats) + 1
                    labels[t][m], cats[k], scores[k] = k, int(key), float(maps.high_res[c][m].max())
        results += labels_to_ytvis(LabelVolume(labels, cats, scores, dict(src.video)), "results")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", type=float, nargs=2, default=(20.0, 80.0), help="object size range, px")
    ap.add_argument("--objects", type=int, nargs=2, default=(6, 8), help="objects per video (min, max)")
    ap.add_argument("--background-pool", type=int, default=0, help="backgrounds shared by the videos (0: own)")
    ap.add_argument("--object-speed", type=float, nargs=2, default=(2.0, 6.0), help="px/frame (min, max)")
    ap.add_argument("--pan-speed", type=float, nargs=2, default=(1.0, 3.0), help="camera pan px/frame (min, max)")
    ap.add_argument("--arch", default="efficientnet_lite0", help="classifier (ImageNet Lite0, or resnet18 from random)")
    ap.add_argument("--cam-epochs", type=int, default=15)
    ap.add_argument("--cam-crop", type=int, default=192)
    ap.add_argument("--cam-batch", type=int, default=8)
    ap.add_argument("--cam-scale", type=float, nargs=2, default=(0.7, 1.3), help="classifier rescale range")
    ap.add_argument("--cam-run", type=Path, default=None, help="a trained train-cam run to use instead of training one")
    ap.add_argument("--irn-epochs", type=int, default=6)
    ap.add_argument("--irn-crop", type=int, default=192)
    ap.add_argument("--crf", action=argparse.BooleanOptionalAction, default=True,
                    help="refine IRN's relation labels with the dense CRF (IRN's way, the default)")  # fmt: skip
    ap.add_argument(
        "--instance-bg",
        type=float,
        default=None,
        help="background score of the instance argmax (default: the pipeline's, from the classifier)",
    )
    ap.add_argument("--instance-norm", default=None, help="instance normalisation (default: the pipeline's)")
    ap.add_argument("--instance-split", type=float, default=None,
                    help="normalized-cut split threshold, 0 = off (default: the pipeline's)")  # fmt: skip
    ap.add_argument("--suffix", default="", help="appended to the irn-*/pseudo-* folders (other settings, same --work)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--work", type=Path, default=None, help="keep intermediates here (default: a temp folder)")
    ap.add_argument(
        "--working-size", type=int, default=WORKING_SIZE, help="short side frames are upsampled to (0: frame size)"
    )
    ap.add_argument("--cam-scales", type=float, nargs="+", default=list(SCALES), help="CAM inference scales")
    args = ap.parse_args()
    ws = f"-ws{args.working_size}" if args.working_size else ""  # runs at another working scale sit beside
    tag = ws + ("-scales" + "_".join(f"{s:g}" for s in args.cam_scales) if tuple(args.cam_scales) != SCALES else "")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_flowirn_"))
    data = work / "data"
    t_start = time.perf_counter()
    if not (data / "tags.json").is_file():
        cfg = SyntheticConfig(
            n_videos=args.videos,
            n_frames=args.frames,
            height=args.height,
            width=args.width,
            seed=args.seed,
            min_objects=args.objects[0],
            max_objects=args.objects[1],
            size_range=tuple(args.sizes),
            background_pool=args.background_pool,
            object_speed=tuple(args.object_speed),
            pan_speed=tuple(args.pan_speed),
        )
        generate_dataset(data, cfg)
    tags, gt = data / "tags.json", load_ytvis(data / "gt.json")
    n_frames = sum(len(v["file_names"]) for v in gt["videos"])
    made = json.loads((data / "config.json").read_text())  # the set on disk, which may predate these options
    print(
        f"{made['n_videos']} videos x {made['n_frames']} frames at {made['width']}x{made['height']} "
        f"({n_frames} frames, background pool {made.get('background_pool', 0)}) in {work}"
    )
    _, t = run(compute_flow(tags, work / "flow"), "flow")
    print(f"flow: {t:.0f} s")
    cam_cfg = CAMTrainConfig(
        arch=args.arch,
        epochs=args.cam_epochs,
        batch_size=args.cam_batch,
        crop=args.cam_crop,
        scale_range=tuple(args.cam_scale),
        seed=0,
        working_size=args.working_size,
    )
    cam_run = args.cam_run or work / f"cam{ws}"
    if args.cam_run is None:
        _, t = run(train_cam(cam_cfg, tags, cam_run, resume=True), "train-cam")
        print(f"train-cam: {t:.0f} s")
    cams = work / f"cams{tag}"
    _, t = run(write_cams(tags, cam_run, cams, work / "flow", scales=args.cam_scales), "cams")
    print(f"cams: {t:.0f} s ({n_frames / max(t, 1e-9):.2f} frames/s incl. f-CAMs)")
    rows: dict[str, dict[str, float]] = {"CAM only": evaluate_frames(gt, cam_only_results(tags, cams))}
    for variant in args.variants.split(","):
        irn_cfg = IRNTrainConfig(
            variant=variant,
            epochs=args.irn_epochs,
            batch_size=8,
            crop=args.irn_crop,
            crf=args.crf,
            seed=0,
            working_size=args.working_size,
        )
        run_dir = work / f"irn-{variant}{tag}{args.suffix}"
        _, t_train = run(train_irn(irn_cfg, tags, cam_run, cams, run_dir, work / "flow", resume=True), variant)
        bg = "".join(
            f"-{name}{value:g}" if isinstance(value, float) else f"-{name}{value}"
            for name, value in (("bg", args.instance_bg), ("norm", args.instance_norm), ("split", args.instance_split))
            if value is not None
        )
        pseudo = work / f"pseudo-{variant}{tag}{args.suffix}{bg}"
        labels = make_pseudo_labels(
            tags, run_dir, cams, pseudo, use_fcams=irn_cfg.uses_fcams, bg_threshold=args.instance_bg,
            instance_norm=args.instance_norm, instance_split=args.instance_split,
        )  # fmt: skip
        _, t_pl = run(labels, variant)
        res = json.loads((pseudo / "pseudo_labels.json").read_text())
        rows[variant] = {**evaluate_frames(gt, res), "train_s": t_train, "fps": n_frames / max(t_pl, 1e-9)}
        r = rows[variant]
        print(f"{variant}: AP50 {r['AP50']:.4f}, train {t_train:.0f} s, pseudo-labels {r['fps']:.2f} frames/s")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s\n")
    print("| pseudo-labels | frame AP50 | frame AP | AR100 | IRN train (s) | pseudo-label frames/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        extra = f"{r['train_s']:.0f} | {r['fps']:.2f}" if "fps" in r else "– | –"
        print(f"| {name} | {100 * r['AP50']:.2f} | {100 * r['AP']:.2f} | {100 * r['AR100']:.2f} | {extra} |")


if __name__ == "__main__":
    main()
