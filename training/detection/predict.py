"""Detector inference: per-frame masks with IoM-NMS, then tubes as YouTube-VIS results (METHOD.md §7-§8)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.atomic import write_json
from training.data.sources import iter_videos
from training.data.video import FrameReader
from training.detection.data import image_tensor
from training.detection.model import label_to_category, load_detector
from training.device import resolve_device
from training.distributed import barrier, rank_device, rank_world, shard
from training.json_io import read_json
from training.link import (
    MAX_GAP,
    PREDICTION_IOU,
    PREDICTION_SAME_CLASS,
    PREDICTION_TUBE_SCORE,
    link_tubes,
    tubes_to_results,
)
from training.maskconsist.iom_nms import iom_nms
from training.maskconsist.masks import FrameMasks
from training.progress import Progress

STAGE = "predict"
MASK_THRESHOLD = 0.5


def output_frame_masks(
    output: dict[str, torch.Tensor],
    category_ids: Sequence[int] | None,
    score_threshold: float = 0.05,
    iom_threshold: float | None = 0.5,
) -> FrameMasks:
    """One frame's Mask R-CNN output as FrameMasks.

    Parameters
    ----------
    output : dict
        torchvision's ``{"scores" (N,), "labels" (N,), "masks" (N, 1, H, W) float}``.
    category_ids : list of int or None
        Category of labels 1..K; None keeps the network's labels.
    score_threshold : float
        Detections below it are dropped.
    iom_threshold : float or None
        IoM-NMS threshold (None: no IoM-NMS).

    Returns
    -------
    FrameMasks, highest score first.
    """
    scores = output["scores"].detach().cpu().numpy().astype(np.float64)
    keep = scores >= score_threshold
    labels = output["labels"].detach().cpu().numpy()[keep]
    masks = output["masks"].detach().cpu()[:, 0].numpy()[keep] >= MASK_THRESHOLD
    classes = label_to_category(labels, list(category_ids)) if category_ids is not None else labels
    frame = FrameMasks(masks, classes, scores[keep])
    if iom_threshold is not None and len(frame):
        frame = frame.take(iom_nms(frame.masks, frame.scores, iom_threshold))
    return frame


@torch.no_grad()
def predict_frames(
    model: torch.nn.Module,
    frames: Sequence[np.ndarray],
    category_ids: Sequence[int] | None = None,
    score_threshold: float = 0.05,
    iom_threshold: float | None = 0.5,
) -> list[FrameMasks]:
    """Predictions of a few (H, W, 3) uint8 RGB frames, one FrameMasks each (model put in eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    outputs = model([image_tensor(f).to(device) for f in frames])
    return [output_frame_masks(o, category_ids, score_threshold, iom_threshold) for o in outputs]


def predict_video(
    model: torch.nn.Module,
    reader: FrameReader | Sequence[np.ndarray],
    score_threshold: float = 0.05,
    iom_threshold: float = 0.5,
    category_ids: Sequence[int] | None = None,
) -> list[FrameMasks]:
    """Per-frame instance masks of a video after IoM-NMS.

    Parameters
    ----------
    model : Mask R-CNN
    reader : FrameReader or sequence of (H, W, 3) uint8 RGB frames
    score_threshold, iom_threshold : float
    category_ids : see :func:`output_frame_masks`

    Returns
    -------
    list of T FrameMasks, masks (N_t, H, W) bool.
    """
    return [
        predict_frames(model, [reader[t]], category_ids, score_threshold, iom_threshold)[0] for t in range(len(reader))
    ]


def parts_dir(out_json: str | os.PathLike) -> Path:
    """Where the ranks of a multi-process run put their per-video results: ``OUT.parts/`` beside ``OUT``."""
    out = Path(out_json)
    return out.with_name(out.name + ".parts")


def predict(
    json_or_video: str | os.PathLike,
    run: str | os.PathLike,
    out_json: str | os.PathLike,
    flow_dir: str | os.PathLike | None = None,
    device: str = "auto",
    score_threshold: float = 0.05,
    iom_threshold: float = 0.5,
    link_iou: float = PREDICTION_IOU,
    frames: str | os.PathLike | None = None,
    video_ids: list[int] | None = None,
    link_max_gap: int = MAX_GAP,
    same_class: bool = PREDICTION_SAME_CLASS,
    tube_score: str = PREDICTION_TUBE_SCORE,
) -> Iterator[Progress]:
    """Predict every video of INPUT (or of ``video_ids``), write YouTube-VIS results; a generator of progress events.

    Under ``torchrun`` (:mod:`training.distributed`) rank ``r`` of ``N``
    predicts the videos ``videos[r::N]`` and writes their results to
    ``OUT.parts/<video index>.json``; after a barrier rank 0 joins them in the
    order of INPUT into ``out_json`` (the file a single process writes) and
    removes the parts.

    Parameters
    ----------
    json_or_video : path
        Dataset JSON, folder of frames or video file (see :func:`~training.data.sources.iter_videos`).
    run : path
        ``vis-ws train`` run folder (or its checkpoint).
    out_json : path
        Results file, written atomically at the end.
    flow_dir : path, optional
        ``vis-ws flow`` output of INPUT: tubes are linked on flow-warped masks.
    link_iou, link_max_gap, same_class : see :func:`~training.link.link_tubes` (``iou_threshold``, ``max_gap``,
        ``same_class``)
    tube_score : {"mean", "video"}
        How a tube is scored (:func:`~training.link.tube_score`).
    video_ids : list of int, optional
        Only these videos of a dataset JSON (the viewer's Training dock predicts the one it shows).

    Yields
    ------
    Progress
        One per frame (of this rank's videos).

    Raises
    ------
    InputError
        Bad input, run or missing flow (before any prediction).
    """
    from training.flow.storage import read_video_flow

    rank, world = rank_world()
    model, category_ids, _ = load_detector(run, rank_device(resolve_device(device)))
    videos = list(enumerate(iter_videos(json_or_video, frames, video_ids)))
    flows = {v.key: read_video_flow(flow_dir, v.key) for _, v in videos} if flow_dir is not None else {}
    mine = shard(videos, rank, world)
    total = sum(len(v.reader) for _, v in mine)
    parts = parts_dir(out_json)
    done, results = 0, dict[int, list[dict[str, Any]]]()
    for index, v in mine:
        per_frame: list[FrameMasks] = []
        for t in range(len(v.reader)):
            per_frame += predict_frames(model, [v.reader[t]], category_ids, score_threshold, iom_threshold)
            done += 1
            yield Progress(STAGE, done, total, "frame", {"detections": float(len(per_frame[-1]))})
        flow = flows.get(v.key)
        backward = flow.backward if flow is not None else None
        tubes = link_tubes(per_frame, backward, link_iou, link_max_gap, same_class)
        results[index] = tubes_to_results(per_frame, tubes, int(v.video["id"]), tube_score)
        if world > 1:
            write_json(parts / f"{index:06d}.json", results[index])
        yield Progress(STAGE, done, total, "frame", message=f"{v.key}: {len(tubes)} tubes")
    barrier()  # every rank's parts are written
    if rank != 0:
        return
    if world > 1:
        results = {i: read_json(parts / f"{i:06d}.json") for i, _ in videos}
    merged = [r for i, _ in videos for r in results[i]]
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    write_json(out_json, merged)
    if world > 1:
        shutil.rmtree(parts, ignore_errors=True)
    yield Progress(STAGE, done, total, "frame", message=f"wrote {len(merged)} tubes to {out_json}")
