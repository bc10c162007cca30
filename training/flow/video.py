"""Flow of whole videos: forward, backward and occlusion for every consecutive pair, on disk.

Frames are read two at a time and each pair is written straight into the
video's memory-mapped array (:mod:`training.flow.storage`), whose written
pages are unmapped every ``RELEASE_EVERY`` pairs, so memory stays flat however
long the video. A video whose flow is already on disk with the
same method, size, frame count and parameters is skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from training.data.sources import VideoSource, iter_videos
from training.errors import InputError
from training.flow.classical import check_method, forward_backward_flow, method_config
from training.flow.occlusion import occlusion_mask
from training.flow.storage import flow_done, flow_writer, release_pages
from training.progress import Progress

STAGE = "flow"
RELEASE_EVERY = 16  # pairs written between two unmappings of the written pages (48 MiB at 480x640)


def flow_settings(method: str, model: Any = None) -> dict[str, Any]:
    """The method and parameters recorded with a video's flow (and compared when re-running).

    Parameters
    ----------
    method : {"dis", "farneback", "tvl1", "raft"}
    model : RAFT, optional
        For ``raft``: its weights are fingerprinted so other weights recompute the flow.
    """
    check_method(method)
    config = method_config(method)
    if method == "raft":
        from training.flow.raft import raft_config

        if model is None:
            raise ValueError("method 'raft' needs a model (training.flow.raft.load_raft)")
        config.update(raft_config(model))
    return {"method": method, "config": config}


def compute_video_flow(
    source: VideoSource, out_dir: str | os.PathLike, method: str = "dis", model: Any = None
) -> Iterator[Progress]:
    """Compute and store the flow of one video, pair by pair.

    Writes ``<out_dir>/<key>.flow.npy``, a (T-1, H, W, 5) float16 array
    (forward dx, dy at frame t; backward dx, dy at frame t+1; occlusion of
    frame t), and its ``.flow.json`` record. A 1-frame video gets a
    (0, H, W, 5) array.

    Parameters
    ----------
    source : VideoSource
        From :func:`training.data.sources.iter_videos`.
    out_dir : path
    method : {"dis", "farneback", "tvl1", "raft"}
    model : RAFT, optional
        Required for ``raft``.

    Yields
    ------
    Progress
        One per pair (stage ``"flow"``, unit ``"pair"``), then a last event
        with ``metrics["skipped"]`` (1.0 when the flow was already there) and
        a message for the log.

    Raises
    ------
    InputError
        A frame that cannot be read or has another size than the first,
        naming the video and the frame. Nothing is left under the final name.
    """
    settings = flow_settings(method, model)
    reader = source.reader
    n_frames = len(reader)
    height, width = reader.frame_shape
    pairs = max(n_frames - 1, 0)
    expect = {**settings, "height": height, "width": width, "n_frames": n_frames}
    if flow_done(out_dir, source.key, expect):
        message = f"{source.key}: skipped, its {method} flow is already in {out_dir}"
        yield Progress(STAGE, pairs, pairs, "pair", {"skipped": 1.0}, message)
        return
    start = time.perf_counter()
    with flow_writer(out_dir, source.key, n_frames, height, width, {**settings, "video": source.key}) as array:
        previous = read_frame(source, 0)
        for t in range(pairs):
            current = read_frame(source, t + 1)
            array[t] = pair_flow(source, previous, current, method, model)
            previous = current
            if (t + 1) % RELEASE_EVERY == 0:
                release_pages(array)
            elapsed = time.perf_counter() - start
            yield Progress(STAGE, t + 1, pairs, "pair", {"pairs_per_s": (t + 1) / max(elapsed, 1e-9)})
    seconds = time.perf_counter() - start
    message = f"{source.key}: wrote {pairs} flow pairs of {width}x{height} ({method}) in {seconds:.1f} s"
    yield Progress(STAGE, pairs, pairs, "pair", {"skipped": 0.0, "seconds": seconds}, message)


def read_frame(source: VideoSource, index: int) -> np.ndarray:
    """Frame ``index`` of a video; a read error names the video as well as the file and frame."""
    try:
        return source.reader.read(index)
    except InputError as exc:
        raise InputError(exc.path, f"video {source.key!r}: {exc.problem}") from None


def pair_flow(source: VideoSource, frame0: np.ndarray, frame1: np.ndarray, method: str, model: Any) -> np.ndarray:
    """The five stored channels of one pair.

    Returns
    -------
    channels : (H, W, 5) float32
        Forward (dx, dy), backward (dx, dy), occlusion (1.0 = occluded).
    """
    try:
        forward, backward = forward_backward_flow(frame0, frame1, method, model)
    except ValueError as exc:  # frames too small for flow
        raise InputError(source.reader.path, f"video {source.key!r}: {exc}") from None
    occluded = occlusion_mask(forward, backward)
    return np.concatenate([forward, backward, occluded[..., None].astype(np.float32)], axis=2)


def compute_flow(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    method: str = "dis",
    frames: str | os.PathLike | None = None,
    model: Any = None,
) -> Iterator[Progress]:
    """:func:`compute_video_flow` for every video of INPUT (dataset JSON, frame folder or video file).

    Yields
    ------
    Progress
        The events of each video in turn.
    """
    for source in iter_videos(input_path, frames):
        yield from compute_video_flow(source, out_dir, method, model)
