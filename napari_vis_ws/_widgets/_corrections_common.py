"""What the Corrections dock's parts share: layer names, shortcuts, the video a layer shows, per-frame stats.

Qt-free. :class:`FrameStats` keeps per-frame checksums and instance areas so
an edit costs a pass over the frames it touched, not over the video.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from napari_vis_ws._layers import META_KEY
from training import corrections as corr
from training.run_folder import Project

PSEUDO_LABELS = "pseudo-labels"
SPLIT_LINE = "split line"  # Shapes layer whose last path cuts an instance (Shift+K)
AUTOSAVE_MS = 5000
# action → napari key binding; checked against napari.utils.shortcuts.default_shortcuts (no Shift+letter
# there but Shift+V, Shift+A, Shift+L, Shift+P)
SHORTCUTS = {
    "merge": "Shift-M",
    "split": "Shift-S",
    "split_line": "Shift-K",
    "delete": "Shift-D",
    "propagate_forward": "Shift-F",
    "propagate_backward": "Shift-B",
    "toggle_reviewed": "Shift-R",
    "next_in_queue": "Shift-N",
}
COLUMNS = ("id", "class", "frames", "score")


def qt_key(binding: str) -> str:
    return binding.replace("-", "+")


def video_key_of(layer: Any) -> str:
    """The layer's video key: ``metadata[vis_ws][video_key]``, else from its video entry, else its name."""
    from training.data.sources import video_key

    meta = layer.metadata.get(META_KEY, {})
    if meta.get("video_key"):
        return str(meta["video_key"])
    video = meta.get("video") or {}
    if video.get("file_names") or video.get("name"):
        return video_key({"id": video.get("id", 1), **video})
    return video_key({"id": 1, "name": layer.name})


def frames_of_history_item(atoms: Any, n_frames: int) -> set[int] | None:
    """Frames touched by a napari Labels history item (a list of atoms), or None if it cannot tell.

    An atom is ``(indices, old values, new values)`` (``data_setitem``) or a
    masked paint atom whose ``slice_key`` is its bounding box (brush, fill).
    """
    frames: set[int] = set()
    for atom in atoms if isinstance(atoms, list | tuple) else [None]:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                frames.update(range(*first.indices(n_frames)))
            else:
                frames.add(int(first))
        elif isinstance(atom, tuple) and len(atom) == 3 and isinstance(atom[0], tuple) and len(atom[0]):
            frames.update(np.unique(np.asarray(atom[0][0])).tolist())
        else:
            return None
    return {f for f in frames if 0 <= f < n_frames}


class FrameStats:
    """Per-frame CRC-32 and instance areas of a (T, H, W) label volume, recomputed frame by frame.

    Attributes
    ----------
    crc : (T,) int64, CRC-32 of each frame (-1 before the first scan)
    per_frame : list of {id: pixels}, one per frame
    """

    def __init__(self) -> None:
        self.crc = np.full(0, -1, np.int64)
        self.per_frame: list[dict[int, int]] = []
        self._areas: corr.InstanceAreas | None = None

    def scan(self, labels: np.ndarray, frames: set[int] | None = None) -> list[int]:
        """Checksum ``frames`` (None: all) and recount the instances of those that changed; returns these."""
        n_t = labels.shape[0]
        if len(self.per_frame) != n_t:
            self.crc = np.full(n_t, -1, np.int64)
            self.per_frame = [{} for _ in range(n_t)]
            frames = None
        changed = []
        for t in range(n_t) if frames is None else sorted(frames):
            frame = np.ascontiguousarray(labels[t])
            crc = zlib.crc32(frame)
            if crc == self.crc[t]:
                continue
            a = corr.instance_areas(frame[None])
            self.crc[t] = crc
            self.per_frame[t] = dict(zip(a.ids.tolist(), a.areas[0].tolist(), strict=True))
            changed.append(t)
        if changed:
            self._areas = None
        return changed

    def areas(self) -> corr.InstanceAreas:
        """The instance areas of the whole volume (cached until a frame changes)."""
        if self._areas is None:
            ids = np.array(sorted(set().union(*self.per_frame)), np.int64)
            areas = np.zeros((len(self.per_frame), ids.size), np.int64)
            col = {int(k): i for i, k in enumerate(ids.tolist())}
            for t, d in enumerate(self.per_frame):
                for k, n in d.items():
                    areas[t, col[k]] = n
            self._areas = corr.InstanceAreas(ids, areas)
        return self._areas


def run_folder_of(layer: Any) -> Path | None:
    """The run folder of a layer read from ``RUN/pseudo/<key>/pseudo.npz`` (the pipeline's layout), if so."""
    meta = layer.metadata.get(META_KEY, {})
    if meta.get("project"):
        return Path(meta["project"])
    path = meta.get("path")
    if path and Path(path).parent.parent.name == Project("").pseudo.name:
        return Path(path).parent.parent.parent
    return None
