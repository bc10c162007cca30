"""Instance and semantic pseudo-labels from B, D and (f-)CAMs (METHOD.md §6; IRN §3.3).

Public functions take numpy arrays or torch tensors and return the same kind
(the type of their first argument):

- :func:`propagate` — IRN's ``propagate_to_edge`` (sparse, memory linear in pixels);
- :func:`find_centroids` — iterate the displacement field to the instance centroids;
- :func:`cluster_centroids` — the class-agnostic instance map;
- :func:`instance_pseudo_labels` — per-frame detections (class key, score, mask),
  optionally with touching instances split by a normalized cut (:mod:`training.irn.ncut`);
- :func:`semantic_pseudo_labels` — per-pixel class map (0 background, key + 1).

Bad input (mismatched shapes, NaN/inf, a boundary map outside [0, 1]) raises
:class:`training.errors.InputError` (a ValueError) with a one-line message. A
frame with no tagged class (``keys`` empty, K = 0) gives no instances and an
all-background map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from training.errors import InputError
from training.irn.ncut import AffinityPairs, affinity_pairs, split_mask
from training.irn.random_walk import BETA, EXP_TIMES, INFER_RADIUS, random_walk, transition_matrix

CENTROID_ITERATIONS = 300
"""Refinement steps u of the centroid search (IRN: any u ≥ 100; 300)."""
CLUSTER_THRESHOLD = 2.5
"""|D| below this (grid pixels) marks the centroid regions that are clustered."""
INSTANCE_BG = 0.25
"""IRN's ``ins_seg_bg_thres``: background score of the instance argmax."""
SEMANTIC_BG = 0.25
"""IRN's ``sem_seg_bg_thres``: background score of the semantic argmax."""
INSTANCE_NORMS = ("frame", "class")
"""What the instance argmax divides the propagated scores by before comparing them with the background score:
``frame``, the frame's global maximum (IRN); ``class``, each tagged class's own maximum."""
MIN_FRAGMENT = 0.01
"""Segments smaller than this fraction of the image are fragments (IRN: score 0)."""
STRIDE = 4
"""Output stride of the IRN grid; pseudo-labels are upsampled by it."""

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class Instance(NamedTuple):
    """One detection of :func:`instance_pseudo_labels`.

    Attributes
    ----------
    key : int
        Category key of the class.
    score : float
        Highest normalised propagated score inside the mask, in [0, 1].
    mask : (H, W) bool
        numpy array, or a torch tensor on the CAMs' device for torch input.
    """

    key: int
    score: float
    mask: np.ndarray | torch.Tensor


def propagate(
    x: ArrayT,
    boundary: np.ndarray | torch.Tensor,
    radius: int = INFER_RADIUS,
    beta: float = BETA,
    exp_times: int = EXP_TIMES,
) -> ArrayT:
    """Boundary-aware random walk of score maps (IRN's ``propagate_to_edge``, Eq. 8).

    ``vec(x*) = vec(x ⊙ (1 − B)) · T^{2^exp_times}`` with T the column-normalised
    A^{∘β} of the radius pairs (see :mod:`training.irn.random_walk`), computed
    with sparse products: the same result as IRN's dense matrix power to float
    precision, in memory linear in h·w. Each output pixel is a weighted average
    of inputs, so values stay within the input's range and nothing crosses a
    closed line of B = 1.

    Parameters
    ----------
    x : (C, h, w) float array or tensor
        Score maps at the grid (CAMs, instance CAMs).
    boundary : (h, w) float array or tensor
        Class-boundary map B, values in [0, 1].
    radius, beta, exp_times
        IRN: 5, 10, 8 (256 steps).

    Returns
    -------
    (C, h, w) float32 (float64 for float64 input), same kind (and device) as ``x``.
        Computed in float64 whatever the input.
    """
    xt = _tensor(x, "x")
    if xt.ndim != 3:
        raise InputError(None, f"propagate: x must be (C, h, w), got shape {tuple(xt.shape)}")
    bt = _boundary(boundary, tuple(xt.shape[1:]), "propagate", xt.device)
    _finite(xt, "propagate: x")
    out = _propagate(xt, bt, radius, beta, exp_times)
    return _like(out, x)


