"""Which frames a person should review first: per-frame suspicion of the pseudo-labels, and the review queue.

Low instance scores, instances appearing or vanishing against the frames
around, and MaskConsist's disagreement between matched masks add up to a
frame's suspicion (:func:`frame_suspicion`); :func:`review_queue` ranks the
unreviewed frames by it. The Corrections dock shows the queue with each
frame's reason (:meth:`Suspicion.reason`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from training.corrections import InstanceAreas, instance_areas


@dataclass(frozen=True)
class Suspicion:
    """Why each frame's labels may be wrong: the terms :func:`frame_suspicion` adds up.

    Attributes
    ----------
    mean_score : (T,) float64
        Mean score of the frame's instances (1.0 for a frame without instances).
    count_change : (T,) float64
        ``min(1, |n_t - m| / max(m, 1))``: instances appearing or vanishing
        against the median count ``m`` of the frames around.
    counts : (T,) int64, instances in each frame
    neighbours : (T,) float64, the median count ``m`` of frames t-2..t+2 other than t
    disagreement : (T,) float64, MaskConsist disagreement (zeros when not given)
    """

    mean_score: np.ndarray
    count_change: np.ndarray
    counts: np.ndarray
    neighbours: np.ndarray
    disagreement: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """(T,) float64: ``(1 - mean_score) + count_change + disagreement``, higher is worse."""
        return (1.0 - self.mean_score) + self.count_change + self.disagreement

    def reason(self, t: int, min_term: float = 0.05, low_score: float = 0.5, most: int = 2) -> str:
        """Why frame ``t`` is in the queue, biggest term first, e.g. ``"disagreement 0.80, low score 0.20"``.

        Named: a disagreement or an instance-count change of at least
        ``min_term`` (``"instances 3 vs 2 around"``), a mean score below
        ``low_score``; at most ``most`` of them. A frame with none of these
        gets its mean score (``"score 0.90"``), or "" without instances.
        """
        named = []
        if self.disagreement[t] >= min_term:
            named.append((float(self.disagreement[t]), f"disagreement {self.disagreement[t]:.2f}"))
        if self.count_change[t] >= min_term:
            text = f"instances {self.counts[t]} vs {self.neighbours[t]:g} around"
            named.append((float(self.count_change[t]), text))
        if self.mean_score[t] < low_score:
            named.append((1.0 - float(self.mean_score[t]), f"low score {self.mean_score[t]:.2f}"))
        named.sort(key=lambda term: -term[0])
        if named:
            return ", ".join(text for _, text in named[:most])
        return f"score {self.mean_score[t]:.2f}" if self.counts[t] else ""


def suspicion_terms(
    areas: InstanceAreas, scores: dict[int, float], disagreement: np.ndarray | None = None
) -> Suspicion:
    """The terms of :func:`frame_suspicion` for every frame (see :class:`Suspicion`).

    Parameters
    ----------
    areas : InstanceAreas of the volume
    scores : id → confidence (missing ids count as 1.0)
    disagreement : (T,) float, optional, e.g. :func:`training.maskconsist.disagreement.video_disagreement`
    """
    n_t = areas.areas.shape[0]
    present = areas.areas > 0
    s = np.array([float(scores.get(int(k), 1.0)) for k in areas.ids], np.float64)
    counts = present.sum(axis=1)
    mean_score = np.where(counts > 0, (present * s).sum(axis=1) / np.maximum(counts, 1), 1.0)
    c = counts.astype(np.float64)
    ref = c.copy()
    change = np.zeros(n_t, np.float64)
    if n_t > 1:
        ref = np.array([np.median(np.concatenate([c[max(t - 2, 0) : t], c[t + 1 : t + 3]])) for t in range(n_t)])
        change = np.minimum(1.0, np.abs(c - ref) / np.maximum(ref, 1.0))
    dis = np.zeros(n_t, np.float64)
    if disagreement is not None:
        d = np.asarray(disagreement, np.float64).reshape(-1)
        if d.size != n_t:
            raise ValueError(f"disagreement has {d.size} values for {n_t} frames")
        dis = np.nan_to_num(d)
    return Suspicion(mean_score, change, counts.astype(np.int64), ref, dis)


def frame_suspicion(
    areas: InstanceAreas, scores: dict[int, float], disagreement: np.ndarray | None = None
) -> np.ndarray:
    """How likely each frame's labels are wrong, higher is worse.

    The sum of three terms: one minus the mean score of the frame's
    instances (0 for a frame without instances); the change in the number of
    instances against the neighbouring frames, ``min(1, |n_t - m| / max(m, 1))``
    with ``m`` the median count of frames t-2..t+2 other than t (an instance
    that appears or vanishes for one frame stands out; the frames around it
    do not); and the frame's disagreement (e.g. MaskConsist's, in [0, 1], see
    :mod:`training.maskconsist.disagreement`) when given.

    Parameters
    ----------
    areas : InstanceAreas of the volume
    scores : id → confidence (missing ids count as 1.0)
    disagreement : (T,) float, optional

    Returns
    -------
    (T,) float64
    """
    return suspicion_terms(areas, scores, disagreement).total


def review_queue(
    volume: np.ndarray,
    reviewed: Iterable[int],
    scores: dict[int, float],
    disagreement: np.ndarray | None = None,
    k: int = 20,
    areas: InstanceAreas | None = None,
) -> list[int]:
    """The ``k`` unreviewed frames most likely wrong, worst first (ties: earlier frame first).

    Parameters
    ----------
    volume : (T, H, W) int labels
    reviewed : frames already reviewed (left out)
    scores : id → confidence
    disagreement : (T,) float, optional, see :func:`frame_suspicion`
    k : queue length
    areas : precomputed :func:`instance_areas` of ``volume``

    Returns
    -------
    list of frame indices
    """
    a = instance_areas(volume) if areas is None else areas
    return worst_frames(frame_suspicion(a, scores, disagreement), reviewed, k)


def worst_frames(suspicion: np.ndarray, reviewed: Iterable[int] = (), k: int = 20) -> list[int]:
    """The ``k`` frames not in ``reviewed`` with the highest (T,) ``suspicion``, worst first (ties: earlier first)."""
    bad = np.asarray(suspicion, np.float64).reshape(-1)
    done = set(int(f) for f in reviewed)
    order = sorted((f for f in range(len(bad)) if f not in done), key=lambda f: (-bad[f], f))
    return order[: max(int(k), 0)]
