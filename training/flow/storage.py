"""Flow on disk: one float16 array per video, memory-mapped, with a JSON record.

``<dir>/<key>.flow.npy`` holds a (T-1, H, W, 5) float16 array: for every pair
(t, t+1) the forward flow (dx, dy) at frame t, the backward flow (dx, dy) at
frame t+1, and the occlusion mask of frame t (1.0 = occluded) from the
forward-backward check. ``<dir>/<key>.flow.json`` records the method, frame
size, frame count and config; it is written last, so a video counts as done
only when its record exists and matches.

Frames are written one pair at a time into a temporary memory-mapped file that
is renamed into place at the end, so a crash never leaves a half-written array
under the final name. Memory stays flat for long videos: the writer unmaps the
pairs it wrote (:func:`release_pages`) and :class:`VideoFlow` reads a pair with
one ``pread``, so neither keeps the file's pages mapped (a mapped page counts
in the process's resident memory until it is unmapped: the flow of 2000 frames
of 480x640 is 5.9 GiB).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.atomic import atomic_path, write_json
from training.errors import InputError
from training.json_io import read_json

CHANNELS = ("forward_dx", "forward_dy", "backward_dx", "backward_dy", "occlusion")


def flow_paths(flow_dir: str | os.PathLike, key: str) -> tuple[Path, Path]:
    """(array path, record path) of a video's flow."""
    d = Path(flow_dir)
    return d / f"{key}.flow.npy", d / f"{key}.flow.json"


@dataclass
class VideoFlow:
    """The flow of one video, read lazily.

    Attributes
    ----------
    data : (T-1, H, W, 5) float16 memmap
        See the module docstring for the channels.
    meta : dict
        The JSON record (method, height, width, n_frames, config).
    path : Path, optional
        The ``.npy`` file ``data`` maps, its pairs from byte ``offset`` on:
        the methods below then read a pair with ``pread`` instead of through
        the map, so reading every frame of a long video keeps memory flat.
    """

    data: np.ndarray
    meta: dict[str, Any]
    path: Path | None = field(default=None, repr=False)
    offset: int = field(default=0, repr=False)

    @property
    def n_frames(self) -> int:
        """Number of video frames T (one more than flow pairs)."""
        return int(self.data.shape[0]) + 1

    def pair(self, t: int) -> np.ndarray:
        """(H, W, 5) float16: the stored channels of pair t (0 <= t < T-1)."""
        if self.path is None:
            return np.asarray(self.data[t])
        t = range(self.data.shape[0])[t]  # IndexError out of range, as indexing would
        size = int(np.prod(self.data.shape[1:])) * self.data.itemsize
        with open(self.path, "rb") as f:
            buf = os.pread(f.fileno(), size, self.offset + t * size)
        if len(buf) != size:
            raise InputError(self.path, f"flow pair {t}: the file is truncated (run 'vis-ws flow' again)")
        return np.frombuffer(buf, np.float16).reshape(self.data.shape[1:])

    def forward(self, t: int) -> np.ndarray:
        """(H, W, 2) float32 flow from frame t to t+1 (0 <= t < T-1)."""
        return self.pair(t)[..., 0:2].astype(np.float32)

    def backward(self, t: int) -> np.ndarray:
        """(H, W, 2) float32 flow from frame t+1 back to t (0 <= t < T-1)."""
        return self.pair(t)[..., 2:4].astype(np.float32)

    def carry(self, t: int, t2: int) -> list[np.ndarray]:
        """The flows that carry frame t's masks to frame t2, in the order to warp by them.

        Later frames (t2 > t): ``backward(t), ..., backward(t2 - 1)``, each
        sampled at the next frame. Earlier frames: ``forward(t - 1), ...,
        forward(t2)``, each sampled at the frame before. t2 = t gives [].

        Returns
        -------
        list of |t2 - t| arrays (H, W, 2) float32, for
        :func:`training.maskconsist.matching.warp_masks`.
        """
        if t2 >= t:
            return [self.backward(s) for s in range(t, t2)]
        return [self.forward(s) for s in range(t - 1, t2 - 1, -1)]

    def occlusion(self, t: int) -> np.ndarray:
        """(H, W) bool: pixels of frame t with no match in frame t+1."""
        return self.pair(t)[..., 4] > 0.5

    def motion(self, t: int) -> np.ndarray:
        """(H, W, 2) float32 motion at frame t, defined for every frame 0..T-1.

        The forward flow, except at the last frame where it is the negated
        backward flow (the motion that frame came with).
        """
        if self.n_frames == 1:
            h, w = self.data.shape[1:3]
            return np.zeros((h, w, 2), np.float32)
        if t < self.n_frames - 1:
            return self.forward(t)
        return -self.backward(self.n_frames - 2)


