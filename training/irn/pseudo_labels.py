"""Instance pseudo-labels of every frame (METHOD.md §6): the output of flowIRN.

For each video of a tags file, every frame goes through the trained IRN
(boundary B and displacement D), then :func:`~training.irn.inference.instance_pseudo_labels`
on its stored (f-)CAMs, at the working scale the IRN run was trained at
(:mod:`training.working_scale`: small frames upsampled, masks brought back).
Written per video under ``OUT/<video key>/``, at frame size:

- ``pseudo.npz``: the label volume (T, H, W) int32 with a category and a
  score per instance id (ids are unique within the video; pseudo-labels are
  per frame, they are not linked across frames);
- ``irn.npz``: what the viewer shows: ``boundary`` (T, h, w) float16,
  ``displacement`` (T, 2, h, w) float16 (dy, dx in grid pixels) and
  ``centroids`` (M, 3) float32 rows (t, y, x) in image pixels, one per
  instance group of the class-agnostic instance map;
- ``pseudo.json``: the record (IRN run fingerprint, settings) that lets a
  re-run skip the video.

And for the whole set: ``OUT/pseudo_labels.json`` (YouTube-VIS results: one
entry per detection, present in its frame only) and
``OUT/pseudo_labels.coco.json`` (COCO results), for ``vis-ws eval --frame-level``.

Under ``torchrun`` (:mod:`training.distributed`) rank ``r`` of ``N`` labels
the videos ``videos[r::N]``; after a barrier rank 0 writes the set-wide files
from every video's folder, as a single process would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import run_folder
from training.atomic import write_json, write_npz
from training.cam.data import normalize
from training.cam.store import file_sha256, read_frame_cams
from training.data.sources import iter_videos
from training.data.tags import load_tags
from training.device import resolve_device
from training.distributed import barrier, rank_device, rank_world, shard
from training.errors import InputError
from training.export import LabelVolume, labels_to_coco, labels_to_ytvis, load_labels, save_labels
from training.irn.inference import (
    INSTANCE_BG,
    INSTANCE_NORMS,
    Instance,
    cluster_centroids,
    find_centroids,
    instance_pseudo_labels,
)
from training.irn.ncut import SPLIT_NCUT
from training.json_io import read_json
from training.progress import Progress
from training.run_folder import Project
from training.working_scale import mask_to_frame, recorded_working_size, resize_maps, upsample_frame, working_scale

STAGE = "pseudo-labels"
STRIDE = 4
IRN_MAPS = "irn.npz"
"""A video's IRN maps for the viewer, ``OUT/<video key>/irn.npz`` (:func:`write_irn_maps`, :func:`read_irn_maps`)."""


def paint_instances(instances: list[Instance], shape: tuple[int, int], first_id: int) -> tuple[np.ndarray, list[int]]:
    """Paint one frame's detections into a label map, the highest score on top.

    Parameters
    ----------
    instances : list of Instance (key, score, mask (H, W) bool)
    shape : (H, W)
    first_id : int
        Id of the first detection; the others follow in list order.

    Returns
    -------
    labels : (H, W) int32
    ids : list of int, the id given to each instance (a detection hidden
        entirely under higher-scored ones keeps its id but has no pixels).
    """
    labels = np.zeros(shape, np.int32)
    ids = [first_id + i for i in range(len(instances))]
    for i in sorted(range(len(instances)), key=lambda i: instances[i].score):
        labels[np.asarray(instances[i].mask, bool)] = ids[i]
    return labels, ids


def centroid_points(
    displacement: np.ndarray, t: int, scale: float = 1.0, centroids: np.ndarray | None = None
) -> np.ndarray:
    """One (t, y, x) point in frame pixels per instance group of a frame's displacement field.

    The point is the mean landing position of the group's pixels (their centroid).

    Parameters
    ----------
    displacement : (2, h, w) float, IRN's field on the stride-4 grid of the working scale
    t : int, the frame
    scale : float, the working scale the field was made at
    centroids : (2, h, w) int, optional, ``find_centroids(displacement)`` when already made

    Returns
    -------
    (M, 3) float32
    """
    if centroids is None:
        centroids = find_centroids(displacement)
    landing = np.asarray(centroids, np.float32)
    groups = np.asarray(cluster_centroids(centroids, displacement))
    px = STRIDE / scale
    pts = [(t, float(landing[0][g].mean()) * px, float(landing[1][g].mean()) * px) for g in groups if g.any()]
    return np.asarray(pts, np.float32).reshape(-1, 3)


