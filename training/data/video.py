"""Lazy frame readers: video files, folders of frames, multi-page TIFF.

Every reader exposes the frames as (H, W, 3) uint8 RGB, reads a frame only
when asked, and turns into a dask array of one-frame chunks, so opening a
ten-minute video costs a scan of its packet index, not its pixels.
"""

from __future__ import annotations

import abc
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TIFF_SUFFIXES = (".tif", ".tiff")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """Any (H, W), (H, W, 1|3|4) image → (H, W, 3) uint8 RGB.

    Integer images with more than 8 bits are scaled by their dtype's range,
    float images are taken to be in [0, 1].
    """
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        else:
            info = np.iinfo(a.dtype)
            a = (np.clip(a, 0, info.max).astype(np.float64) * (255.0 / info.max) + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    if a.shape[2] in (1, 2):
        a = np.repeat(a[..., :1], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


class FrameReader(abc.ABC):
    """Base of the lazy readers: ``len()``, ``frame_shape``, ``read(i)``, ``to_dask()``."""

    path: Path
    n_frames: int
    frame_shape: tuple[int, int]

    def __len__(self) -> int:
        return self.n_frames

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, H, W, 3)."""
        return (self.n_frames, *self.frame_shape, 3)

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB.

        Raises
        ------
        IndexError
            ``index`` out of range.
        InputError
            The frame cannot be decoded or has another size than frame 0.
        """
        if not -self.n_frames <= index < self.n_frames:
            raise IndexError(f"frame {index} out of range for {self.n_frames} frames")
        index %= self.n_frames
        frame = self._read(index)
        if frame.shape[:2] != self.frame_shape:
            raise InputError(
                self._frame_name(index),
                f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, frame 0 is "
                f"{self.frame_shape[1]}x{self.frame_shape[0]}: all frames of a video must have one size",
            )
        return frame

    @abc.abstractmethod
    def _read(self, index: int) -> np.ndarray:
        """Decode frame ``index`` (in range) to (H, W, 3) uint8."""

    def _frame_name(self, index: int) -> Path:
        return self.path

    def __getitem__(self, index: int) -> np.ndarray:
        return self.read(index)

    def to_dask(self) -> Any:
        """The frames as a lazy (T, H, W, 3) uint8 dask array, one frame per chunk."""
        import dask.array as da

        h, w = self.frame_shape

        def block(index: np.ndarray) -> np.ndarray:
            return self.read(int(index[0]))[None]

        # one graph layer however long the video (a stack of delayed frames costs seconds)
        index = da.arange(self.n_frames, chunks=1)
        chunks = ((1,) * self.n_frames, (h,), (w,), (3,))
        return index.map_blocks(block, new_axis=[1, 2, 3], chunks=chunks, dtype=np.uint8)

    def read_all(self) -> np.ndarray:
        """Every frame in memory: (T, H, W, 3) uint8. Only for short clips."""
        return np.stack([self.read(i) for i in range(self.n_frames)])


class ImageSequenceReader(FrameReader):
    """Frames from a list of image files (a folder, or a dataset's file_names)."""

    def __init__(self, files: Sequence[str | os.PathLike], path: str | os.PathLike | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.path = Path(path) if path is not None else (self.files[0].parent if self.files else Path("."))
        if not self.files:
            raise InputError(self.path, "no frames (expected .jpg/.png/.tif images)")
        self.n_frames = len(self.files)
        first = self._read(0)
        self.frame_shape = (int(first.shape[0]), int(first.shape[1]))

    def _frame_name(self, index: int) -> Path:
        return self.files[index]

    def _read(self, index: int) -> np.ndarray:
        import imageio.v3 as iio

        f = self.files[index]
        try:
            img = iio.imread(f, index=0) if f.suffix.lower() in TIFF_SUFFIXES else iio.imread(f)
        except FileNotFoundError:
            raise InputError(f, f"frame {index}: missing frame file") from None
        except Exception as exc:  # imageio raises many types for corrupt files
            raise InputError(f, f"frame {index}: cannot decode image ({type(exc).__name__})") from None
        try:
            return to_rgb(img)
        except ValueError as exc:
            raise InputError(f, f"frame {index}: {exc}") from None


class TiffStackReader(FrameReader):
    """Frames from the pages (or the first axis) of one multi-page TIFF."""

    def __init__(self, path: str | os.PathLike) -> None:
        import tifffile

        self.path = Path(path)
        try:
            with tifffile.TiffFile(self.path) as tf:
                series = tf.series[0]
                shape = tuple(series.shape)
                n_pages = len(tf.pages)
        except Exception as exc:
            raise InputError(self.path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
        # (T, H, W), (T, H, W, C) or a single (H, W[, C]) page
        if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4) and n_pages == 1):
            self._paged = False
            self.n_frames = 1
            hw = shape[:2]
        elif len(shape) in (3, 4):
            self._paged = True
            self.n_frames = int(shape[0])
            hw = (shape[1], shape[2])
        else:
            raise InputError(self.path, f"TIFF of shape {shape} is not a (T, H, W[, C]) stack")
        if self.n_frames == 0:
            raise InputError(self.path, "TIFF has no frames")
        self.frame_shape = (int(hw[0]), int(hw[1]))
        self._lock = threading.Lock()

    def _read(self, index: int) -> np.ndarray:
        import tifffile

        try:
            with self._lock, tifffile.TiffFile(self.path) as tf:
                if not self._paged:
                    arr = tf.series[0].asarray()
                else:
                    series = tf.series[0]
                    # a contiguous stack is read by key (page); otherwise by slicing the series
                    arr = series.asarray(key=index) if len(series.pages) == self.n_frames else series.asarray()[index]
        except Exception as exc:
            raise InputError(self.path, f"frame {index}: cannot read TIFF page ({type(exc).__name__})") from None
        return to_rgb(arr)


class VideoFileReader(FrameReader):
    """Frames of a video file through PyAV (FFmpeg), with exact frame seeking.

    Opening demuxes the packet index (no decoding) to learn every frame's
    presentation time; ``read(i)`` seeks to the keyframe before frame i and
    decodes forward. Sequential reads reuse the open decoder.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "no such file")
        self._lock = threading.Lock()
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    raise InputError(self.path, "has no video stream")
                s = c.streams.video[0]
                packets = [(p.pts, p.is_keyframe) for p in c.demux(s) if p.pts is not None and p.size > 0]
                self.frame_shape = (int(s.codec_context.height), int(s.codec_context.width))
                self.fps = float(s.average_rate) if s.average_rate else 0.0
        except InputError:
            raise
        except Exception as exc:
            raise InputError(self.path, f"not a readable video ({type(exc).__name__}: {exc})") from None
        if not packets:
            raise InputError(self.path, "video has no frames")
        self._pts = sorted(p for p, _ in packets)
        self._index = {p: i for i, p in enumerate(self._pts)}
        # frame index of each keyframe: a read far ahead seeks instead of decoding everything between
        self._keyframes = np.array(sorted(self._index[p] for p, k in packets if k) or [0])
        self.n_frames = len(self._pts)
        self._container: Any = None
        self._decoder: Any = None
        self._next = -1  # index of the frame the open decoder yields next

    def _open(self) -> None:
        import av

        if self._container is None:
            self._container = av.open(str(self.path))
            self._container.streams.video[0].thread_type = "AUTO"

    def _decode_from(self, index: int) -> None:
        self._open()
        s = self._container.streams.video[0]
        self._container.seek(self._pts[index], stream=s, backward=True, any_frame=False)
        self._decoder = self._container.decode(s)
        self._next = -1

    def _read(self, index: int) -> np.ndarray:
        with self._lock:
            try:
                k = int(np.searchsorted(self._keyframes, index, side="right")) - 1
                keyframe = int(self._keyframes[max(k, 0)])
                if self._decoder is None or not (0 <= self._next <= index and keyframe <= self._next):
                    self._decode_from(index)
                for frame in self._decoder:
                    i = self._index.get(frame.pts, -1) if frame.pts is not None else self._next
                    self._next = i + 1
                    if i == index:
                        return to_rgb(frame.to_ndarray(format="rgb24"))
                    if i > index:  # overshot: seek landed past the frame
                        break
            except InputError:
                raise
            except Exception as exc:
                self.close()
                raise InputError(self.path, f"frame {index}: cannot decode ({type(exc).__name__}: {exc})") from None
            self.close()
            raise InputError(self.path, f"frame {index}: not found while decoding (truncated or corrupt video?)")

    def close(self) -> None:
        """Release the decoder (reopened on the next read)."""
        if self._container is not None:
            self._container.close()
        self._container = None
        self._decoder = None
        self._next = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class FrameRangeReader(FrameReader):
    """Frames ``start`` to ``stop`` (exclusive) of another reader: a cut of a long video, read lazily.

    Parameters
    ----------
    reader : FrameReader
        The whole video.
    start, stop : int
        0 <= start < stop <= len(reader).
    """

    def __init__(self, reader: FrameReader, start: int, stop: int) -> None:
        if not 0 <= start < stop <= len(reader):
            raise InputError(reader.path, f"has {len(reader)} frames: the frame range {start}:{stop} is not in them")
        self.whole, self.start = reader, start
        self.path, self.n_frames, self.frame_shape = reader.path, stop - start, reader.frame_shape

    @property
    def files(self) -> list[Path]:
        """The range's frame files (a folder's), else empty."""
        return list(getattr(self.whole, "files", [])[self.start : self.start + self.n_frames])

    def _read(self, index: int) -> np.ndarray:
        return self.whole.read(self.start + index)

    def _frame_name(self, index: int) -> Path:
        return self.whole._frame_name(self.start + index)


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder in natural order (``2.png`` before ``10.png``)."""
    folder = Path(folder)
    files = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def open_frames(path: str | os.PathLike) -> FrameReader:
    """Open a video file, a folder of frames or a multi-page TIFF lazily.

    Parameters
    ----------
    path : str or os.PathLike
        ``.mp4/.avi/.mov/.webm/...``, a folder of ``.jpg/.png/...`` frames
        (natural sort), or a ``.tif`` stack.

    Returns
    -------
    FrameReader
        ``reader.read(i)`` → (H, W, 3) uint8; ``reader.to_dask()`` → lazy
        (T, H, W, 3) array.

    Raises
    ------
    InputError
        Missing path, unknown kind, no frames, or an unreadable file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    if p.is_dir():
        return ImageSequenceReader(list_frames(p), path=p)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoFileReader(p)
    if suffix in TIFF_SUFFIXES:
        return TiffStackReader(p)
    if suffix in IMAGE_SUFFIXES:
        return ImageSequenceReader([p], path=p)
    raise InputError(p, f"unknown file type {suffix!r}: expected a video, a folder of frames or a TIFF stack")