@contextlib.contextmanager
def flow_writer(
    flow_dir: str | os.PathLike, key: str, n_frames: int, height: int, width: int, meta: dict[str, Any]
) -> Iterator[np.ndarray]:
    """Write a video's flow pair by pair; it appears only if the block completes.

    Yields
    ------
    array : (T-1, H, W, 5) float16 memmap to fill (``array[t] = ...``);
        call :func:`release_pages` on it every few pairs to keep memory flat.
    """
    npy, rec = flow_paths(flow_dir, key)
    pairs = max(n_frames - 1, 0)
    with contextlib.suppress(FileNotFoundError):
        rec.unlink()  # the old record no longer describes what is being written
    with atomic_path(npy) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(pairs, height, width, 5))
        yield arr
        arr.flush()
        del arr
    record = {"n_frames": n_frames, "height": height, "width": width, "channels": list(CHANNELS), **meta}
    write_json(rec, record, indent=1)


def release_pages(array: np.ndarray) -> None:
    """Unmap a memory-mapped array's pages from this process; what was written stays in the file.

    A written page of a shared file map stays mapped, and counted in the
    process's resident memory, until it is unmapped, so writing a long video's
    flow through :func:`flow_writer` would grow RSS by the size of the file.
    After ``madvise(MADV_DONTNEED)`` a shared file map reads the file's
    up-to-date contents on its next access: the written data is in the page
    cache, written back by the kernel (and fsynced when the writer ends).
    """
    mm = getattr(array, "_mmap", None)  # numpy.memmap's mmap.mmap
    if isinstance(mm, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):  # POSIX; elsewhere a no-op
        mm.madvise(mmap.MADV_DONTNEED)


def flow_done(flow_dir: str | os.PathLike, key: str, expect: dict[str, Any]) -> bool:
    """True when the video's flow exists and its record matches ``expect``."""
    npy, rec = flow_paths(flow_dir, key)
    if not (npy.is_file() and rec.is_file()):
        return False
    try:
        meta = read_json(rec)
    except InputError:
        return False
    return isinstance(meta, dict) and all(meta.get(k) == v for k, v in expect.items())


def read_video_flow(flow_dir: str | os.PathLike, key: str) -> VideoFlow:
    """Open a video's flow lazily (memory-mapped).

    Raises
    ------
    InputError
        Missing flow (run ``vis-ws flow`` first), or an array that does not
        match its record.
    """
    npy, rec = flow_paths(flow_dir, key)
    if not rec.is_file() or not npy.is_file():
        raise InputError(npy, f"no flow for video {key!r} (run 'vis-ws flow' first)")
    meta = read_json(rec)
    try:
        data = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(npy, f"not a readable flow array ({exc})") from None
    expected = (max(int(meta.get("n_frames", 0)) - 1, 0), meta.get("height"), meta.get("width"), 5)
    if data.dtype != np.float16 or tuple(data.shape) != expected:
        raise InputError(npy, f"flow array {data.shape} {data.dtype} does not match its record {expected}")
    pread = npy if data.flags.c_contiguous else None  # a Fortran-order file is read through the map
    return VideoFlow(data, meta, pread, int(data.offset))