def frame_pseudo_labels(
    model: Any,
    image: np.ndarray,
    cams: np.ndarray,
    keys: np.ndarray,
    device: torch.device,
    bg_threshold: float = INSTANCE_BG,
    scale: float = 1.0,
    instance_norm: str = "frame",
    split_ncut: float = 0.0,
) -> tuple[list[Instance], np.ndarray, np.ndarray, np.ndarray]:
    """IRN on one frame, at the working scale; the masks come back at frame size.

    Parameters
    ----------
    model : IRNet in eval mode
    image : (H, W, 3) uint8
    cams : (K, h, w) float32, the frame's (f-)CAMs at the frame's stride-4 grid
    keys : (K,) int, category id of each CAM row
    bg_threshold : float
        Background score of the instance argmax (IRN's ``ins_seg_bg_thres``, 0.25).
    scale : float
        Working scale (:mod:`training.working_scale`): the frame is upsampled
        by it, the CAMs brought to its grid, and each mask brought back
        (an instance with no pixel left at frame size is dropped).
    instance_norm : {"frame", "class"}
    split_ncut : float
        Normalized-cut split threshold (0: off, IRN); see :func:`instance_pseudo_labels`.

    Returns
    -------
    instances : list of Instance (category id, score, (H, W) bool mask)
    boundary : (h', w') float32 in [0, 1], on the working scale's stride-4 grid
    displacement : (2, h', w') float32 (dy, dx) in that grid's pixels
    centroids : (2, h', w') int64, where each cell's displacement chain ends (:func:`find_centroids`)
    """
    work = upsample_frame(image, scale)
    x = normalize(work)[None].to(device)
    b, d = model.infer(x)
    boundary = b[0].float().cpu().numpy()
    displacement = d[0].float().cpu().numpy()
    cams = resize_maps(cams, boundary.shape)
    centroids = find_centroids(displacement)
    instances = instance_pseudo_labels(
        cams,
        keys,
        boundary,
        displacement,
        work.shape[:2],
        bg_threshold=bg_threshold,
        centroids=centroids,
        instance_norm=instance_norm,
        split_ncut=split_ncut,
    )
    if scale != 1.0:
        back = [Instance(i.key, i.score, mask_to_frame(np.asarray(i.mask), image.shape)) for i in instances]
        instances = [i for i in back if i.mask.any()]
    return instances, boundary, displacement, centroids


FROZEN_CLASSIFIER_BG = 0.85
"""Instance background score for CAMs of a frozen ImageNet classifier (the default, Lite0).

Its CAMs are diffuse and their propagation spreads over the background and
neighbouring objects; keeping only the strongest part of each map cut both.
Chosen on a validation set (``bench_flowirn.py --seed 7``, not the benchmark
it is reported on): flowIRN frame AP50 18.5 % at IRN's 0.25, 34.9 % at 0.85,
32.0 % at 0.92 (benchmarks/RESULTS.md)."""


FROZEN_CLASSIFIER_NORM = "class"
"""Instance normalisation for CAMs of a frozen ImageNet classifier (:data:`~training.irn.inference.INSTANCE_NORMS`).

At :data:`FROZEN_CLASSIFIER_BG` the frame's maximum keeps about one class
per frame (1.1 pseudo-labels per frame against 2.0 objects on the validation
set); each tagged class's own maximum keeps every tagged class. Chosen on the
validation set (seed 7): flowIRN frame AP50 34.9 % (frame) against 37.7 %
(class) at 0.85, with the same IRN (benchmarks/RESULTS.md)."""


FROZEN_CLASSIFIER_SPLIT = SPLIT_NCUT
"""Normalized-cut split threshold for a frozen classifier's pseudo-labels (:mod:`training.irn.ncut`).

Made the default with the other two frozen-classifier settings: they were
all chosen on the same validation set (seed 7), and the runs made with the
paper's fine-tuned classifier keep IRN's inference unchanged."""


def default_instance_bg(irn_run: str | os.PathLike) -> float:
    """The instance background score for pseudo-labels of ``irn_run`` when none is given.

    :data:`FROZEN_CLASSIFIER_BG` when the run's CAMs come from a classifier
    whose whole backbone was frozen, else IRN's 0.25 (also when the
    classifier cannot be found). The CLI and the plugin both use this, so
    labels made from either agree.
    """
    return FROZEN_CLASSIFIER_BG if frozen_classifier(irn_run) else INSTANCE_BG


