"""The quality bar of issue 17: `vis-ws pipeline` from tags, scored on held-out videos, timed.

Writes a synthetic training set (``--videos`` x ``--frames`` at
``--height`` x ``--width``, 1-3 moving objects of up to 3 classes per video,
every video its own background) and a held-out set from another seed,
then runs, as a user would:

1. ``vis-ws pipeline TAGS --out RUN`` (no ``--preset`` unless given: ``cpu``
   on a machine without a GPU), timed;
2. ``vis-ws flow`` and ``vis-ws predict --model RUN`` on the held-out videos,
   scored with YouTube-VIS video AP / AP50;
3. the pseudo-labels' frame AP50 on the training frames (each frame an
   image, as the paper's Tables 4-5);
4. with ``--full``, the same detector schedule trained on the training set's
   ground truth (``--supervision full``), predicted and scored the same way:
   the weak / full ratio.

Nothing is tuned here: every setting is the preset's. Prints one table.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_pipeline.py --work /tmp/bench-pipeline [--full]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from training.cli import main as vis_ws  # noqa: E402
from training.data.ytvis import load_ytvis  # noqa: E402
from training.evaluation import evaluate_frames, evaluate_ytvis  # noqa: E402
from training.synthetic import SyntheticConfig, generate_dataset  # noqa: E402


def dataset(root: Path, videos: int, args: argparse.Namespace, seed: int) -> Path:
    """A synthetic set in ``root`` (kept between runs: same config, same bytes)."""
    if not (root / "gt.json").is_file():
        config = SyntheticConfig(
            n_videos=videos,
            n_frames=args.frames,
            height=args.height,
            width=args.width,
            seed=seed,
            min_objects=1,
            max_objects=3,
            min_classes=1,
            max_classes=3,
            size_range=(args.height / 6, args.height / 2.5),
        )
        generate_dataset(root, config)
    return root


def timed(argv: list[str]) -> float:
    """Run ``vis-ws argv`` (must succeed); its wall time in seconds."""
    t0 = time.perf_counter()
    code = vis_ws(argv)
    if code != 0:
        raise SystemExit(f"vis-ws {' '.join(argv)} failed with exit {code}")
    return time.perf_counter() - t0


def video_scores(gt_path: Path, results_path: Path) -> dict[str, float]:
    return evaluate_ytvis(load_ytvis(gt_path), json.loads(results_path.read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="data and run folders (reused: runs resume)")
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--held-out", type=int, default=32)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0, help="training set seed (held-out: seed + 1000); stage seed")
    ap.add_argument("--preset", default=None, help="passed on (default: none, so the pipeline picks)")
    ap.add_argument("--full", action="store_true", help="also train on the ground truth (the upper bound)")
    args = ap.parse_args()

    work = args.work
    train = dataset(work / f"train-s{args.seed}", args.videos, args, args.seed)
    held = dataset(work / f"heldout-s{args.seed}", args.held_out, args, args.seed + 1000)
    preset = ["--preset", args.preset] if args.preset else []
    common = ["--seed", str(args.seed), "--device", "cpu", "--progress", "json"]
    rows: list[tuple[str, Any]] = []

    run = work / f"run-{args.preset or 'auto'}-s{args.seed}"
    seconds = timed(["pipeline", str(train / "tags.json"), "--out", str(run), *preset, *common])
    rows.append(("pipeline (weak), s", f"{seconds:.0f}"))
    pseudo = json.loads((run / "pseudo" / "pseudo_labels.json").read_text())
    frame = evaluate_frames(load_ytvis(train / "gt.json"), pseudo)
    rows.append(("pseudo-labels frame AP50 (training frames)", f"{frame['AP50']:.3f}"))

    flow = work / f"heldout-s{args.seed}-flow"
    seconds = timed(["flow", str(held / "tags.json"), "--out", str(flow), "--progress", "json"])
    results = run / "heldout_results.json"
    seconds += timed(["predict", str(held / "gt.json"), "--model", str(run), "--flow", str(flow), "--out",
                      str(results), "--device", "cpu", "--progress", "json"])  # fmt: skip
    weak = video_scores(held / "gt.json", results)
    rows += [("held-out flow + predict, s", f"{seconds:.0f}"),
             ("weak video AP / AP50 (held-out)", f"{weak['AP']:.3f} / {weak['AP50']:.3f}")]  # fmt: skip

    if args.full:
        full_run = work / f"full-{args.preset or 'auto'}-s{args.seed}"
        seconds = timed(["pipeline", str(train / "tags.json"), "--out", str(full_run), "--supervision", "full",
                         "--gt", str(train / "gt.json"), *preset, *common])  # fmt: skip
        full_results = full_run / "heldout_results.json"
        timed(["predict", str(held / "gt.json"), "--model", str(full_run / "full"), "--flow", str(flow), "--out",
               str(full_results), "--device", "cpu", "--progress", "json"])  # fmt: skip
        full = video_scores(held / "gt.json", full_results)
        rows += [("pipeline (full supervision), s", f"{seconds:.0f}"),
                 ("full video AP / AP50 (held-out)", f"{full['AP']:.3f} / {full['AP50']:.3f}"),
                 ("weak / full video AP", f"{weak['AP'] / max(full['AP'], 1e-9):.2f}")]  # fmt: skip

    print(f"\n{args.videos} videos x {args.frames} frames at {args.height}x{args.width}, "
          f"{args.held_out} held out, seed {args.seed}, preset {args.preset or 'auto'}")  # fmt: skip
    for name, value in rows:
        print(f"{name:<46} {value:>16}")


if __name__ == "__main__":
    main()
