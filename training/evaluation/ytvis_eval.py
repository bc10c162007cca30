"""YouTube-VIS video AP (METHOD.md §8), our implementation of the official protocol.

The numbers agree with the official evaluator (youtubevos/cocoapi ``ytvoseval.py``
after ``YTVOS.loadRes``) including its quirks, because published results are
compared against it:

- Tube IoU sums per-frame intersections and unions over the frames the two
  tubes share (the shorter list wins); a frame where only one tube is present
  adds its area to the union. A frame is present when its segmentation is
  truthy, so a zero-area RLE is present (it changes nothing numerically).
- Crowd ground truth is compared with the plain tube IoU (not COCO's crowd
  IoU), is ignored for scoring and may absorb several detections.
- Area ranges test the mean of the non-zero per-frame areas: ground truth
  reads them from the JSON ``areas``, results compute them from their RLEs.
  Range bounds are inclusive on both sides, so a boundary area is in two ranges.
- Everything after the IoU matrix is COCO's ``evaluateImg``/``accumulate``/
  ``summarize`` with a video in place of an image: greedy matching per IoU
  threshold, 101-point interpolated precision, -1 where a category has no
  ground truth in a setting.

Pipeline: :func:`~training.evaluation.tubes.load_gt_tubes` and
:func:`~training.evaluation.tubes.load_result_tubes` parse the JSON,
:func:`tube_iou` builds the IoU matrix of one (video, category),
:func:`match_detections` matches it for one area range, :func:`precision_recall`
accumulates a category and :func:`summarize` averages into the 12 stats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

from training.evaluation.tubes import RLE, Tube, category_ids, load_gt_tubes, load_result_tubes, rle_areas, video_sizes

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
# Bounds on the mean per-frame area, both inclusive (as in the official evaluator).
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10),
    "small": (0.0, 128.0**2),
    "medium": (128.0**2, 256.0**2),
    "large": (256.0**2, 1e10),
}


class StatSpec(NamedTuple):
    """How one summary number is read off the precision / recall tables."""

    name: str
    is_ap: bool
    iou: float | None  # None: mean over all IoU thresholds
    area: str
    max_dets: int


STAT_SPECS: tuple[StatSpec, ...] = (
    StatSpec("AP", True, None, "all", 100),
    StatSpec("AP50", True, 0.5, "all", 100),
    StatSpec("AP75", True, 0.75, "all", 100),
    StatSpec("AP_small", True, None, "small", 100),
    StatSpec("AP_medium", True, None, "medium", 100),
    StatSpec("AP_large", True, None, "large", 100),
    StatSpec("AR1", False, None, "all", 1),
    StatSpec("AR10", False, None, "all", 10),
    StatSpec("AR100", False, None, "all", 100),
    StatSpec("AR_small", False, None, "small", 100),
    StatSpec("AR_medium", False, None, "medium", 100),
    StatSpec("AR_large", False, None, "large", 100),
)
STAT_NAMES: tuple[str, ...] = tuple(s.name for s in STAT_SPECS)


def _area_table(frames: Sequence[Sequence[RLE | None]], n_frames: int) -> np.ndarray:
    """(N, n_frames) float64 pixel counts, 0 where absent or past a tube's end."""
    table = np.zeros((len(frames), n_frames))
    for i, tube in enumerate(frames):
        for t, area in enumerate(rle_areas(tube)):
            table[i, t] = area or 0.0
    return table