def default_instance_norm(irn_run: str | os.PathLike) -> str:
    """The instance normalisation for pseudo-labels of ``irn_run`` when none is given.

    :data:`FROZEN_CLASSIFIER_NORM` with a frozen classifier's CAMs (the
    setting that goes with :data:`FROZEN_CLASSIFIER_BG`), else IRN's ``frame``.
    """
    return FROZEN_CLASSIFIER_NORM if frozen_classifier(irn_run) else "frame"


def default_instance_split(irn_run: str | os.PathLike) -> float:
    """The normalized-cut split threshold for pseudo-labels of ``irn_run`` when none is given.

    :data:`FROZEN_CLASSIFIER_SPLIT` with a frozen classifier's CAMs, else 0 (no split, as IRN).
    """
    return FROZEN_CLASSIFIER_SPLIT if frozen_classifier(irn_run) else 0.0


def frozen_classifier(irn_run: str | os.PathLike) -> bool:
    """Whether the CAMs of ``irn_run`` come from a classifier whose whole backbone was frozen (False if unknown)."""
    from training.cam.train import CAMTrainConfig

    irn_run = Path(irn_run)
    try:
        config = read_json(run_folder.config(irn_run))
        recorded = config.get("cam_run") if isinstance(config, dict) else None
        candidates = [Path(recorded)] if recorded else []
        candidates.append(Project(irn_run.parent).cam)  # the project layout, when the recorded path was relative
        cam_run = next((c for c in candidates if run_folder.config(c).is_file()), None)
        if cam_run is None:
            return False
        cam = CAMTrainConfig.from_dict(read_json(run_folder.config(cam_run)), run_folder.config(cam_run))
    except InputError:
        return False
    return cam.backbone_freeze == "backbone"


def check_instance_bg(bg_threshold: float) -> None:
    """Refuse an instance background score outside (0, 1) (:class:`InputError`, one line)."""
    if not 0.0 < bg_threshold < 1.0:
        raise InputError(None, f"pseudo-labels: --instance-bg must lie in (0, 1), got {bg_threshold}")


def check_instance_norm(instance_norm: str) -> None:
    """Refuse an unknown instance normalisation (:class:`InputError`, one line)."""
    if instance_norm not in INSTANCE_NORMS:
        raise InputError(None, f"pseudo-labels: --instance-norm must be one of {', '.join(INSTANCE_NORMS)}")


def check_instance_split(split_ncut: float) -> None:
    """Refuse a normalized-cut split threshold outside [0, 2] (:class:`InputError`, one line)."""
    if not 0.0 <= split_ncut <= 2.0:
        raise InputError(None, f"pseudo-labels: --instance-split must lie in [0, 2] (0: off), got {split_ncut}")


def _record(
    irn_run: Path, use_fcams: bool, bg_threshold: float, instance_norm: str, split_ncut: float = 0.0
) -> dict[str, Any]:
    sha = file_sha256(run_folder.checkpoint(irn_run))
    record: dict[str, Any] = {"irn_checkpoint_sha256": sha, "use_fcams": use_fcams}
    if bg_threshold != INSTANCE_BG:  # records written before the option existed stay valid at the default
        record["instance_bg"] = bg_threshold
    if instance_norm != "frame":  # the same for IRN's normalisation
        record["instance_norm"] = instance_norm
    if split_ncut:  # and without a split (records made before the option existed)
        record["instance_split"] = split_ncut
    return record


SETTINGS = "settings.json"
"""The settings the pseudo-labels of a folder were made with (instance_bg, instance_norm, instance_split)."""


