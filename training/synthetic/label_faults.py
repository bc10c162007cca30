"""Pseudo-labels with controlled faults, made from a ground truth.

MaskConsist (METHOD.md §7) is built to repair two faults of flowIRN's
pseudo-labels: an object missing from some frames, and a partial mask that
covers only part of an object. :func:`degrade_labels` puts exactly those
faults, at chosen rates, into ground-truth instance masks, so the benchmark can
measure whether MaskConsist repairs them (its targets against the ground
truth, and the detector trained on them) apart from how good the CAMs are.
Only benchmarks use it: the weak pipeline never reads ground truth.
"""

from __future__ import annotations

import numpy as np


def cut_mask(mask: np.ndarray, keep: float, angle: float) -> np.ndarray:
    """The part of a mask on one side of a straight cut, holding about ``keep`` of its pixels.

    Parameters
    ----------
    mask : (H, W) bool
    keep : float
        Share of the mask's pixels kept, in (0, 1].
    angle : float
        Direction of the cut's normal, in radians: pixels whose projection on
        it is lowest are kept.

    Returns
    -------
    (H, W) bool, a subset of ``mask`` (the whole mask when ``keep`` is 1).
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"cut_mask: keep must be in (0, 1], got {keep}")
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, dtype=bool)
    if len(ys) == 0:
        return out
    proj = xs * np.cos(angle) + ys * np.sin(angle)
    n_keep = max(1, int(round(keep * len(ys))))
    order = np.argsort(proj, kind="stable")[:n_keep]
    out[ys[order], xs[order]] = True
    return out


def degrade_labels(
    labels: np.ndarray,
    missing: float,
    partial: float,
    rng: np.random.Generator,
    keep: tuple[float, float] = (0.3, 0.7),
) -> np.ndarray:
    """Remove or cut instances frame by frame, independently.

    Each instance of each frame is, with probability ``missing``, erased from
    that frame; else, with probability ``partial``, cut by a straight line at a
    random angle to a share of its pixels drawn uniformly from ``keep``; else
    left whole.

    Parameters
    ----------
    labels : (T, H, W) int
        Instance ids, 0 background.
    missing, partial : float
        Probabilities, each in [0, 1], adding up to at most 1.
    rng : numpy Generator
        The only source of randomness.
    keep : (low, high)
        Range of the share of a cut instance's pixels that stays, in (0, 1].

    Returns
    -------
    (T, H, W) int32, a new array; every id keeps its pixels or loses some.
    """
    if not (0.0 <= missing <= 1.0 and 0.0 <= partial <= 1.0 and missing + partial <= 1.0):
        raise ValueError(f"degrade_labels: need probabilities with missing + partial <= 1, got {missing}, {partial}")
    if not 0.0 < keep[0] <= keep[1] <= 1.0:
        raise ValueError(f"degrade_labels: keep must be a range inside (0, 1], got {keep}")
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"degrade_labels: labels must be (T, H, W), got shape {labels.shape}")
    out = labels.astype(np.int32, copy=True)
    for t in range(len(out)):
        for instance in np.unique(labels[t]):
            if instance == 0:
                continue
            draw = rng.random()
            mask = labels[t] == instance
            if draw < missing:
                out[t][mask] = 0
            elif draw < missing + partial:
                kept = cut_mask(mask, rng.uniform(*keep), rng.uniform(0.0, 2.0 * np.pi))
                out[t][mask & ~kept] = 0
    return out