def find_centroids(displacement: ArrayT, iterations: int = CENTROID_ITERATIONS) -> ArrayT:
    """Where each pixel's displacement chain ends: its instance centroid (IRN Eq. 7).

    Every grid pixel starts at its own position and moves by D looked up
    bilinearly at its current position, clipped to the grid after each step,
    for ``iterations`` steps; the end points are rounded (half to even).

    Parameters
    ----------
    displacement : (2, h, w) float array or tensor
        D as (dy, dx) in grid pixels (the network's output with its running
        mean already subtracted).
    iterations : int
        IRN: 300.

    Returns
    -------
    centroids : (2, h, w) int64, same kind as ``displacement``
        (y, x) grid position of each pixel's centroid.
    """
    disp = _displacement(displacement, None, "find_centroids")
    _, h, w = disp.shape
    flat = np.ascontiguousarray(disp.reshape(2, -1))
    cy, cx = (g.astype(np.float64).ravel() for g in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    for _ in range(int(iterations)):
        y0, x0 = np.floor(cy), np.floor(cx)
        fy, fx = cy - y0, cx - x0
        # the next row / column; its weight is 0 where the position is whole (IRN's ceil), so clipping it is exact
        i00 = y0.astype(np.int64) * w + x0.astype(np.int64)
        dy, dx = np.where(y0 < h - 1, w, 0), np.where(x0 < w - 1, 1, 0)
        w00, w01, w10, w11 = (1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx
        step = (
            flat.take(i00, axis=1) * w00
            + flat.take(i00 + dx, axis=1) * w01
            + flat.take(i00 + dy, axis=1) * w10
            + flat.take(i00 + dy + dx, axis=1) * w11
        )
        cy = np.clip(cy + step[0], 0, h - 1)
        cx = np.clip(cx + step[1], 0, w - 1)
    centroids = np.stack([np.round(cy), np.round(cx)]).reshape(2, h, w).astype(np.int64)
    return _like(centroids, displacement)


def cluster_centroids(
    centroids: ArrayT, displacement: np.ndarray | torch.Tensor, threshold: float = CLUSTER_THRESHOLD
) -> ArrayT:
    """Class-agnostic instance map: pixels whose centroids land in the same centroid region.

    Centroid regions are the 4-connected components of ``|D| < threshold``
    (where the field nearly vanishes: at the centres). Each pixel joins the
    component its centroid lands in; pixels whose centroid lands outside every
    component form one more group, as in IRN (it is an instance like the
    others). Groups are numbered in order of component label, that extra group
    first.

    Parameters
    ----------
    centroids : (2, h, w) int array or tensor
        From :func:`find_centroids`.
    displacement : (2, h, w) float array or tensor
    threshold : float
        IRN: 2.5 grid pixels.

    Returns
    -------
    instances : (N, h, w) bool, same kind as ``centroids``
        One-hot: every pixel in exactly one of the N groups.
    """
    cen = _tensor(centroids, "centroids").cpu().numpy()
    disp = _displacement(displacement, None, "cluster_centroids")
    _, h, w = disp.shape
    if cen.shape != disp.shape:
        raise InputError(
            None, f"cluster_centroids: centroids {cen.shape} and displacement {disp.shape} must both be (2, h, w)"
        )
    if cen.size and (cen.min() < 0 or cen[0].max() >= h or cen[1].max() >= w):
        raise InputError(None, f"cluster_centroids: centroids must be grid positions inside {h}x{w}")
    regions, _ = ndimage.label(np.hypot(disp[0], disp[1]) < threshold)  # default structure: 4-connectivity
    cluster = regions[cen[0].astype(np.int64), cen[1].astype(np.int64)]
    _, dense_ids = np.unique(cluster, return_inverse=True)  # consecutive ids in label order (IRN's compress_range)
    dense_ids = dense_ids.reshape(h, w)
    one_hot = dense_ids[None] == np.arange(dense_ids.max() + 1)[:, None, None]
    return _like(one_hot, centroids)


def instance_pseudo_labels(
    cams: np.ndarray | torch.Tensor,
    keys: Sequence[int] | np.ndarray,
    boundary: np.ndarray | torch.Tensor,
    displacement: np.ndarray | torch.Tensor,
    image_size: tuple[int, int],
    *,
    radius: int = INFER_RADIUS,
    beta: float = BETA,
    exp_times: int = EXP_TIMES,
    bg_threshold: float = INSTANCE_BG,
    centroid_iterations: int = CENTROID_ITERATIONS,
    cluster_threshold: float = CLUSTER_THRESHOLD,
    min_fragment: float = MIN_FRAGMENT,
    stride: int = STRIDE,
    keep_fragments: bool = False,
    centroids: np.ndarray | torch.Tensor | None = None,
    instance_norm: str = "frame",
    split_ncut: float = 0.0,
) -> list[Instance]:
    """Instance pseudo-labels of one frame (IRN's ``make_ins_seg_labels``; METHOD.md §6).

    1. Centroids and the class-agnostic instance map I from D.
    2. Instance CAMs M̄_ck = CAM_c · 1(I = k), propagated with the random walk.
    3. Upsampled ×stride (bilinear), cropped to the image, divided by the
       global max; a background channel of ``bg_threshold`` is put in front
       and each pixel takes the argmax (with ``instance_norm="class"``, of
       the scores divided by their class's maximum instead).
    4. Every 4-connected segment of each (class, instance) channel is a
       detection scored by the highest normalised score inside it; segments
       under ``min_fragment`` of the image are fragments.
    5. With ``split_ncut`` > 0 (not IRN's), each detection whose best
       normalized cut over IRN's affinities is below it becomes two
       (:func:`training.irn.ncut.split_mask`), each scored by its own peak.

    Parameters
    ----------
    cams : (K, h, w) float array or tensor
        (f-)CAMs of the frame's tagged classes at the grid, each max-normalised.
    keys : (K,) int
        Category key of each CAM row. Empty (K = 0): no instances.
    boundary : (h, w) float, values in [0, 1]
    displacement : (2, h, w) float
        (dy, dx) in grid pixels, running mean subtracted.
    image_size : (H, W)
        Frame size; the grid must be its stride grid: h = (H − 1) // stride + 1
        and the same for w.
    radius, beta, exp_times, bg_threshold, centroid_iterations, cluster_threshold, min_fragment
        IRN's defaults: 5, 10, 8, 0.25, 300, 2.5, 0.01.
    stride : int
        Grid stride (4).
    keep_fragments : bool
        IRN keeps fragments as detections of score 0; by default they are
        dropped from the list instead.
    centroids : (2, h, w) int, optional
        :func:`find_centroids` of ``displacement`` when the caller has it
        already (it is most of the cost); None computes it.
    instance_norm : {"frame", "class"}
        What the scores are divided by before the background comparison
        (:data:`INSTANCE_NORMS`). ``frame`` is IRN's. ``class``: the frame's
        tags say every class in ``cams`` is there, so each keeps its
        strongest instance even when another class's peak is higher (with a
        high ``bg_threshold`` the frame's maximum keeps one class per frame).
        Detection scores are the frame-normalised peaks either way.
    split_ncut : float
        Normalized-cut threshold of step 5 (:data:`training.irn.ncut.SPLIT_NCUT`);
        0 (the default, IRN) splits nothing.

    Returns
    -------
    list of Instance (key, score, mask)
        In IRN's order: class (row of ``cams``), then instance group, then
        segment in raster order of its first pixel. Empty when K = 0 or when
        every propagated score is 0.
    """
    cams_t = _tensor(cams, "cams")
    h, w = _cams_shape(cams_t, "instance_pseudo_labels")
    key_arr = _keys(keys, cams_t.shape[0], "instance_pseudo_labels")
    bt = _boundary(boundary, (h, w), "instance_pseudo_labels", cams_t.device)
    disp = _displacement(displacement, (h, w), "instance_pseudo_labels")
    big_h, big_w = _image_size(image_size, (h, w), stride, "instance_pseudo_labels")
    if cams_t.shape[0] == 0:
        return []
    if centroids is None:
        cen = find_centroids(disp, centroid_iterations)
    else:
        cen = _tensor(centroids, "centroids").cpu().numpy()
    instances = cluster_centroids(cen, disp, cluster_threshold)
    n = instances.shape[0]
    inst_t = torch.from_numpy(instances).to(device=cams_t.device, dtype=cams_t.dtype)
    inst_cams = (cams_t[:, None] * inst_t[None]).reshape(-1, h, w)  # class-major: channel c·N + k
    scores = _upsampled_scores(_propagate(inst_cams, bt, radius, beta, exp_times), (big_h, big_w), stride)
    if scores is None:
        return []
    winner = _argmax_with_background(_normalized(scores, n, instance_norm), bg_threshold)
    class_keys = np.repeat(key_arr, n)
    min_size = (big_h * big_w) * min_fragment
    pairs: AffinityPairs | None = None
    out: list[Instance] = []
    for channel in range(scores.shape[0]):
        segments, count = ndimage.label(winner == channel + 1)  # 4-connectivity, raster order
        if count == 0:
            continue
        sizes = np.bincount(segments.ravel(), minlength=count + 1)[1:]
        peaks = ndimage.maximum(scores[channel], segments, index=np.arange(1, count + 1))
        for seg, (size, peak) in enumerate(zip(sizes, np.atleast_1d(peaks), strict=True), start=1):
            fragment = size < min_size
            if fragment and not keep_fragments:
                continue
            mask = segments == seg
            parts = None
            if split_ncut > 0 and not fragment:
                pairs = affinity_pairs(bt, radius, beta) if pairs is None else pairs
                parts = split_mask(mask, pairs, stride, split_ncut)
            if parts is None:
                score = 0.0 if fragment else max(float(peak), 0.0)
                out.append(Instance(int(class_keys[channel]), score, _like(mask, cams)))
                continue
            for part in parts:
                score = max(float(scores[channel][part].max()), 0.0)
                out.append(Instance(int(class_keys[channel]), score, _like(part, cams)))
    return out


def semantic_pseudo_labels(
    cams: ArrayT,
    keys: Sequence[int] | np.ndarray,
    boundary: np.ndarray | torch.Tensor,
    image_size: tuple[int, int],
    *,
    radius: int = INFER_RADIUS,
    beta: float = BETA,
    exp_times: int = EXP_TIMES,
    bg_threshold: float = SEMANTIC_BG,
    stride: int = STRIDE,
) -> ArrayT:
    """Semantic pseudo-labels of one frame (IRN's ``make_sem_seg_labels``; METHOD.md §6).

    CAM_c ⊙ (1 − B) propagated, upsampled ×stride, cropped to the image,
    divided by the global max; background score ``bg_threshold``; argmax.

    Parameters
    ----------
    cams : (K, h, w) float array or tensor
    keys : (K,) int
        Category key of each CAM row.
    boundary : (h, w) float in [0, 1]
    image_size : (H, W)
        As in :func:`instance_pseudo_labels`.
    radius, beta, exp_times, bg_threshold, stride
        IRN: 5, 10, 8, 0.25, 4.

    Returns
    -------
    labels : (H, W) int32, same kind as ``cams``
        0 background, key + 1 for a class. All 0 when K = 0 or every
        propagated score is 0.
    """
    cams_t = _tensor(cams, "cams")
    h, w = _cams_shape(cams_t, "semantic_pseudo_labels")
    key_arr = _keys(keys, cams_t.shape[0], "semantic_pseudo_labels")
    bt = _boundary(boundary, (h, w), "semantic_pseudo_labels", cams_t.device)
    big_h, big_w = _image_size(image_size, (h, w), stride, "semantic_pseudo_labels")
    labels = np.zeros((big_h, big_w), np.int32)
    if cams_t.shape[0] > 0:
        scores = _upsampled_scores(_propagate(cams_t, bt, radius, beta, exp_times), (big_h, big_w), stride)
        if scores is not None:
            lut = np.concatenate([[0], key_arr + 1]).astype(np.int32)
            labels = lut[_argmax_with_background(scores, bg_threshold)]
    return _like(labels, cams)


def _propagate(x: torch.Tensor, boundary: torch.Tensor, radius: int, beta: float, exp_times: int) -> torch.Tensor:
    """propagate() on validated tensors."""
    out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if x.shape[0] == 0:
        return x.to(out_dtype).clone()
    # The walk runs in float64: in float32 each step's rows sum to 1 only within
    # ~1e-7, and 256 steps compound that to ~4e-5 (IRN's own float32 squaring is
    # off by as much). float64 costs the same here (the products are memory-bound)
    # and matches the dense matrix power to ~1e-13.
    x, boundary = x.to(torch.float64), boundary.to(device=x.device, dtype=torch.float64)
    with torch.no_grad():
        transition = transition_matrix(boundary, radius, beta)
        return random_walk(x * (1 - boundary), transition, 2 ** int(exp_times)).to(out_dtype)


def _upsampled_scores(rw: torch.Tensor, size: tuple[int, int], stride: int) -> np.ndarray | None:
    """(C, h, w) → (C, H, W) numpy: bilinear ×stride, crop, divide by the global max; None if that max ≤ 0."""
    up = F.interpolate(rw[None], scale_factor=stride, mode="bilinear", align_corners=False)[0]
    up = up[:, : size[0], : size[1]]
    peak = float(up.max())
    if not peak > 0:  # IRN would divide by 0 here; nothing was propagated, so nothing is foreground
        return None
    return (up / peak).cpu().numpy()


def _normalized(scores: np.ndarray, n_groups: int, instance_norm: str) -> np.ndarray:
    """(K·N, H, W) frame-normalised scores (class-major) as the instance argmax compares them: see INSTANCE_NORMS."""
    if instance_norm == "frame":
        return scores
    if instance_norm != "class":
        raise ValueError(f"instance_norm must be one of {INSTANCE_NORMS}, got {instance_norm!r}")
    per_class = scores.reshape(-1, n_groups, *scores.shape[1:])
    peaks = per_class.reshape(per_class.shape[0], -1).max(axis=1)
    divisor = np.where(peaks > 0, peaks, 1.0).astype(scores.dtype)
    return (per_class / divisor[:, None, None, None]).reshape(scores.shape)


def _argmax_with_background(scores: np.ndarray, background: float) -> np.ndarray:
    """Argmax over [background, channel 0, …]: 0 = background, c + 1 = channel c (first wins ties)."""
    padded = np.concatenate([np.full((1, *scores.shape[1:]), background, scores.dtype), scores], axis=0)
    return np.argmax(padded, axis=0)


def _tensor(a: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    try:
        return torch.from_numpy(np.ascontiguousarray(a))
    except TypeError:
        raise InputError(None, f"{name} must be a numpy array or torch tensor, got {type(a).__name__}") from None


def _like(value: np.ndarray | torch.Tensor, template: object) -> Any:
    """``value`` as the same kind as ``template`` (tensor on its device, else numpy)."""
    if isinstance(template, torch.Tensor):
        t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        return t.to(template.device)
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else value


def _finite(t: torch.Tensor, what: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise InputError(None, f"{what} contains NaN or infinity; recompute it for this frame")


def _cams_shape(cams: torch.Tensor, fn: str) -> tuple[int, int]:
    if cams.ndim != 3:
        raise InputError(None, f"{fn}: cams must be (K, h, w), got shape {tuple(cams.shape)}")
    _finite(cams, f"{fn}: cams")
    return int(cams.shape[1]), int(cams.shape[2])


def _boundary(
    boundary: np.ndarray | torch.Tensor, size: tuple[int, ...], fn: str, device: torch.device
) -> torch.Tensor:
    b = _tensor(boundary, "boundary")
    if tuple(b.shape) != tuple(size):
        raise InputError(None, f"{fn}: boundary map is {tuple(b.shape)} but the scores are on a {tuple(size)} grid")
    _finite(b, f"{fn}: boundary")
    if b.numel() and (float(b.min()) < 0.0 or float(b.max()) > 1.0):
        raise InputError(
            None,
            f"{fn}: boundary values must lie in [0, 1] (a sigmoid output), got [{float(b.min()):.3g}, "
            f"{float(b.max()):.3g}]",
        )
    return b.to(device)


def _displacement(displacement: np.ndarray | torch.Tensor, size: tuple[int, int] | None, fn: str) -> np.ndarray:
    d = _tensor(displacement, "displacement")
    if d.ndim != 3 or d.shape[0] != 2 or (size is not None and tuple(d.shape[1:]) != size):
        expected = "(2, h, w)" if size is None else f"(2, {size[0]}, {size[1]})"
        raise InputError(None, f"{fn}: displacement must be {expected} (dy, dx), got shape {tuple(d.shape)}")
    _finite(d, f"{fn}: displacement")
    return d.cpu().numpy().astype(np.float32)


def _keys(keys: Sequence[int] | np.ndarray, k: int, fn: str) -> np.ndarray:
    arr = np.asarray(keys).reshape(-1)
    if arr.shape[0] != k:
        raise InputError(None, f"{fn}: {arr.shape[0]} keys for {k} CAM rows; give one category key per row")
    if k and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(None, f"{fn}: keys must be integer category keys, got {arr.dtype}")
    return arr.astype(np.int64)


def _image_size(image_size: tuple[int, int], grid: tuple[int, int], stride: int, fn: str) -> tuple[int, int]:
    try:
        big_h, big_w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise InputError(None, f"{fn}: image_size must be (H, W), got {image_size!r}") from None
    expected = ((big_h - 1) // stride + 1, (big_w - 1) // stride + 1)
    if big_h < 1 or big_w < 1 or expected != tuple(grid):
        raise InputError(
            None,
            f"{fn}: a {big_h}x{big_w} image has a {expected[0]}x{expected[1]} stride-{stride} grid, "
            f"but the maps are {grid[0]}x{grid[1]}",
        )
    return big_h, big_w