def tube_iou(dt_frames: Sequence[Sequence[RLE | None]], gt_frames: Sequence[Sequence[RLE | None]]) -> np.ndarray:
    """Video IoU of every (detection, ground truth) pair.

    IoU = sum_t |d_t ∩ g_t| / sum_t |d_t ∪ g_t| over the frames both lists
    have (the official ``zip`` truncation); an absent frame is an empty mask,
    so a frame where only one tube is present adds that tube's area to the
    union. 0 when the union is empty.

    Parameters
    ----------
    dt_frames : sequence of D per-frame RLE lists (None = absent)
    gt_frames : sequence of G per-frame RLE lists (None = absent)

    Returns
    -------
    ious : (D, G) float64

    Raises
    ------
    ValueError
        Two RLEs of one frame have different sizes (loaders check this first).
    """
    n_dt, n_gt = len(dt_frames), len(gt_frames)
    if n_dt == 0 or n_gt == 0:
        return np.zeros((n_dt, n_gt))
    dt_len = np.array([len(f) for f in dt_frames])
    gt_len = np.array([len(f) for f in gt_frames])
    n_frames = int(max(dt_len.max(), gt_len.max()))
    dt_area = _area_table(dt_frames, n_frames)
    gt_area = _area_table(gt_frames, n_frames)

    inter = np.zeros((n_dt, n_gt))
    for t in range(n_frames):
        di = [i for i, f in enumerate(dt_frames) if t < len(f) and f[t] is not None]
        gi = [j for j, f in enumerate(gt_frames) if t < len(f) and f[t] is not None]
        if not di or not gi:
            continue
        # pycocotools' crowd IoU is |d ∩ g| / |d|: one C call gives every
        # intersection of the frame without decoding a mask.
        dt_rles = [dt_frames[i][t] for i in di]
        gt_rles = [gt_frames[j][t] for j in gi]
        cover = np.asarray(mask_utils.iou(dt_rles, gt_rles, [1] * len(gi)))
        if (cover < 0).any():  # pycocotools' answer to RLEs of different sizes
            raise ValueError(f"frame {t}: segmentations of different sizes")
        inter[np.ix_(di, gi)] += np.rint(cover * dt_area[di, t][:, None])

    # Frames past the end of the shorter list do not count (zip truncation).
    shared = np.minimum(dt_len[:, None], gt_len[None, :])
    dt_cum = np.concatenate([np.zeros((n_dt, 1)), np.cumsum(dt_area, axis=1)], axis=1)
    gt_cum = np.concatenate([np.zeros((n_gt, 1)), np.cumsum(gt_area, axis=1)], axis=1)
    dt_part = dt_cum[np.arange(n_dt)[:, None], shared]
    gt_part = gt_cum[np.arange(n_gt)[None, :], shared]
    union = dt_part + gt_part - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_detections(
    ious: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """COCO's greedy matching, for all IoU thresholds at once.

    Detections, best score first, each take the free ground truth of highest
    IoU >= threshold; ties go to the later one (COCO's scan replaces on >=).
    Regular ground truth is preferred: an ignored one is only taken when no
    regular one qualifies. Crowd ground truth stays free after a match.

    Parameters
    ----------
    ious : (D, G) float64
        Detections sorted by descending score.
    gt_ignore : (G,) bool
        Crowd or outside the area range.
    gt_crowd : (G,) bool
    iou_thresholds : (T,) float64

    Returns
    -------
    match : (T, D) int64
        Matched ground-truth index per threshold, -1 when unmatched.
    """
    n_thr = len(iou_thresholds)
    n_dt, n_gt = ious.shape
    match = np.full((n_thr, n_dt), -1, dtype=np.int64)
    if n_dt == 0 or n_gt == 0:
        return match
    # COCO caps the threshold just below 1 so an IoU of exactly 1 passes at t = 1.
    thr = np.minimum(iou_thresholds, 1 - 1e-10)[:, None]
    taken = np.zeros((n_thr, n_gt), dtype=bool)
    groups = [g for g in (~gt_ignore, gt_ignore) if g.any()]
    rows = np.arange(n_thr)
    # Only detections reaching the lowest threshold somewhere can match at all.
    for d in np.flatnonzero((ious >= thr.min()).any(axis=1)):
        free = (~taken | gt_crowd) & (ious[d] >= thr)  # (T, G)
        best = np.full(n_thr, -1, dtype=np.int64)
        for group in groups:
            cand = free & group & (best < 0)[:, None]
            vals = np.where(cand, ious[d], -np.inf)
            last_max = n_gt - 1 - np.argmax(vals[:, ::-1], axis=1)
            best = np.where(cand.any(axis=1), last_max, best)
        match[:, d] = best
        hit = best >= 0
        taken[rows[hit], best[hit]] = True
    return match


@dataclass(frozen=True)
class CellResult:
    """Matching of one (video, category, area range): what accumulation needs.

    Attributes
    ----------
    scores : (D,) float64, descending
    matched : (T, D) bool
        True positive candidates (matched to a ground truth).
    ignored : (T, D) bool
        Detections that count neither as true nor as false positives.
    n_gt : int
        Ground truths that count (not crowd, inside the area range).
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    n_gt: int


def evaluate_cell(
    ious: np.ndarray, gts: Sequence[Tube], dts: Sequence[Tube], area_range: tuple[float, float]
) -> CellResult:
    """Match the detections of one (video, category) for one area range.

    Parameters
    ----------
    ious : (D, G) float64
        From :func:`tube_iou`, rows in the order of ``dts``.
    gts : G ground-truth tubes
    dts : D result tubes, sorted by descending score
    area_range : (lo, hi), both inclusive

    Returns
    -------
    CellResult
    """
    lo, hi = area_range
    gt_area = np.array([g.avg_area for g in gts])
    gt_crowd = np.array([g.iscrowd for g in gts], dtype=bool)
    gt_ignore = gt_crowd | (gt_area < lo) | (gt_area > hi)
    dt_area = np.array([d.avg_area for d in dts])
    dt_outside = (dt_area < lo) | (dt_area > hi)

    match = match_detections(ious, gt_ignore, gt_crowd)
    hit = match >= 0
    if len(gts):
        safe = np.where(hit, match, 0)
        # The official evaluator records the matched gt *id* and reads id 0 as
        # "unmatched"; kept so that we agree with it on such files.
        gt_ids = np.array([g.id for g in gts])
        matched = hit & (gt_ids[safe] != 0)
        ignored = (hit & gt_ignore[safe]) | (~matched & dt_outside[None, :])
    else:
        matched = hit
        ignored = np.repeat(dt_outside[None, :], len(match), axis=0)
    return CellResult(
        scores=np.array([d.score for d in dts], dtype=np.float64),
        matched=matched,
        ignored=ignored,
        n_gt=int((~gt_ignore).sum()),
    )


def precision_recall(
    scores: np.ndarray,
    matched: np.ndarray,
    ignored: np.ndarray,
    n_gt: int,
    recall_thresholds: np.ndarray = RECALL_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision and final recall of one (category, area, maxDets).

    Parameters
    ----------
    scores : (N,) float64
        Detections of all videos, concatenated in video-id order.
    matched, ignored : (T, N) bool
    n_gt : int
        Counted ground truths, > 0.
    recall_thresholds : (R,) float64

    Returns
    -------
    precision : (T, R) float64
        Precision envelope at each recall threshold, 0 past the last recall.
    recall : (T,) float64
        Recall after all detections.
    """
    n_thr, n = matched.shape
    precision = np.zeros((n_thr, len(recall_thresholds)))
    if n == 0:
        return precision, np.zeros(n_thr)
    # Stable sort so tied scores keep video order, then within-video order (as COCO).
    order = np.argsort(-scores, kind="mergesort")
    counted = ~ignored[:, order]
    tp = np.cumsum(matched[:, order] & counted, axis=1).astype(np.float64)
    fp = np.cumsum(~matched[:, order] & counted, axis=1).astype(np.float64)
    rc = tp / n_gt
    pr = tp / (fp + tp + np.spacing(1))
    # Envelope: the best precision reachable at this recall or beyond.
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    for t in range(n_thr):
        idx = np.searchsorted(rc[t], recall_thresholds, side="left")
        ok = idx < n
        precision[t, ok] = pr[t, idx[ok]]
    return precision, rc[:, -1].copy()


def _top_detections(dts: Sequence[Tube], max_det: int) -> list[Tube]:
    """Best-scored first (stable, as mergesort) and cut to ``max_det``."""
    return sorted(dts, key=lambda d: -d.score)[:max_det]


def accumulate(
    gt_tubes: Sequence[Tube],
    dt_tubes: Sequence[Tube],
    video_ids: Sequence[int],
    cat_ids: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall tables over all videos, per category and setting.

    Returns
    -------
    precision : (T, R, K, A, M) float64
        -1 where the category has no counted ground truth in that area range.
    recall : (T, K, A, M) float64
        Same convention.
    """
    by_cell_gt: dict[tuple[int, int], list[Tube]] = defaultdict(list)
    by_cell_dt: dict[tuple[int, int], list[Tube]] = defaultdict(list)
    for g in gt_tubes:
        by_cell_gt[g.video_id, g.category_id].append(g)
    for d in dt_tubes:
        by_cell_dt[d.video_id, d.category_id].append(d)

    areas = list(AREA_RANGES.values())
    n_thr, n_rec = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    shape = (len(cat_ids), len(areas), len(MAX_DETS))
    precision = -np.ones((n_thr, n_rec, *shape))
    recall = -np.ones((n_thr, *shape))
    for k, cat in enumerate(cat_ids):
        cells: list[list[CellResult]] = [[] for _ in areas]
        for vid in sorted(video_ids):
            gts = by_cell_gt.get((vid, cat), [])
            dts = _top_detections(by_cell_dt.get((vid, cat), []), MAX_DETS[-1])
            if not gts and not dts:
                continue
            ious = tube_iou([d.frames for d in dts], [g.frames for g in gts])
            for a, rng in enumerate(areas):
                cells[a].append(evaluate_cell(ious, gts, dts, rng))
        for a, cell in enumerate(cells):
            n_gt = sum(c.n_gt for c in cell)
            if n_gt == 0:
                continue
            for m, max_det in enumerate(MAX_DETS):
                precision[:, :, k, a, m], recall[:, k, a, m] = precision_recall(
                    np.concatenate([c.scores[:max_det] for c in cell]),
                    np.concatenate([c.matched[:, :max_det] for c in cell], axis=1),
                    np.concatenate([c.ignored[:, :max_det] for c in cell], axis=1),
                    n_gt,
                )
    return precision, recall


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The 12 COCO summary numbers: mean over the entries > -1, -1 if none.

    Parameters
    ----------
    precision : (T, R, K, A, M) float64
    recall : (T, K, A, M) float64

    Returns
    -------
    stats : dict
        Keys :data:`STAT_NAMES`, in that order.
    """
    area_names = list(AREA_RANGES)
    stats = {}
    for spec in STAT_SPECS:
        a, m = area_names.index(spec.area), MAX_DETS.index(spec.max_dets)
        table = precision[..., a, m] if spec.is_ap else recall[..., a, m]
        if spec.iou is not None:
            table = table[IOU_THRESHOLDS == spec.iou]
        valid = table[table > -1]
        stats[spec.name] = float(valid.mean()) if valid.size else -1.0
    return stats


def evaluate_ytvis(
    gt: dict,
    results: list[dict],
    gt_path: str | None = None,
    results_path: str | None = None,
) -> dict[str, float]:
    """YouTube-VIS 2019 video AP of ``results`` against ``gt``.

    Parameters
    ----------
    gt : dict
        Parsed ground-truth JSON (``videos``, ``categories``, ``annotations``).
    results : list of dict
        ``{video_id, category_id, score, segmentations}``, one RLE (or null)
        per frame. Results of categories absent from ``gt`` are ignored.
    gt_path, results_path : str or None
        Named in error messages.

    Returns
    -------
    stats : dict
        The 12 :data:`STAT_NAMES` as floats; -1 where no category has counted
        ground truth in that setting. Evaluated over every ground-truth video
        and category; an empty ``results`` gives 0 (not an error).

    Raises
    ------
    InputError
        One line naming the file: a result for a video not in ``gt``, a
        result missing keys or with an RLE of the wrong size, malformed ``gt``.
    """
    gt_tubes = load_gt_tubes(gt, gt_path)
    sizes = video_sizes(gt, gt_path)
    dt_tubes = load_result_tubes(results, sizes, results_path, gt_path)
    precision, recall = accumulate(gt_tubes, dt_tubes, list(sizes), category_ids(gt, gt_path))
    return summarize(precision, recall)


def format_table(stats: Mapping[str, float]) -> str:
    """COCO-style summary, one line per stat, e.g.

    `` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.123``
    """
    lines = []
    for spec in STAT_SPECS:
        title, kind = ("Average Precision", "(AP)") if spec.is_ap else ("Average Recall", "(AR)")
        iou = "0.50:0.95" if spec.iou is None else f"{spec.iou:0.2f}"
        lines.append(
            f" {title:<18} {kind} @[ IoU={iou:<9} | area={spec.area:>6s} | "
            f"maxDets={spec.max_dets:>3d} ] = {stats[spec.name]:0.3f}"
        )
    return "\n".join(lines)
