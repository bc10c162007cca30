"""Corrections of instance pseudo-labels: pure functions on a (T, H, W) label volume.

Every operation that changes pixels returns an :class:`Edit` (the pixels that
change and their new ids) instead of a modified copy of the volume, so a
viewer can apply it as one undoable step and a script can apply it with
:meth:`Edit.apply`. Instance tables are the per-id columns of a Labels layer's
``features`` as a dict of lists (``index``, ``class``, ``category_id``,
``score``, ``frames``), the same table :func:`napari_vis_ws._layers.labels_features`
builds.

New ids are never reused: an operation that creates instances takes the first
free id from the caller (``first_id``), who knows every id still referenced
(an undo may bring back an id that has no pixels right now).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line

from training.export import LabelVolume
from training.flow.warp import warp

Table = dict[str, list[Any]]
Direction = Literal["forward", "backward"]
_FOUR = ndimage.generate_binary_structure(2, 1)  # 4-connectivity


@dataclass(frozen=True)
class Edit:
    """Pixel changes to a (T, H, W) label volume.

    Attributes
    ----------
    index : tuple of three (P,) intp arrays
        (t, y, x) of every pixel that changes, as ``Labels.data_setitem`` takes them.
    values : (P,) int32
        The new id of each of those pixels.
    new_ids : tuple of int
        Ids this edit creates (not present before).
    """

    index: tuple[np.ndarray, np.ndarray, np.ndarray]
    values: np.ndarray
    new_ids: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        """Number of pixels that change."""
        return int(self.values.size)

    @property
    def frames(self) -> list[int]:
        """Sorted frames with at least one changed pixel."""
        return np.unique(self.index[0]).tolist()

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """A copy of ``labels`` (T, H, W) with the edit applied."""
        out = np.array(labels, copy=True)
        out[self.index] = self.values
        return out


def _empty_edit() -> Edit:
    z = np.zeros(0, np.intp)
    return Edit((z, z.copy(), z.copy()), np.zeros(0, np.int32))


def _where_edit(where: np.ndarray, value: int, new_ids: tuple[int, ...] = ()) -> Edit:
    """Every pixel of the (T, H, W) bool ``where`` → ``value``."""
    t, y, x = (i.astype(np.intp) for i in np.nonzero(where))
    return Edit((t, y, x), np.full(t.size, value, np.int32), new_ids)


def frame_edit(labels: np.ndarray, frames: dict[int, np.ndarray], new_ids: Iterable[int] = ()) -> Edit:
    """The edit that replaces whole frames of ``labels``.

    Parameters
    ----------
    labels : (T, H, W) int
    frames : dict frame index → (H, W) int, the frame's new content
    new_ids : ids created by the change

    Returns
    -------
    Edit with only the pixels that differ.
    """
    ts, ys, xs, vals = [], [], [], []
    for t in sorted(frames):
        new = np.asarray(frames[t])
        y, x = np.nonzero(labels[t] != new)
        ts.append(np.full(y.size, t, np.intp))
        ys.append(y)
        xs.append(x)
        vals.append(new[y, x].astype(np.int32))
    if not ts:
        return _empty_edit()
    index = (np.concatenate(ts), np.concatenate(ys).astype(np.intp), np.concatenate(xs).astype(np.intp))
    return Edit(index, np.concatenate(vals), tuple(int(i) for i in new_ids))


def next_id(labels: np.ndarray, used: Iterable[int] = ()) -> int:
    """The first id above every id in ``labels`` and in ``used``."""
    top = max([int(np.max(labels)) if np.size(labels) else 0, *[int(u) for u in used]])
    return top + 1


# -- instance statistics -------------------------------------------------------
@dataclass(frozen=True)
class InstanceAreas:
    """Pixel count of every instance in every frame.

    Attributes
    ----------
    ids : (N,) int64, sorted non-zero ids present somewhere
    areas : (T, N) int64, ``areas[t, i]`` pixels of ``ids[i]`` in frame t
    """

    ids: np.ndarray
    areas: np.ndarray

    def frames_of(self, k: int) -> list[int]:
        """Frames where instance ``k`` has pixels."""
        col = np.searchsorted(self.ids, k)
        if col >= self.ids.size or self.ids[col] != k:
            return []
        return np.nonzero(self.areas[:, col])[0].tolist()

    @property
    def counts(self) -> np.ndarray:
        """(T,) number of instances present in each frame."""
        return (self.areas > 0).sum(axis=1)


def instance_areas(labels: np.ndarray) -> InstanceAreas:
    """Per-frame pixel counts of every instance of a (T, H, W) volume (one bincount per frame)."""
    per_frame: list[dict[int, int]] = []
    for frame in labels:
        flat = np.asarray(frame).ravel()
        if flat.size and flat.min() < 0:
            raise ValueError("labels must be non-negative instance ids")
        bc = np.bincount(flat) if flat.size else np.zeros(1, np.int64)
        nz = np.nonzero(bc)[0]
        per_frame.append({int(i): int(bc[i]) for i in nz if i != 0})
    ids = np.array(sorted(set().union(*per_frame)) if per_frame else [], np.int64)
    areas = np.zeros((len(per_frame), ids.size), np.int64)
    col = {int(k): i for i, k in enumerate(ids)}
    for t, d in enumerate(per_frame):
        for k, a in d.items():
            areas[t, col[k]] = a
    return InstanceAreas(ids, areas)


def frame_ranges(frames: Iterable[int]) -> str:
    """Frames as compact ranges: ``[0, 1, 2, 5, 7, 8] → "0-2, 5, 7-8"``."""
    fs = sorted(set(int(f) for f in frames))
    parts: list[str] = []
    i = 0
    while i < len(fs):
        j = i
        while j + 1 < len(fs) and fs[j + 1] == fs[j] + 1:
            j += 1
        parts.append(str(fs[i]) if i == j else f"{fs[i]}-{fs[j]}")
        i = j + 1
    return ", ".join(parts)


# -- instance table (features level) --------------------------------------------
def _row(table: Table, k: int) -> int:
    try:
        return [int(v) for v in table["index"]].index(int(k))
    except ValueError:
        raise ValueError(f"instance {k} has no row in the instance table") from None


def add_instances(table: Table, source: int, new_ids: Sequence[int], **values: Any) -> Table:
    """A copy of ``table`` with one row per new id, copied from ``source``'s row.

    Parameters
    ----------
    table : dict column → list, with an ``index`` column of ids
    source : id whose row is copied (class, category, score, ...)
    new_ids : ids to add (an id that already has a row is overwritten)
    **values : columns to set in the new rows instead of copying them

    Returns
    -------
    dict column → list, rows in ``index`` order.
    """
    _row(table, source)  # raises when ``source`` has no row
    rows = {int(k): {c: table[c][i] for c in table} for i, k in enumerate(table["index"])}
    for k in new_ids:
        rows[int(k)] = {**rows[int(source)], **values, "index": int(k)}
    return {c: [rows[k][c] for k in sorted(rows)] for c in table}


def complete_table(table: Table, ids: Iterable[int], category_id: int, class_name: str) -> Table:
    """A copy of ``table`` with a row for every id in ``ids`` that has none.

    New rows (e.g. for an id painted by hand) get the given class, score 1.0
    (a manual label) and empty values in the other columns.

    Parameters
    ----------
    table : instance table; at least ``index``, ``class``, ``category_id``, ``score``
    ids : ids that need a row
    category_id, class_name : class of the new rows
    """
    have = {int(k) for k in table["index"]}
    missing = sorted({int(k) for k in ids} - have)
    if not missing:
        return {c: list(v) for c, v in table.items()}
    defaults: dict[str, Any] = {"class": class_name, "category_id": int(category_id), "score": 1.0, "frames": 0}
    rows = {int(k): {c: table[c][i] for c in table} for i, k in enumerate(table["index"])}
    for k in missing:
        rows[k] = {c: defaults.get(c) for c in table} | {"index": k}
    return {c: [rows[k][c] for k in sorted(rows)] for c in table}


def relabel_class(
    labels: np.ndarray, table: Table, k: int, category_id: int, class_name: str, new_id: int | None = None
) -> tuple[Edit, Table]:
    """Give instance ``k`` another class.

    The instance moves to a new id whose table row carries the new class
    (score and other columns copied from ``k``); ``k``'s row is kept. The
    class change is therefore a pixel edit, which a viewer's undo reverts
    together with the class.

    Parameters
    ----------
    labels : (T, H, W) int
    table : instance table (see the module docstring)
    k : the instance to re-class
    category_id, class_name : its new class
    new_id : the id to move it to (default :func:`next_id` of labels and table)

    Returns
    -------
    edit : Edit, every pixel of ``k`` → ``new_id``
    table : the table with ``new_id``'s row added
    """
    if not np.any(labels == k):
        raise ValueError(f"instance {k} has no pixels to re-class")
    new = next_id(labels, table["index"]) if new_id is None else int(new_id)
    edit = _where_edit(labels == k, new, (new,))
    return edit, add_instances(table, k, [new], category_id=int(category_id), **{"class": class_name})


# -- pixel operations ------------------------------------------------------------
def merge_instances(labels: np.ndarray, keep: int, drop: int | Sequence[int]) -> Edit:
    """Merge instances into ``keep``: every pixel of ``drop`` becomes ``keep``.

    Parameters
    ----------
    labels : (T, H, W) int
    keep : id that stays
    drop : id or ids that disappear

    Returns
    -------
    Edit (empty when ``drop`` has no pixels).
    """
    drops = [int(d) for d in np.atleast_1d(drop) if int(d) != int(keep)]
    if int(keep) == 0 or 0 in drops:
        raise ValueError("cannot merge with the background (id 0)")
    return _where_edit(np.isin(labels, drops), int(keep))


def delete_instance(labels: np.ndarray, k: int, frames: Iterable[int] | None = None) -> Edit:
    """Erase instance ``k`` (set its pixels to 0) in ``frames`` (default: every frame)."""
    fs = range(labels.shape[0]) if frames is None else sorted(set(int(f) for f in frames))
    return frame_edit(labels, {t: np.where(labels[t] == k, 0, labels[t]) for t in fs if np.any(labels[t] == k)})


def _relabel_pieces(frame: np.ndarray, k: int, pieces: np.ndarray, groups: list[list[int]], first_id: int):
    """Largest piece of each group keeps ``k``, the others take ids from ``first_id`` (largest first)."""
    sizes = np.bincount(pieces.ravel())
    out = frame.copy()
    others = []
    for group in groups:
        ordered = sorted(group, key=lambda p: (-sizes[p], p))
        others += ordered[1:]
    others.sort(key=lambda p: (-sizes[p], p))
    new_ids = list(range(first_id, first_id + len(others)))
    for p, nid in zip(others, new_ids, strict=True):
        out[pieces == p] = nid
    return out, new_ids


def split_components(labels: np.ndarray, k: int, t: int, first_id: int | None = None) -> tuple[Edit, list[int]]:
    """Split instance ``k`` in frame ``t`` into its 4-connected components.

    The largest component keeps ``k`` (so the instance goes on in the other
    frames); every other component gets a new id, the larger first.

    Parameters
    ----------
    labels : (T, H, W) int
    k : instance id
    t : frame index
    first_id : first new id (default :func:`next_id` of ``labels``)

    Returns
    -------
    edit : Edit (empty when ``k`` is in one piece in frame ``t``)
    new_ids : list of int, the ids given to the other components
    """
    mask = labels[t] == k
    if not mask.any():
        raise ValueError(f"instance {k} has no pixels in frame {t}")
    pieces, n = ndimage.label(mask, structure=_FOUR)
    if n < 2:
        return _empty_edit(), []
    first = next_id(labels) if first_id is None else int(first_id)
    frame, new_ids = _relabel_pieces(labels[t], k, pieces, [list(range(1, n + 1))], first)
    return frame_edit(labels, {t: frame}, new_ids), new_ids


def rasterize_polyline(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the 8-connected pixels of a polyline, clipped to the frame.

    Parameters
    ----------
    points : (M, 2) float, vertices (y, x) in pixels, M >= 2
    shape : (H, W)
    """
    pts = np.rint(np.asarray(points, dtype=np.float64)).astype(np.int64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ValueError(f"a cut needs at least two (y, x) points, got shape {pts.shape}")
    out = np.zeros(shape, bool)
    for (y0, x0), (y1, x1) in zip(pts[:-1], pts[1:], strict=True):
        rr, cc = draw_line(int(y0), int(x0), int(y1), int(x1))
        keep = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        out[rr[keep], cc[keep]] = True
    return out


def split_by_line(
    labels: np.ndarray, k: int, t: int, line_points: np.ndarray, first_id: int | None = None
) -> tuple[Edit, list[int]]:
    """Cut instance ``k`` in frame ``t`` along a drawn polyline.

    The line's pixels are removed from the mask; every connected piece of the
    mask that the line divides is split into its sides (4-connected parts).
    The largest side keeps ``k``, the other sides get new ids; the pixels on
    the line go to the nearest side. Pieces the line does not touch are kept.

    Parameters
    ----------
    labels : (T, H, W) int
    k, t : instance and frame
    line_points : (M, 2) float, (y, x) vertices of the cut
    first_id : first new id (default :func:`next_id` of ``labels``)

    Returns
    -------
    edit : Edit (empty when the line does not cut the mask in two)
    new_ids : list of int
    """
    mask = labels[t] == k
    if not mask.any():
        raise ValueError(f"instance {k} has no pixels in frame {t}")
    cut = rasterize_polyline(line_points, mask.shape) & mask
    whole, _ = ndimage.label(mask, structure=_FOUR)
    pieces, n = ndimage.label(mask & ~cut, structure=_FOUR)
    groups: dict[int, list[int]] = {}
    for p in range(1, n + 1):
        groups.setdefault(int(whole[pieces == p][0]), []).append(p)
    divided = [g for g in groups.values() if len(g) > 1]
    if not divided:
        return _empty_edit(), []
    if cut.any():  # line pixels join the nearest side
        _, (iy, ix) = ndimage.distance_transform_edt(pieces == 0, return_indices=True)
        nearest = pieces[iy, ix]
        pieces = np.where(cut, nearest, pieces)
    first = next_id(labels) if first_id is None else int(first_id)
    frame, new_ids = _relabel_pieces(labels[t], k, pieces, divided, first)
    return frame_edit(labels, {t: frame}, new_ids), new_ids


# -- propagation by optical flow -------------------------------------------------
class PairFlow(Protocol):
    """The flow of one video (``training.flow.VideoFlow`` is one)."""

    @property
    def n_frames(self) -> int: ...

    def forward(self, t: int) -> np.ndarray: ...

    def backward(self, t: int) -> np.ndarray: ...


@dataclass(frozen=True)
class PropagationStep:
    """What propagation did to one frame: pixels that became ``k`` and that stopped being ``k``."""

    frame: int
    added: int
    removed: int
    overlap: float


@dataclass(frozen=True)
class Propagation:
    """The result of :func:`propagate_mask`.

    Attributes
    ----------
    edit : Edit, the changes to every frame written
    steps : per frame written, in propagation order
    stopped_at : frame where propagation stopped for lack of evidence (None if it did not)
    stop_overlap : the overlap there
    reached_end : True when the video ended before ``n`` frames
    """

    edit: Edit
    steps: list[PropagationStep] = field(default_factory=list)
    stopped_at: int | None = None
    stop_overlap: float | None = None
    reached_end: bool = False

    @property
    def frames(self) -> list[int]:
        """Frames whose labels changed."""
        return self.edit.frames

    def summary(self) -> str:
        """One line, e.g. ``"frames 5-9: +312/-40 px, stopped at 10: overlap 0.31"``."""
        written = [s.frame for s in self.steps]
        added = sum(s.added for s in self.steps)
        removed = sum(s.removed for s in self.steps)
        if written:
            change = f"+{added}/-{removed} px" if added or removed else "no change"
            text = f"frames {frame_ranges(written)}: {change}"
        else:
            text = "no frame changed"
        if self.stopped_at is not None:
            text += f", stopped at {self.stopped_at}: overlap {self.stop_overlap:.2f}"
        elif self.reached_end:
            text += ", reached the end of the video"
        return text


def propagate_mask(
    labels: np.ndarray,
    k: int,
    t: int,
    flow: PairFlow,
    n: int,
    direction: Direction = "forward",
    evidence: np.ndarray | None = None,
    min_overlap: float = 0.5,
) -> Propagation:
    """Carry frame ``t``'s mask of instance ``k`` up to ``n`` frames along the optical flow.

    Step by step the mask is warped to the next frame (forward: with the
    backward flow of pair s-1, which samples frame s-1 from frame s; backward:
    with the forward flow of pair s), and there it replaces ``k``'s mask: its
    pixels become ``k`` (over any other instance), ``k``'s pixels outside it
    become background. Propagation stops before a frame where the warped
    mask's overlap with the evidence, ``|warped ∩ evidence| / |warped|``, is
    below ``min_overlap`` (the object left, was occluded, or the flow failed),
    and at the end of the video.

    Parameters
    ----------
    labels : (T, H, W) int
    k : instance id, present in frame ``t``
    t : source frame
    flow : the video's flow (T frames of the same H, W)
    n : number of frames to carry the mask over
    direction : "forward" (t+1, t+2, ...) or "backward" (t-1, t-2, ...)
    evidence : (T, H, W) bool, optional
        Foreground to check against; default: any instance in ``labels``.
    min_overlap : float in [0, 1]

    Returns
    -------
    Propagation (edit, per-frame steps, where and why it stopped)
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    n_t, h, w = labels.shape
    if flow.n_frames != n_t:
        raise ValueError(f"the flow has {flow.n_frames} frames but the labels have {n_t}")
    fh, fw = np.shape(flow.forward(0))[:2] if n_t > 1 else (h, w)
    if (fh, fw) != (h, w):
        raise ValueError(f"the flow is {fw}×{fh} but the labels are {w}×{h}")
    if evidence is not None and np.shape(evidence) != labels.shape:
        raise ValueError(f"evidence {np.shape(evidence)} must have the labels' shape {labels.shape}")
    mask = labels[t] == k
    if not mask.any():
        raise ValueError(f"instance {k} has no pixels in frame {t}")
    step = 1 if direction == "forward" else -1
    frames: dict[int, np.ndarray] = {}
    steps: list[PropagationStep] = []
    stopped_at, stop_overlap, reached_end = None, None, False
    for i in range(1, int(n) + 1):
        s = t + step * i
        if not 0 <= s < n_t:
            reached_end = True
            break
        pair_flow = flow.backward(s - 1) if step == 1 else flow.forward(s)
        warped = warp(mask.astype(np.uint8), pair_flow, mode="nearest", fill=0).astype(bool)
        ev = np.asarray(evidence[s], bool) if evidence is not None else labels[s] != 0
        area = int(warped.sum())
        overlap = float((warped & ev).sum() / area) if area else 0.0
        if overlap < min_overlap:
            stopped_at, stop_overlap = s, overlap
            break
        old = labels[s]
        new = np.where(warped, k, np.where(old == k, 0, old)).astype(labels.dtype)
        frames[s] = new
        was_k = old == k
        steps.append(PropagationStep(s, int((warped & ~was_k).sum()), int((was_k & ~warped).sum()), overlap))
        mask = warped
    return Propagation(frame_edit(labels, frames), steps, stopped_at, stop_overlap, reached_end)


# -- training targets --------------------------------------------------------------
def training_targets(pseudo: LabelVolume, corrected: LabelVolume, reviewed: Iterable[int]) -> LabelVolume:
    """Training targets: the corrected labels of reviewed frames, the pseudo-labels elsewhere.

    Ids are kept distinct: a corrected id keeps its number when the
    pseudo-labels do not use it or use it for the same category (the
    corrections started from these pseudo-labels, so it is the same
    instance); otherwise it is renumbered above every id of both volumes.

    Parameters
    ----------
    pseudo, corrected : LabelVolume of the same (T, H, W)
    reviewed : frames whose corrected labels are trusted

    Returns
    -------
    LabelVolume with the pseudo-labels' video entry; categories and scores of
    each id from the volume its pixels come from.
    """
    if pseudo.labels.shape != corrected.labels.shape:
        raise ValueError(f"pseudo-labels {pseudo.labels.shape} and corrections {corrected.labels.shape} differ")
    n_t = pseudo.labels.shape[0]
    frames = sorted(set(int(f) for f in reviewed))
    bad = [f for f in frames if not 0 <= f < n_t]
    if bad:
        raise ValueError(f"reviewed frames {bad[:5]} are outside the video's {n_t} frames")
    labels = pseudo.labels.copy()
    top = max([0, *pseudo.categories, *corrected.categories])
    remap: dict[int, int] = {}
    for k in corrected.instance_ids:
        if k in pseudo.categories and pseudo.categories[k] != corrected.categories[k]:
            top += 1
            remap[k] = top
    used_pseudo: set[int] = set()
    used_corr: set[int] = set()
    for f in range(n_t):
        if f in frames:
            labels[f] = corrected.labels[f]
            for k, v in remap.items():
                labels[f][corrected.labels[f] == k] = v
            used_corr.update(np.unique(corrected.labels[f]).tolist())
        else:
            used_pseudo.update(np.unique(pseudo.labels[f]).tolist())
    cats: dict[int, int] = {}
    scores: dict[int, float] = {}
    for k in used_pseudo - {0}:
        cats[k], scores[k] = pseudo.categories[k], pseudo.scores[k]
    for k in used_corr - {0}:
        nk = remap.get(k, k)
        cats[nk], scores[nk] = corrected.categories[k], corrected.scores[k]
    return LabelVolume(labels, cats, scores, dict(pseudo.video))