def recorded_settings(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The settings of the pseudo-labels in ``out_dir``, or ``{}``.

    ``{"instance_bg": float, "instance_norm": str, "instance_split": float}``.

    The plugin's Pipeline dock labels one video at a time into a project that
    ``vis-ws pseudo-labels`` may have started: it reads these so its videos
    are made, and the others kept, with the same settings. Folders written
    before :data:`SETTINGS` existed give the per-video records' value.
    """
    out = Path(out_dir)
    candidates = [out / SETTINGS, *sorted(out.glob("*/pseudo.json"))]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            rec = read_json(path)
        except InputError:
            continue
        if isinstance(rec, dict):  # a video's record holds each setting only when it is not IRN's
            bg, norm = rec.get("instance_bg", INSTANCE_BG), rec.get("instance_norm", "frame")
            split = float(rec.get("instance_split", 0.0))
            return {"instance_bg": float(bg), "instance_norm": str(norm), "instance_split": split}
    return {}


@dataclass(frozen=True)
class IrnMaps:
    """What IRN saw in a video, on the frame's stride-:data:`STRIDE` grid (the viewer's layers).

    Attributes
    ----------
    boundary : (T, h, w) float32
        Class-boundary map B, 0..1.
    displacement : (T, 2, h, w) float32
        Displacement field D (dy, dx) in grid pixels.
    centroids : (M, 3) float32
        Rows (t, y, x) in image pixels, one per instance group.
    stride : int
        Grid pixel (i, j) is image pixel (stride i, stride j).
    """

    boundary: np.ndarray
    displacement: np.ndarray
    centroids: np.ndarray
    stride: int = STRIDE


def write_irn_maps(out_dir: Path, key: str, maps: IrnMaps) -> None:
    """Write ``out_dir/<key>/irn.npz`` (float16 maps, float32 centroids), atomically."""
    write_npz(
        out_dir / key / IRN_MAPS,
        boundary=maps.boundary.astype(np.float16),
        displacement=maps.displacement.astype(np.float16),
        centroids=maps.centroids.astype(np.float32),
    )


def read_irn_maps(out_dir: str | os.PathLike, key: str) -> IrnMaps | None:
    """The IRN maps of video ``key`` in a pseudo-label folder, or None when it has none.

    Raises
    ------
    InputError
        A file that is not the maps :func:`write_irn_maps` writes.
    """
    path = Path(out_dir) / key / IRN_MAPS
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            maps = IrnMaps(*(z[k].astype(np.float32) for k in ("boundary", "displacement", "centroids")))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(path, f"not IRN maps of 'vis-ws pseudo-labels' ({type(exc).__name__}: {exc})") from None
    b, d, c = maps.boundary, maps.displacement, maps.centroids
    if b.ndim != 3 or d.shape != (b.shape[0], 2, *b.shape[1:]) or c.ndim != 2 or c.shape[1] != 3:
        shapes = f"boundary {b.shape}, displacement {d.shape}, centroids {c.shape}"
        raise InputError(path, f"IRN maps of mismatched shapes ({shapes})")
    return maps


def _video_done(out: Path, key: str, record: dict[str, Any]) -> bool:
    rec = out / key / "pseudo.json"
    if not (rec.is_file() and (out / key / "pseudo.npz").is_file() and (out / key / IRN_MAPS).is_file()):
        return False
    try:
        return read_json(rec) == record
    except InputError:
        return False


def make_pseudo_labels(
    tags_path: str | os.PathLike,
    irn_run: str | os.PathLike,
    cams_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    use_fcams: bool = True,
    frames: str | os.PathLike | None = None,
    device: str = "auto",
    video_ids: list[int] | None = None,
    bg_threshold: float | None = None,
    instance_norm: str | None = None,
    instance_split: float | None = None,
) -> Iterator[Progress]:
    """Write the instance pseudo-labels of every frame of a tags file; a generator of progress events.

    Parameters
    ----------
    tags_path : path
        Frame-tags JSON.
    irn_run : path
        ``train-irn`` run folder.
    cams_dir : path
        ``vis-ws cams`` output (f-CAMs used when present and ``use_fcams``).
    out_dir : path
        See the module docstring.
    use_fcams : bool
        Use the f-CAMs (flowIRN) instead of the CAMs (IRN).
    frames : path, optional
    device : str
    video_ids : list of int, optional
        Only these videos; the set-wide JSON files list every video done so far.
    bg_threshold : float or None
        Background score of the instance argmax, in (0, 1) (IRN's ``ins_seg_bg_thres``, 0.25). A
        higher one keeps only the strongest part of each propagated CAM: tighter masks, fewer
        instances. Videos done at another value are redone. None: :func:`default_instance_bg`.
    instance_norm : {"frame", "class"} or None
        What the propagated scores are divided by before that comparison: the frame's
        maximum (IRN) or each tagged class's (:data:`~training.irn.inference.INSTANCE_NORMS`).
        Videos done with another are redone. None: :func:`default_instance_norm`.
    instance_split : float or None
        Normalized-cut threshold below which a pseudo-label is split in two
        touching instances (:mod:`training.irn.ncut`); 0: no split (IRN).
        Videos done with another are redone. None: :func:`default_instance_split`.

    Yields
    ------
    Progress, one per frame (of this rank's videos).

    Raises
    ------
    InputError
        Bad tags, missing CAMs for a frame, a run that is not a train-irn run.
        A ``bg_threshold`` outside (0, 1), an unknown ``instance_norm``, an ``instance_split`` outside [0, 2].
    """
    from training.irn.train import load_irn_run

    if bg_threshold is None:
        bg_threshold = default_instance_bg(irn_run)
    check_instance_bg(bg_threshold)
    if instance_norm is None:
        instance_norm = default_instance_norm(irn_run)
    check_instance_norm(instance_norm)
    if instance_split is None:
        instance_split = default_instance_split(irn_run)
    check_instance_split(instance_split)

    tags = load_tags(tags_path)
    out, irn_run = Path(out_dir), Path(irn_run)
    rank, world = rank_world()
    dev = rank_device(resolve_device(device))
    model, categories = load_irn_run(irn_run, dev)
    working_size = recorded_working_size(irn_run)
    record = _record(irn_run, use_fcams, bg_threshold, instance_norm, instance_split)
    if rank == 0:
        settings = {"instance_bg": bg_threshold, "instance_norm": instance_norm, "instance_split": instance_split}
        write_json(out / SETTINGS, settings)
    sources = shard(list(iter_videos(tags_path, frames, video_ids)), rank, world)
    total = sum(len(s.reader) for s in sources)
    done = 0
    for src in sources:
        n = len(src.reader)
        if _video_done(out, src.key, record):
            done += n
            yield Progress(STAGE, done, total, "frame", message=f"{src.key}: already done, skipped")
            continue
        h, w = src.reader.frame_shape
        scale = working_scale((h, w), working_size)
        gh, gw = (h - 1) // STRIDE + 1, (w - 1) // STRIDE + 1
        labels = np.zeros((n, h, w), np.int32)
        boundary = np.zeros((n, gh, gw), np.float16)
        displacement = np.zeros((n, 2, gh, gw), np.float16)
        points, cats, scores = [], {}, {}
        next_id = 1
        for t in range(n):
            maps = read_frame_cams(cams_dir, src.key, t)
            cams = maps.fcams if use_fcams and maps.fcams is not None else maps.cams
            image = src.reader.read(t)
            instances, b, d, centroids = frame_pseudo_labels(
                model, image, cams, maps.keys, dev, bg_threshold, scale, instance_norm, instance_split
            )
            labels[t], ids = paint_instances(instances, (h, w), next_id)
            for k, inst in zip(ids, instances, strict=True):
                cats[k], scores[k] = int(inst.key), float(inst.score)
            next_id += len(instances)
            boundary[t] = resize_maps(b[None], (gh, gw))[0]  # the viewer's maps: on the frame's grid
            displacement[t] = resize_maps(d, (gh, gw)) / scale
            points.append(centroid_points(d, t, scale, centroids))
            done += 1
            yield Progress(STAGE, done, total, "frame", {"instances": float(len(instances))})
        volume = LabelVolume(labels, cats, scores, dict(src.video))
        save_labels(out / src.key / "pseudo.npz", volume)
        write_irn_maps(out, src.key, IrnMaps(boundary, displacement, np.concatenate(points)))
        write_json(out / src.key / "pseudo.json", record)  # last: marks the video done
        yield Progress(STAGE, done, total, "frame", message=f"{src.key}: {len(cats)} instances in {n} frames")
    barrier()  # every rank's videos are written
    if rank != 0:
        return
    done_keys = [s.key for s in iter_videos(tags_path, frames) if _video_done(out, s.key, record)]
    volumes = [load_labels(out / key / "pseudo.npz") for key in done_keys]
    write_pseudo_label_json(out, volumes, tags["categories"])


def write_pseudo_label_json(out: Path, volumes: list[LabelVolume], categories: list[dict[str, Any]]) -> None:
    """``pseudo_labels.json`` (YouTube-VIS results) and ``pseudo_labels.coco.json`` (COCO results)."""
    ytvis: list[dict[str, Any]] = []
    coco: list[dict[str, Any]] = []
    for v in volumes:
        ytvis += labels_to_ytvis(v, "results")
    first_image = 1
    for v in volumes:
        images, anns = labels_to_coco(v, "results", first_image_id=first_image)
        coco += anns
        first_image += len(images)
    write_json(out / "pseudo_labels.json", ytvis)
    write_json(out / "pseudo_labels.coco.json", coco)
