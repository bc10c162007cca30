"""Mask R-CNN / MaskConsist: speed on this CPU, and (for the lead) quality on the synthetic benchmark (METHOD.md §7-§8).

Speed (240x320 frames, random init, one synthetic video of 4 frames whose
ground truth stands in for the pseudo-labels): through ``train_detector``,
step-1 training iterations/s (batch 2) and step-2 MaskConsist iterations/s
(batch 2, δ = 1: two predictions + matching + one training pass per item)
per backbone, and ``predict_video`` frames/s (IoM-NMS included). The first
iteration is a warm-up and not counted.

Quality (long, not run by the tests; the weak vs fully supervised comparison
and Table 5 of benchmarks/RESULTS.md): on a synthetic set made by
bench_flowirn.py (TAGS, its flowIRN and IRN pseudo-labels, its flow), Mask
R-CNN step 1 on IRN and on flowIRN pseudo-labels, step 2 (MaskConsist) from
the flowIRN model with every Table-5 switch set, and step 1 on the ground
truth; each detector predicts new videos of the same generator (or --gt) and
is scored with YouTube-VIS video AP and frame AP50, and every detector's video
AP is compared with the flowIRN step-1 model's by a paired bootstrap over the
held-out videos. Step 2 fine-tunes the step-1 model (lr 0.001, 20 warm-up
iterations, 192 iterations over the ordered pairs (t, t±δ), δ = 1..3):
restarting at step 1's lr lost what step 1 had learnt (RESULTS.md). Every run
is resumable.

Targets (minutes): on the training frames, the step-1 model's predictions,
the pseudo-labels and MaskConsist's targets for each Table-5 switch set, matched
one-to-one with the training ground truth (precision and recall at IoU 0.5).

Faulty (seconds): pseudo-labels in the layout of RUN/pseudo made from the
training ground truth with MaskConsist's faults (missing instances, partial
masks) at chosen rates; ``--part quality --pseudo`` them measures MaskConsist
with a step-1 detector better than its labels, apart from the CAMs.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_maskconsist.py --part speed [--iterations 3]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_maskconsist.py --part quality \
        --tags T/data/tags.json --pseudo T/pseudo-flowirn --pseudo-irn T/pseudo-irn --flow T/flow \
        --gt-train T/data/gt.json --weights CAM/checkpoint.pt --work DIR
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_maskconsist.py --part targets \
        --tags T/data/tags.json --pseudo T/pseudo-flowirn --flow T/flow --gt-train T/data/gt.json --model DIR/flowirn
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_maskconsist.py --part faulty \
        --tags T/data/tags.json --gt-train T/data/gt.json --out T/pseudo-faulty [--missing 0.3 --partial 0.3]
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
from training.detection.predict import predict_video  # noqa: E402
from training.detection.train import DetectionTrainConfig, train_detector  # noqa: E402

SIZE = {"min_size": 240, "max_size": 320}
ABLATION = {  # paper Table 5 rows: (intra, inter, iom, maskcon_first, iom_rank)
    "none": (False, False, False, False, "repair"),
    "inter+iom": (False, True, True, False, "repair"),
    "intra+iom": (True, False, True, False, "repair"),
    "intra+inter": (True, True, False, False, "repair"),
    "all": (True, True, True, False, "repair"),  # the default IoM-NMS rank since 2026-12-06
    # not in the paper: the targets' IoM-NMS in one score order over IRN's and the detector's scores
    # (the default before 2026-12-06: run folders step2-all* trained before then used it)
    "all-score-order": (True, True, True, False, "score"),
    "all-fuller": (True, True, True, False, "fuller"),  # not in the paper: the larger of two overlapping targets
    "all-maskcon-first": (True, True, True, True, "repair"),  # not in the paper: P_maskCon ranked first
}
PAPER_ROWS = ["none", "inter+iom", "intra+iom", "intra+inter", "all"]


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


def held_out_set(tags: Path, n_held: int, work: Path) -> Path:
    """Ground truth of ``n_held`` new videos drawn like TAGS's synthetic set (its config.json beside it).

    The set is regenerated with ``n_videos + n_held`` videos: the first
    ``n_videos`` are TAGS's own (checked), the rest are held out (same
    background pool and object distribution, different objects and motion).
    """
    from training.config import config_from_dict
    from training.synthetic import SyntheticConfig, generate_dataset

    config_path = tags.parent / "config.json"
    saved = json.loads(config_path.read_text())
    n_train = int(saved["n_videos"])
    generate_dataset(work / "all", config_from_dict(SyntheticConfig, {**saved, "n_videos": n_train + n_held},
                                                   config_path, "synthetic config"))  # fmt: skip
    every = json.loads((work / "all" / "gt.json").read_text())
    own = json.loads((tags.parent / "gt.json").read_text())
    if every["videos"][:n_train] != own["videos"]:
        raise SystemExit(f"{config_path}: regenerating does not give the training videos back")
    held_ids = {v["id"] for v in every["videos"][n_train:]}
    held = {**every, "videos": every["videos"][n_train:]}
    held["annotations"] = [a for a in every["annotations"] if a["video_id"] in held_ids]
    gt = work / "all" / "held_gt.json"  # beside the frames it names (JPEGImages/)
    gt.write_text(json.dumps(held))
    return gt


def evaluation_set(args: argparse.Namespace) -> tuple[Path, Path]:
    """The ground truth of the evaluation videos (``--gt``, else new videos of TAGS's generator) and their flow."""
    from training.cli import main as cli

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    gt_path = args.gt or held_out_set(args.tags, args.held_out, work / "held")
    flow_gt = args.flow_gt or work / "held" / "flow"
    if not (flow_gt / "done").exists():
        if cli(["flow", str(gt_path), "--out", str(flow_gt), "--progress", "json"]) != 0:
            raise SystemExit(f"{gt_path}: flow failed")
        (flow_gt / "done").touch()
    return gt_path, flow_gt


def linking(args: argparse.Namespace) -> dict[str, Any]:
    """Video AP of one detector's per-frame predictions on the evaluation videos, linked with each max gap.

    The predictions (``vis-ws predict``'s settings: score >= 0.05, IoM-NMS
    0.5) are made once; only :func:`~training.link.link_tubes`'s ``max_gap``
    changes between rows. Frame AP moves a little too: a frame's mask is
    scored with its tube's mean score.
    """
    from training.data.sources import iter_videos
    from training.data.ytvis import load_ytvis
    from training.evaluation import evaluate_frames, evaluate_ytvis
    from training.flow.storage import read_video_flow
    from training.link import IOU_THRESHOLD, link_tubes, tubes_to_results

    gt_path, flow_gt = evaluation_set(args)
    gt = load_ytvis(gt_path)
    model, category_ids, _ = load_detector(args.model)
    videos = []
    for v in iter_videos(gt_path):
        frames = predict_video(model, v.reader, 0.05, 0.5, category_ids)
        videos.append((int(v.video["id"]), frames, read_video_flow(flow_gt, v.key)))
    report: dict[str, Any] = {}
    print("| max gap | tubes | AP | AP50 | AP75 | AR1 | AR10 | frame AP50 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for gap in args.gaps:
        results = []
        for video_id, frames, flow in videos:
            results += tubes_to_results(frames, link_tubes(frames, flow.backward, IOU_THRESHOLD, gap), video_id)
        video, frame = evaluate_ytvis(gt, results), evaluate_frames(gt, results)
        r = report[str(gap)] = {**{k: video[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")},
                                "frame AP50": frame["AP50"], "tubes": len(results)}  # fmt: skip
        cells = " | ".join(f"{100 * r[k]:.2f}" for k in ("AP", "AP50", "AP75", "AR1", "AR10", "frame AP50"))
        print(f"| {gap} | {len(results)} | {cells} |", flush=True)
    return report


def target_quality(args: argparse.Namespace) -> dict[str, Any]:
    """MaskConsist's training targets against the pseudo-labels they start from, on the training frames.

    For every δ = 1 pair of the training videos, in both orders (t, t2),
    ``--model`` (a step-1 run) predicts both frames and
    :func:`~training.maskconsist.targets.pair_matches` builds the targets of t2
    for each Table-5 switch set. Each set is matched one-to-one (same class,
    Hungarian, IoU >= 0.5) with the ground truth of t2 (``--gt-train``):
    precision, recall and the mean IoU of the hits, beside the pseudo-labels
    of the same frames and the step-1 model's predictions (score >= 0.5);
    "transferred" counts P_maskCon's masks and "kept" those of them that are
    still in the targets after IoM-NMS.
    Targets are labels, not ranked detections, so no AP. This is the mechanism
    the detector rows depend on: targets better than P_fIRN.
    """
    import torch

    from training.data.sources import iter_videos
    from training.data.ytvis import gt_volume, load_ytvis
    from training.detection.data import volume_frame_masks
    from training.detection.predict import predict_frames
    from training.detection.train import load_train_videos
    from training.maskconsist.masks import FrameMasks, intersections
    from training.maskconsist.matching import class_iou, hungarian_matches, maskconsist_pair

    model, category_ids, saved = load_detector(args.model)
    config = DetectionTrainConfig(backbone=saved["backbone"], step=2, delta_max=1, device="cpu")
    videos, _ = load_train_videos(args.tags, args.pseudo, config, args.flow)
    gt = load_ytvis(args.gt_train)
    ids = [int(src.video["id"]) for src in iter_videos(args.tags)]
    counts: dict[str, list[float]] = {}  # row -> [targets, truth, hits, summed IoU of hits, transferred, kept]

    def add(row: str, frame: FrameMasks, truth: FrameMasks, transferred: int = 0, kept: int = 0) -> None:
        hits = hungarian_matches(class_iou(frame, truth), 0.5)
        c = counts.setdefault(row, [0, 0, 0, 0.0, 0, 0])
        c[0] += len(frame)
        c[1] += len(truth)
        c[2] += len(hits)
        c[3] += sum(iou for _, _, iou in hits)
        c[4] += transferred
        c[5] += kept

    def n_kept(targets: FrameMasks, maskcon: FrameMasks) -> int:
        """Targets that are one of the transferred masks (the same pixels)."""
        if not len(targets) or not len(maskcon):
            return 0
        inter = intersections(targets.masks, maskcon.masks)
        area_t, area_m = targets.masks.sum(axis=(1, 2)), maskcon.masks.sum(axis=(1, 2))
        return int(((inter == area_t[:, None]) & (inter == area_m[None, :])).any(axis=1).sum())

    with torch.no_grad():
        for video_id, v in zip(ids, videos, strict=True):
            assert v.flow is not None
            n, truth_volume = len(v.reader), gt_volume(gt, video_id, args.gt_train)
            preds = predict_frames(model, [v.reader[t] for t in range(n)], category_ids, 0.5, iom_threshold=None)
            pseudo = [volume_frame_masks(v.targets, t) for t in range(n)]
            for t, t2 in [p for a in range(n - 1) for p in ((a, a + 1), (a + 1, a))]:
                truth = volume_frame_masks(truth_volume, t2)
                add("step-1 predictions", preds[t2], truth)
                add("pseudo-labels (P_fIRN)", pseudo[t2], truth)
                flows = v.flow.carry(t, t2)
                for name, switches in ABLATION.items():
                    res = maskconsist_pair(preds[t], preds[t2], pseudo[t], pseudo[t2], flows, *switches)
                    assert res.targets_t2 is not None and res.maskcon_t2 is not None
                    kept = n_kept(res.targets_t2, res.maskcon_t2)
                    add(f"targets ({name})", res.targets_t2, truth, len(res.transferred), kept)
    report: dict[str, Any] = {}
    print("| targets of the training frames | masks | precision | recall | IoU of hits | transferred | kept |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row, (n_masks, n_truth, n_hits, iou, moved, kept) in counts.items():
        report[row] = {"masks": n_masks, "precision": n_hits / max(n_masks, 1), "recall": n_hits / max(n_truth, 1),
                       "IoU of hits": iou / max(n_hits, 1), "transferred": moved, "kept": kept}  # fmt: skip
        r = report[row]
        print(f"| {row} | {n_masks} | {r['precision']:.3f} | {r['recall']:.3f} | {r['IoU of hits']:.3f} | {moved} "
              f"| {kept} |")  # fmt: skip
    return report


def faulty_labels(args: argparse.Namespace) -> dict[str, Any]:
    """Pseudo-labels with MaskConsist's faults at chosen rates, from the training ground truth.

    Every instance of every frame of ``--gt-train`` is, independently, missing
    (``--missing``) or cut to 30-70 % of its pixels (``--partial``), scored
    1.0 as IRN scores most of its pseudo-labels
    (:func:`training.synthetic.label_faults.degrade_labels`, seeded per video). The
    result has the layout of ``RUN/pseudo`` (``--out``), so ``--part quality
    --pseudo OUT`` trains step 1 on it and step 2 from that model: whether
    MaskConsist repairs what it is built to repair, with a step-1 detector
    better than its labels, apart from how well the CAMs localise.
    """
    from training.data.sources import iter_videos
    from training.data.ytvis import gt_volume, load_ytvis
    from training.evaluation import evaluate_frames
    from training.export import LabelVolume, save_labels
    from training.irn.pseudo_labels import write_pseudo_label_json
    from training.synthetic.label_faults import degrade_labels

    gt = load_ytvis(args.gt_train)
    volumes = []
    for src in iter_videos(args.tags):
        video_id = int(src.video["id"])
        truth = gt_volume(gt, video_id, args.gt_train)
        rng = np.random.default_rng([args.fault_seed, video_id])
        labels = degrade_labels(truth.labels, args.missing, args.partial, rng)
        kept = {i: c for i, c in truth.categories.items() if (labels == i).any()}
        volume = LabelVolume(labels, kept, {i: 1.0 for i in kept}, truth.video)
        save_labels(args.out / src.key / "pseudo.npz", volume)
        volumes.append(volume)
    write_pseudo_label_json(args.out, volumes, gt["categories"])
    frame = evaluate_frames(gt, json.loads((args.out / "pseudo_labels.json").read_text()))
    report = {"missing": args.missing, "partial": args.partial, "frame AP50": frame["AP50"], "frame AP": frame["AP"]}
    print(json.dumps(report), flush=True)
    return report


def resample_videos(
    gt: dict[str, Any], results: list[dict[str, Any]], picks: list[int]
) -> tuple[dict[str, Any], list[Any]]:
    """Ground truth and results of the videos ``gt["videos"][i]`` for i in picks, repeats renumbered 1..len(picks)."""
    anns: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        anns.setdefault(a["video_id"], []).append(a)
    dets: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        dets.setdefault(r["video_id"], []).append(r)
    videos: list[dict[str, Any]] = []
    new_anns: list[dict[str, Any]] = []
    new_dets: list[dict[str, Any]] = []
    for new_id, i in enumerate(picks, 1):
        old = gt["videos"][i]["id"]
        videos.append({**gt["videos"][i], "id": new_id})
        new_anns += [{**a, "id": len(new_anns) + k + 1, "video_id": new_id} for k, a in enumerate(anns.get(old, []))]
        new_dets += [{**r, "video_id": new_id} for r in dets.get(old, [])]
    return {**gt, "videos": videos, "annotations": new_anns}, new_dets


def paired_bootstrap(
    gt: dict[str, Any], base: list[dict[str, Any]], other: list[dict[str, Any]], n: int = 500, seed: int = 0
) -> dict[str, float]:
    """Video AP of ``other`` minus ``base`` over held-out videos drawn with replacement (same draws for both).

    Returns the mean difference, its 5th and 95th percentiles and the share
    of draws where ``other`` scores higher: how much of a gap between two
    detectors the size of the held-out set can resolve.
    """
    from training.evaluation import evaluate_ytvis

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        picks = rng.integers(0, len(gt["videos"]), len(gt["videos"])).tolist()
        g, a = resample_videos(gt, base, picks)
        _, b = resample_videos(gt, other, picks)
        diffs.append(evaluate_ytvis(g, b)["AP"] - evaluate_ytvis(g, a)["AP"])
    d = np.asarray(diffs)
    return {"mean": float(d.mean()), "p5": float(np.percentile(d, 5)), "p95": float(np.percentile(d, 95)),
            "P(higher)": float((d > 0).mean())}  # fmt: skip


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """Every weak and full detector of the comparison, each scored on held-out videos.

    Runs (each resumable, in ``--work``): step 1 on IRN pseudo-labels
    (``--pseudo-irn``), step 1 on flowIRN pseudo-labels (``--pseudo``), step 2
    from the latter for every Table-5 switch set, and step 1 on the training
    ground truth (``--gt-train``, the fully supervised bound). Every detector
    starts from ``--weights`` (the same file for all).
    """
    from training.cli import main as cli
    from training.data.ytvis import load_ytvis
    from training.evaluation import evaluate_frames, evaluate_ytvis

    work: Path = args.work
    gt_path, flow_gt = evaluation_set(args)
    gt = load_ytvis(gt_path)
    common = ["--backbone", args.backbone, "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--min-size", str(args.min_size), "--max-size", str(args.max_size), "--proposals",
              str(args.proposals), "--rois", str(args.rois), "--device", args.device, "--progress", "json"]  # fmt: skip
    step1 = ["--epochs", str(args.epochs)] + (["--weights", str(args.weights)] if args.weights else [])
    step2 = ["--step", "2", "--init", str(work / "flowirn"), "--flow", str(args.flow), "--epochs",
             str(args.step2_epochs), "--iterations", str(args.step2_iterations), "--delta-max",
             str(args.delta_max), "--lr", str(args.step2_lr), "--warmup", str(args.step2_warmup),
             "--seed", str(args.step2_seed)]  # fmt: skip
    seed = f"-seed{args.step2_seed}" if args.step2_seed else ""  # seed 0 keeps the folders of earlier runs
    seed_label = f", seed {args.step2_seed}" if args.step2_seed else ""
    runs: dict[str, list[str]] = {}
    if args.pseudo_irn:
        runs["IRN → Mask R-CNN"] = ["irn", "--pseudo", str(args.pseudo_irn), *step1]
    base = f"{args.pseudo_name} → Mask R-CNN"
    runs[base] = ["flowirn", "--pseudo", str(args.pseudo), *step1]
    for name, (intra, inter, iom, maskcon_first, iom_rank) in ABLATION.items():
        if name not in args.rows:
            continue
        off = [flag for flag, on in (("--no-intra", intra), ("--no-inter", inter), ("--no-iom", iom)) if not on]
        first = (["--maskcon-first"] if maskcon_first else []) + ["--iom-rank", iom_rank]
        folder = f"step2-{name}{seed}"
        runs[f"+ MaskConsist ({name}{seed_label})"] = [folder, "--pseudo", str(args.pseudo), *step2, *off, *first]
    if args.gt_train:
        runs["fully supervised"] = ["full", "--supervision", "full", "--gt", str(args.gt_train), *step1]
    report: dict[str, Any] = {}
    scored: dict[str, list[dict[str, Any]]] = {}
    for label, (folder, *options) in runs.items():
        run = work / folder
        if not (run / "done").exists():
            resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
            t0 = time.perf_counter()
            if cli(["train", str(args.tags), "--out", str(run), *common, *options, *resume]) != 0:
                raise SystemExit(f"{label}: training failed")
            (run / "seconds").write_text(f"{time.perf_counter() - t0:.0f}")
            (run / "done").touch()
        out = run / "held.results.json"
        if not out.exists():
            if cli(["predict", str(gt_path), "--model", str(run), "--out", str(out), "--flow", str(flow_gt),
                    "--device", args.device, "--progress", "json"]) != 0:  # fmt: skip
                raise SystemExit(f"{label}: predict failed")
        results = scored[label] = json.loads(out.read_text())
        video = evaluate_ytvis(gt, results)
        frame = evaluate_frames(gt, results)
        report[label] = {**{k: video[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")}, "frame AP50": frame["AP50"]}
        print(json.dumps({label: {k: round(v, 4) for k, v in report[label].items()}}), flush=True)
    print("| detector | AP | AP50 | AP75 | AR1 | AR10 | frame AP50 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in report.items():
        print(f"| {label} | " + " | ".join(f"{100 * r[k]:.2f}" for k in r) + " |")
    n_videos = len(gt["videos"])
    print(f"\nvideo AP minus {base}'s, paired bootstrap over {n_videos} held-out videos ({args.bootstrap} draws)")
    print("| detector | mean | 5th pct | 95th pct | P(higher) |")
    print("| --- | --- | --- | --- | --- |")
    for label in report:
        if label != base:
            b = paired_bootstrap(gt, scored[base], scored[label], args.bootstrap)
            report[label]["bootstrap"] = b
            print(f"| {label} | " + " | ".join(f"{100 * b[k]:+.2f}" for k in ("mean", "p5", "p95")) +
                  f" | {b['P(higher)']:.2f} |")  # fmt: skip
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("speed", "quality", "targets", "faulty", "linking"), default="speed")
    p.add_argument("--gaps", type=int, nargs="+", default=[0, 1, 2], help="linking: the max gaps to compare")
    p.add_argument("--out", type=Path, default=None, help="faulty: output folder (RUN/pseudo layout)")
    p.add_argument("--missing", type=float, default=0.3, help="faulty: chance that an instance is missing in a frame")
    p.add_argument("--partial", type=float, default=0.3, help="faulty: chance that an instance is cut to 30-70 %%")
    p.add_argument("--fault-seed", type=int, default=0, help="faulty: seed of the faults")
    p.add_argument("--model", type=Path, default=None, help="targets, linking: a detector run (targets: step 1)")
    p.add_argument("--iterations", type=int, default=3, help="speed: timed iterations / frames per backbone")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument("--tags", type=Path, help="quality: frame tags of the training videos")
    p.add_argument("--pseudo", type=Path, help="quality: flowIRN pseudo-labels (RUN/pseudo of 'pseudo-labels')")
    p.add_argument("--pseudo-name", default="flowIRN", help="quality: what --pseudo holds, in the table")
    p.add_argument("--pseudo-irn", type=Path, default=None, help="quality: IRN pseudo-labels of the same videos")
    p.add_argument("--flow", type=Path, help="quality: flow of the training videos")
    p.add_argument("--gt-train", type=Path, default=None, help="quality: training ground truth (fully supervised)")
    p.add_argument("--gt", type=Path, default=None, help="quality: ground truth of the evaluation videos")
    p.add_argument("--held-out", type=int, default=32, help="quality, no --gt: new synthetic videos to score on")
    p.add_argument("--flow-gt", type=Path, default=None, help="quality: flow of the evaluation videos")
    p.add_argument("--weights", type=Path, default=None, help="quality: backbone weights of every detector")
    p.add_argument("--backbone", choices=BACKBONES, default="resnet18")
    p.add_argument("--epochs", type=int, default=5, help="quality: step-1 epochs")
    p.add_argument("--step2-epochs", type=int, default=1)
    p.add_argument("--step2-iterations", type=int, default=192, help="quality: step-2 iterations (0: --step2-epochs)")
    p.add_argument("--delta-max", type=int, default=3, help="quality: step-2 pairs (t, t±δ), δ in 1..this")
    p.add_argument("--step2-lr", type=float, default=0.001, help="quality: step 2 fine-tunes at this lr")
    p.add_argument("--step2-seed", type=int, default=0, help="quality: seed of step 2 (batch order, flips)")
    p.add_argument("--step2-warmup", type=int, default=20, help="quality: step-2 warm-up iterations")
    p.add_argument("--rows", nargs="*", choices=list(ABLATION), default=PAPER_ROWS,
                   help="quality: the Table-5 rows of step 2 to train and score")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=500, help="quality: video draws of the paired bootstrap")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--min-size", type=int, default=120)
    p.add_argument("--max-size", type=int, default=160)
    p.add_argument("--proposals", type=int, default=300)
    p.add_argument("--rois", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args()
    if args.part == "speed":
        with tempfile.TemporaryDirectory() as tmp:
            speed(Path(tmp), args.iterations, tuple(args.backbones))
    elif args.part == "targets":
        if None in (args.tags, args.pseudo, args.flow, args.gt_train, args.model):
            p.error("--part targets needs --tags, --pseudo, --flow, --gt-train and --model")
        target_quality(args)
    elif args.part == "linking":
        if None in (args.model, args.work) or (args.tags is None and args.gt is None):
            p.error("--part linking needs --model, --work and --tags (held-out videos of its generator) or --gt")
        linking(args)
    elif args.part == "faulty":
        if None in (args.tags, args.gt_train, args.out):
            p.error("--part faulty needs --tags, --gt-train and --out")
        faulty_labels(args)
    else:
        if None in (args.tags, args.pseudo, args.flow, args.work):
            p.error("--part quality needs --tags, --pseudo, --flow and --work")
        quality(args)


if __name__ == "__main__":
    main()
