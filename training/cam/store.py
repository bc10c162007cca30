"""CAMs and f-CAMs on disk, one file per frame, for the viewer and for IRN (METHOD.md §2-§4).

Layout::

    OUT/<video key>/cams.json    what made the frames: model, checkpoint hash,
                                 scales, f-CAM parameters, flow, tags
    OUT/<video key>/00000.npz    one frame: float16 ``cams`` (K', h4, w4) at the
                                 stride-4 grid, ``high_res`` (K', H, W),
                                 ``fcams`` and ``fcams_high_res`` when a flow
                                 was given, int32 ``keys`` (the K' category ids)

Every file is written atomically, and a frame file exists only once its
record does, so a frame file is always from the recorded model: rerunning
skips the frames already written with the same model and parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.atomic import write_json, write_npz
from training.cam.fcam import AMPLIFICATION, THRESHOLD, fcam
from training.cam.infer import SCALES, make_cams
from training.data.sources import iter_videos
from training.data.tags import load_tags, tag_matrix
from training.errors import InputError
from training.json_io import read_json
from training.progress import Progress
from training.run_folder import CAMS_RECORD
from training.working_scale import recorded_working_size, working_scale

RECORD = CAMS_RECORD
_FRAME = re.compile(r"^\d{5,}\.npz$")


@dataclass
class FrameCAMs:
    """The stored maps of one frame.

    Attributes
    ----------
    keys : (K',) int32
        Category ids of the maps, in order (the frame's tagged classes).
    cams : (K', h4, w4) float32
        CAMs at the stride-4 grid ((H-1)//4+1, (W-1)//4+1), max-normalised.
    high_res : (K', H, W) float32
        The same at frame size.
    fcams, fcams_high_res : float32 arrays like ``cams`` / ``high_res``, or None
        Flow-amplified CAMs (METHOD.md §3), when a flow was given.
    """

    keys: np.ndarray
    cams: np.ndarray
    high_res: np.ndarray
    fcams: np.ndarray | None = None
    fcams_high_res: np.ndarray | None = None


def frame_path(out: str | os.PathLike, key: str, t: int) -> Path:
    """``OUT/<key>/<t:05d>.npz``."""
    return Path(out) / key / f"{t:05d}.npz"


def write_frame_cams(out: str | os.PathLike, key: str, t: int, maps: FrameCAMs) -> Path:
    """Write one frame's maps as float16 (atomically); returns the file.

    Raises
    ------
    ValueError
        Arrays whose class counts or sizes disagree.
    """
    k = len(maps.keys)
    arrays: dict[str, np.ndarray] = {"keys": np.asarray(maps.keys, np.int32)}
    for name in ("cams", "high_res", "fcams", "fcams_high_res"):
        a = getattr(maps, name)
        if a is None:
            continue
        if a.ndim != 3 or a.shape[0] != k:
            raise ValueError(f"{name} must be ({k}, h, w) for {k} keys, got {a.shape}")
        arrays[name] = np.asarray(a, np.float16)
    if maps.fcams is not None and maps.fcams.shape != maps.cams.shape:
        raise ValueError(f"fcams {maps.fcams.shape} and cams {maps.cams.shape} differ in shape")
    path = frame_path(out, key, t)
    write_npz(path, **arrays)
    return path


def read_frame_cams(out: str | os.PathLike, key: str, t: int) -> FrameCAMs:
    """Read the maps of frame ``t`` of video ``key`` (see :class:`FrameCAMs`).

    Raises
    ------
    InputError
        No such frame file (run ``vis-ws cams`` first) or a damaged one.
    """
    path = frame_path(out, key, t)
    if not path.is_file():
        raise InputError(path, f"no CAMs for video {key!r} frame {t} (run 'vis-ws cams' first)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"not a readable CAM file ({type(exc).__name__})") from None
    if not {"keys", "cams", "high_res"} <= set(data):
        raise InputError(path, "not a CAM file: needs keys, cams and high_res")

    def get(name: str) -> np.ndarray | None:
        return data[name].astype(np.float32) if name in data else None

    return FrameCAMs(
        keys=data["keys"].astype(np.int32),
        cams=data["cams"].astype(np.float32),
        high_res=data["high_res"].astype(np.float32),
        fcams=get("fcams"),
        fcams_high_res=get("fcams_high_res"),
    )


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (fingerprint of the checkpoint that made the CAMs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare_video(out: str | os.PathLike, key: str, record: dict[str, Any]) -> set[int]:
    """Start (or continue) a video's output; returns the frames already written by the same record.

    When ``OUT/<key>/cams.json`` matches ``record`` the existing frame files
    are kept. Otherwise they were made by another model or with other
    parameters: the record and the frame files are removed and the new record
    is written before any frame.
    """
    folder = Path(out) / key
    rec_path = folder / RECORD
    expect = json.loads(json.dumps(record))
    if rec_path.is_file():
        try:
            same = read_json(rec_path) == expect
        except InputError:
            same = False
        if same:
            return {int(p.stem) for p in folder.iterdir() if _FRAME.match(p.name)}
        rec_path.unlink()
    if folder.is_dir():
        for p in folder.iterdir():
            if _FRAME.match(p.name):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
    write_json(rec_path, record, indent=1)
    return set()


def _class_columns(tags: dict[str, Any], tags_path: Path, categories: list[dict[str, Any]], run: Path) -> list[int]:
    """For each category of the tags file, its classifier output (-1 when it is never tagged)."""
    model_index = {c["id"]: i for i, c in enumerate(categories)}
    used = {c for t in tags["frame_tags"] for c in t["category_ids"]}
    for c in tags["categories"]:
        if c["id"] in used and c["id"] not in model_index:
            raise InputError(
                tags_path,
                f"category {c['id']} ({c.get('name')}) is tagged but the model in {run} was not trained on it",
            )
    return [model_index.get(c["id"], -1) for c in tags["categories"]]


def write_cams(
    tags_path: str | os.PathLike,
    run: str | os.PathLike,
    out: str | os.PathLike,
    flow_dir: str | os.PathLike | None = None,
    amplification: float = AMPLIFICATION,
    threshold: float = THRESHOLD,
    frames: str | os.PathLike | None = None,
    device: str = "auto",
    scales: Sequence[float] = SCALES,
    flip: bool = True,
    video_ids: list[int] | None = None,
) -> Iterator[Progress]:
    """Compute and store the CAMs (and f-CAMs) of every frame of a tagged dataset.

    Each frame's tags decide its classes; a frame without tags gets empty
    (0, h, w) maps.

    Parameters
    ----------
    tags_path : path
        Frame-tags JSON (frames in ``JPEGImages/`` beside it, or ``frames``).
    run : path
        A ``train-cam`` run folder.
    out : path
        Output folder (see the module docstring).
    flow_dir : path, optional
        ``vis-ws flow`` output; adds f-CAMs.
    amplification, threshold : float
        f-CAM A and T (METHOD.md §3).
    frames : path, optional
    device : str
    scales, flip
        CAM inference (METHOD.md §2), at the classifier's recorded working
        scale (:mod:`training.working_scale`); the maps are stored at frame size.
    video_ids : list of int, optional
        Only these videos of the tags file (the viewer works on one video).

    Yields
    ------
    Progress
        One per frame.

    Raises
    ------
    InputError
        Not a frame-tags file, a tagged category the model does not know,
        missing or mismatched flow (checked for every video before anything is
        written), unreadable frames (naming the file and frame).
    """
    from training.cam.train import load_run
    from training.device import describe_device, resolve_device
    from training.flow.storage import read_video_flow

    tags_path, run = Path(tags_path), Path(run)
    tags = load_tags(tags_path)
    # Validate the parameters before loading anything heavy.
    fcam(np.zeros((1, 1, 1), np.float32), np.zeros((1, 1, 2), np.float32), amplification, threshold)
    dev = resolve_device(device)
    model, categories, ckpt = load_run(run, dev)
    working_size = recorded_working_size(run)
    columns = _class_columns(tags, tags_path, categories, run)
    cat_ids = [c["id"] for c in tags["categories"]]
    sources = list(iter_videos(tags_path, frames, video_ids))
    flows = {}
    flow_root = Path(flow_dir).resolve() if flow_dir is not None else None
    if flow_dir is not None:
        for src in sources:
            vf = read_video_flow(flow_dir, src.key)
            if vf.n_frames != len(src.reader) or tuple(vf.data.shape[1:3]) != src.reader.frame_shape:
                raise InputError(
                    Path(flow_dir) / src.key,
                    f"flow of video {src.key!r} is {vf.n_frames} frames of {vf.data.shape[2]}x{vf.data.shape[1]}, "
                    f"the video has {len(src.reader)} of {src.reader.frame_shape[1]}x{src.reader.frame_shape[0]}",
                )
            flows[src.key] = vf
    digest = file_sha256(ckpt)
    total = sum(len(s.reader) for s in sources)
    done = 0
    yield Progress("cams", 0, total, "frame", message=f"CAMs of {len(sources)} videos on {describe_device(dev)}")
    for src in sources:
        matrix, _ = tag_matrix(tags, src.video["id"])
        frame_keys = [[cat_ids[j] for j in np.flatnonzero(row)] for row in matrix]
        record = {
            "model": str(run.resolve()),
            "checkpoint_sha256": digest,
            "scales": [float(s) for s in scales],
            "flip": bool(flip),
            "fcam": {"amplification": float(amplification), "threshold": float(threshold)} if flows else None,
            "flow": {"dir": str(flow_root), **flows[src.key].meta} if flows else None,
            "frame_keys": frame_keys,
        }
        if working_size:  # records of frame-size CAMs, written before the working scale, stay valid
            record["working_size"] = working_size
        scale = working_scale(src.reader.frame_shape, working_size)
        written = prepare_video(out, src.key, record)
        for t in range(len(src.reader)):
            if t not in written:
                idx = [columns[j] for j in np.flatnonzero(matrix[t])]
                maps = frame_maps(model, src.reader.read(t), idx, frame_keys[t], scales, flip, scale)
                if flows:
                    motion = flows[src.key].motion(t)
                    maps.fcams = fcam(maps.cams, motion, amplification, threshold)
                    maps.fcams_high_res = fcam(maps.high_res, motion, amplification, threshold)
                write_frame_cams(out, src.key, t, maps)
            done += 1
            yield Progress("cams", done, total, "frame")


def frame_maps(
    model: Any,
    image: np.ndarray,
    class_indices: Sequence[int],
    keys: Sequence[int],
    scales: Sequence[float],
    flip: bool,
    scale: float = 1.0,
) -> FrameCAMs:
    """CAMs of one frame as a :class:`FrameCAMs` (without f-CAMs), made at the working ``scale``, kept at frame size."""
    res = make_cams(model, image, class_indices, scales, flip, scale)
    return FrameCAMs(np.asarray(keys, np.int32), res["cams"], res["high_res"])
