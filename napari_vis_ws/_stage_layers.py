"""Stored pipeline outputs of one video → napari layer-data tuples, with fixed names.

Every layer spans the video's frames on axes (t, y, x) at frame size, like the
``frames`` layer, so the whole set follows the current frame. Big data is
read lazily, one frame when it is shown (dask arrays with one frame per chunk).

Layer names (a contract: README, tests):

``frames``
    The video (made by :func:`napari_vis_ws._layers.frames_layer`).
``flow``
    RGB image: the forward optical flow of each frame on the Middlebury colour
    wheel (hue = direction, saturation = speed, white = still); the last frame
    shows the motion it came with. One normalising speed for the whole video
    (the largest of the ``flow vectors``) so colours compare across frames.
``flow vectors``
    Vectors: the same flow sampled every 16 pixels, drawn as arrows (t, y, x) → (0, dy, dx).
``cam [<class>]``, ``f-cam [<class>]``
    Image per class tagged in the video: its class activation map (CAM) and
    flow-amplified CAM (f-CAM), max-normalised to 0..1, added on top of the
    frames; zero in frames where the class is not tagged or not computed yet.
``boundary``
    Image: IRN's class-boundary map B (0..1), from its stride-4 grid to frame size.
``displacement``
    Vectors: IRN's displacement field D, every 8 pixels, in image pixels.
``centroids``
    Points (t, y, x): one per instance group, where the displacement field converges.
``pseudo-labels``
    Labels: flowIRN's instance pseudo-labels, linked across frames so one
    object keeps one id (:func:`training.link.link_instances`); each id's
    ``class``, ``category_id``, ``score`` and ``frames`` in the layer's features.

``predictions``
    Labels: the tubes a trained Mask R-CNN / MaskConsist model predicted,
    highest score on top; each id's class and score in the features.
``matches``, ``warped masks``
    Shapes: MaskConsist's inter-frame matches (:func:`match_layers`).

Where they are read from, in a project (run) folder ``RUN`` (the layout of
``vis-ws pseudo-labels TAGS --out RUN``): ``RUN/flow`` (flow), ``RUN/cams``
(CAMs), ``RUN/pseudo/<video>/irn.npz`` (boundary, displacement, centroids) and
``RUN/pseudo/<video>/pseudo.npz`` (pseudo-labels). Predictions come from
``RUN/results.json`` (``vis-ws pipeline`` / ``predict``) when it holds the
video, else ``RUN/predictions/<video>.json`` (one video predicted from the
Training dock); matches from ``RUN/matches/<video>.json`` or
``RUN/maskconsist/matches/<video>.json``. A missing stage gives no layer.

When the pseudo-labels are shown with predictions or matches, the
pseudo-labels layer carries their MaskConsist disagreement per frame in
``metadata["vis_ws"]["disagreement"]`` (:func:`labels_disagreement`), which
the Corrections dock's review queue ranks frames by.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from napari_vis_ws._layers import META_KEY, labels_layer
from napari_vis_ws._layers import stage_meta as _meta
from napari_vis_ws._prediction_layers import PREDICTIONS, labels_disagreement, match_layers, run_prediction_layers
from napari_vis_ws._project import matches_path
from training.run_folder import Project

FLOW = "flow"
FLOW_VECTORS = "flow vectors"
BOUNDARY = "boundary"
DISPLACEMENT = "displacement"
CENTROIDS = "centroids"
PSEUDO_LABELS = "pseudo-labels"
FLOW_STEP = 16  # flow vectors every 16 image pixels
RELEASE_EVERY = 16  # frames of flow read through the map between two unmappings of its pages
DISPLACEMENT_STEP = 2  # displacement vectors every 2 grid pixels (8 image pixels)
STAGES = ("flow", "cams", "pseudo-labels")  # layer.metadata[META_KEY]["stage"] of the first module's layers
SHOWN_STAGES = (*STAGES, "predictions", "matches")  # and shows the outputs of these too


def cam_name(class_name: str) -> str:
    """Name of a class's CAM layer: ``cam [dog]``."""
    return f"cam [{class_name}]"


def fcam_name(class_name: str) -> str:
    """Name of a class's f-CAM layer: ``f-cam [dog]``."""
    return f"f-cam [{class_name}]"


def layer_rank(name: str) -> int:
    """Drawing order of the stage layers, bottom first: flow, CAMs, f-CAMs, boundary, labels, vectors, points."""
    order = [FLOW, FLOW_VECTORS, "cam [", "f-cam [", BOUNDARY, PSEUDO_LABELS, PREDICTIONS, DISPLACEMENT, CENTROIDS]
    return next((i for i, prefix in enumerate(order) if name == prefix or name.startswith(prefix)), len(order))


def newest_result(names: list[str]) -> str | None:
    """The layer showing the newest result among ``names``: the one a person wants to see, the rest stay hidden.

    Predictions, else pseudo-labels, else the first f-CAM, else the first CAM,
    else the flow; None when ``names`` has none of them. (Six additive CAM
    layers shown at once make the canvas white.)
    """
    for prefix in (PREDICTIONS, PSEUDO_LABELS, "f-cam [", "cam [", FLOW):
        hit = next((n for n in names if n == prefix or (prefix.endswith("[") and n.startswith(prefix))), None)
        if hit is not None:
            return hit
    return None


def lazy_frames(n_frames: int, frame_shape: tuple[int, ...], dtype: Any, read: Callable[[int], np.ndarray]) -> Any:
    """A lazy (T, *frame_shape) dask array whose frame t is ``read(t)``, one frame per chunk.

    Each call gets a new graph name, so a rebuilt array is read afresh (napari
    caches dask chunks by name) once a stage has written more frames.
    """
    import dask.array as da

    def block(index: np.ndarray) -> np.ndarray:
        return np.asarray(read(int(index[0])), dtype=dtype)[None]

    index = da.arange(n_frames, chunks=1)
    chunks = ((1,) * n_frames, *((s,) for s in frame_shape))
    new_axis = list(range(1, 1 + len(frame_shape)))
    name = f"vis-ws-{uuid.uuid4().hex}"
    return index.map_blocks(block, new_axis=new_axis, chunks=chunks, dtype=dtype, name=name)


# -- flow ---------------------------------------------------------------------
def flow_vectors(vf: Any, step: int = FLOW_STEP) -> np.ndarray:
    """The motion of every frame sampled on a grid, as napari vectors.

    Parameters
    ----------
    vf : training.flow.VideoFlow
    step : int
        Grid spacing in pixels (first sample at ``step // 2``).

    Returns
    -------
    (N, 2, 3) float32
        Per vector ``[(t, y, x), (0, dy, dx)]``.
    """
    from training.flow.storage import release_pages

    h, w = (int(s) for s in vf.data.shape[1:3])
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    out = []
    for t in range(vf.n_frames):
        if t < vf.n_frames - 1:  # the strided slice reads only the sampled rows of the memmap
            sampled = np.asarray(vf.data[t, step // 2 :: step, step // 2 :: step, 0:2], np.float32)
            if t % RELEASE_EVERY == RELEASE_EVERY - 1:
                release_pages(vf.data)  # else every page read stays resident: 5.5 GiB at 2000 frames of 480x640
        else:
            sampled = vf.motion(t)[step // 2 :: step, step // 2 :: step]
        vec = np.zeros((ys.size, 2, 3), np.float32)
        vec[:, 0] = np.stack([np.full(ys.size, t), ys.ravel(), xs.ravel()], axis=1)
        vec[:, 1, 1] = sampled[..., 1].ravel()
        vec[:, 1, 2] = sampled[..., 0].ravel()
        out.append(vec)
    release_pages(vf.data)
    return np.concatenate(out) if out else np.zeros((0, 2, 3), np.float32)


def flow_layers(flow_dir: str | os.PathLike, key: str) -> list[tuple]:
    """``flow`` (colour wheel, lazy (T, H, W, 3) uint8) and ``flow vectors`` of a video; [] without flow."""
    from training.errors import InputError
    from training.flow import flow_to_color, read_video_flow

    try:
        vf = read_video_flow(flow_dir, key)
    except InputError:
        return []
    h, w = (int(s) for s in vf.data.shape[1:3])
    vectors = flow_vectors(vf)
    speed = float(np.hypot(vectors[:, 1, 1], vectors[:, 1, 2]).max(initial=0.0))
    scale = speed if speed > 0 else None

    def color(t: int) -> np.ndarray:
        return flow_to_color(vf.motion(t), max_magnitude=scale)

    extra = {"method": vf.meta.get("method"), "max_magnitude": speed}

    def common() -> dict[str, Any]:  # each layer its own metadata dict
        return {"axis_labels": ("t", "y", "x"), "metadata": _meta("flow", key, **extra)}

    colors = lazy_frames(vf.n_frames, (h, w, 3), np.uint8, color)
    image = (colors, {"name": FLOW, "rgb": True, "opacity": 0.5, **common()}, "image")
    arrows = (
        vectors,
        {"name": FLOW_VECTORS, "edge_width": 1.0, "edge_color": "white", "vector_style": "arrow", **common()},
        "vectors",
    )
    return [image, arrows]


# -- CAMs ---------------------------------------------------------------------
def cam_layers(
    cams_dir: str | os.PathLike, key: str, categories: list[dict[str, Any]], shape: tuple[int, int, int]
) -> list[tuple]:
    """``cam [<class>]`` and ``f-cam [<class>]`` (lazy (T, H, W) float32) per class tagged in the video.

    Parameters
    ----------
    cams_dir : path
        ``vis-ws cams`` output (``RUN/cams``).
    key : str
        The video's output name.
    categories : list of {"id", "name"}
    shape : (T, H, W)
        The video's frame count and size. Frames not written yet read as zeros,
        so the layers can be shown while the stage runs.

    Returns
    -------
    list of layer-data tuples; [] when the video has no CAMs.
    """
    from training.cam.store import RECORD, frame_path, read_frame_cams
    from training.errors import InputError
    from training.json_io import read_json

    record_path = Path(cams_dir) / key / RECORD
    try:
        record = read_json(record_path)
    except InputError:
        return []
    frame_keys = record.get("frame_keys") or []
    classes = sorted({int(c) for keys in frame_keys for c in keys})
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
    n, h, w = shape

    @lru_cache(maxsize=4)  # the class layers of a frame share one read of its file
    def frame(t: int, stamp: int) -> Any:
        return read_frame_cams(cams_dir, key, t)

    def reader(category: int, attr: str) -> Callable[[int], np.ndarray]:
        def read(t: int) -> np.ndarray:
            path = frame_path(cams_dir, key, t)
            try:
                maps = frame(t, path.stat().st_mtime_ns)
            except (FileNotFoundError, InputError):  # not computed yet
                return np.zeros((h, w), np.float32)
            rows = np.flatnonzero(maps.keys == category)
            maps_hr = getattr(maps, attr)
            if not len(rows) or maps_hr is None or maps_hr.shape[1:] != (h, w):
                return np.zeros((h, w), np.float32)
            return maps_hr[rows[0]]

        return read

    layers = []
    kinds = [("high_res", cam_name, "magma")]
    if record.get("fcam") is not None:
        kinds.append(("fcams_high_res", fcam_name, "inferno"))
    for attr, naming, colormap in kinds:
        for c in classes:
            kwargs = {
                "name": naming(names.get(c, str(c))),
                "colormap": colormap,
                "blending": "additive",
                "contrast_limits": (0.0, 1.0),
                "opacity": 0.7,
                "axis_labels": ("t", "y", "x"),
                "metadata": _meta("cams", key, category_id=c),
            }
            layers.append((lazy_frames(n, (h, w), np.float32, reader(c, attr)), kwargs, "image"))
    return layers


# -- IRN and pseudo-labels ----------------------------------------------------
def grid_to_image(grid: np.ndarray, height: int, width: int, stride: int) -> np.ndarray:
    """Bilinear resampling of a grid map to frame size, grid pixel (i, j) on image pixel (stride i, stride j).

    Parameters
    ----------
    grid : (h, w) float
    height, width : int
    stride : int

    Returns
    -------
    (height, width) float32
    """
    import cv2

    map_y, map_x = np.mgrid[0:height, 0:width].astype(np.float32) / stride
    return cv2.remap(np.asarray(grid, np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def irn_layers(pseudo_dir: str | os.PathLike, key: str, shape: tuple[int, int, int]) -> list[tuple]:
    """``boundary`` (lazy (T, H, W) float32), ``displacement`` (vectors) and ``centroids`` (points); [] without them.

    Parameters
    ----------
    pseudo_dir : path
        Pseudo-label output (``RUN/pseudo``); reads ``<key>/irn.npz``.
    key : str
    shape : (T, H, W) of the video.
    """
    from training.irn.pseudo_labels import read_irn_maps

    maps = read_irn_maps(pseudo_dir, key)  # small: read once
    if maps is None:
        return []
    boundary, displacement, centroids, stride = maps.boundary, maps.displacement, maps.centroids, maps.stride
    n, h, w = shape
    s = DISPLACEMENT_STEP
    sampled = displacement[:, :, s // 2 :: s, s // 2 :: s]
    tt, gy, gx = np.meshgrid(
        np.arange(sampled.shape[0]),
        np.arange(s // 2, displacement.shape[2], s),
        np.arange(s // 2, displacement.shape[3], s),
        indexing="ij",
    )
    vectors = np.zeros((tt.size, 2, 3), np.float32)
    vectors[:, 0] = np.stack([tt.ravel(), gy.ravel() * stride, gx.ravel() * stride], axis=1)
    vectors[:, 1, 1] = sampled[:, 0].ravel() * stride
    vectors[:, 1, 2] = sampled[:, 1].ravel() * stride

    def common() -> dict[str, Any]:  # each layer its own metadata dict
        return {"axis_labels": ("t", "y", "x"), "metadata": _meta("pseudo-labels", key)}

    bound = (
        lazy_frames(n, (h, w), np.float32, lambda t: grid_to_image(boundary[t], h, w, stride)),
        {"name": BOUNDARY, "colormap": "gray", "blending": "additive", "contrast_limits": (0.0, 1.0), **common()},
        "image",
    )
    arrows = (
        vectors,
        {"name": DISPLACEMENT, "edge_width": 1.0, "edge_color": "orange", "vector_style": "arrow", **common()},
        "vectors",
    )
    points = (
        centroids.reshape(-1, 3),
        {
            "name": CENTROIDS,
            "size": 6,
            "face_color": "cyan",
            "symbol": "disc",
            "out_of_slice_display": False,
            **common(),
        },
        "points",
    )
    return [bound, arrows, points]


def pseudo_label_layers(
    pseudo_dir: str | os.PathLike,
    key: str,
    categories: list[dict[str, Any]],
    flow_dir: str | os.PathLike | None = None,
) -> list[tuple]:
    """``pseudo-labels``: the video's pseudo-labels linked across frames (with the flow when stored); [] without them.

    Returns
    -------
    list with one Labels layer-data tuple ((T, H, W) int32, features per id).
    """
    from training.errors import InputError
    from training.export import load_labels
    from training.flow import read_video_flow
    from training.link import link_instances

    path = Path(pseudo_dir) / key / "pseudo.npz"
    if not path.is_file():
        return []
    volume = load_labels(path)
    flow = None
    if flow_dir is not None:
        try:
            flow = read_video_flow(flow_dir, key)
        except InputError:
            flow = None
        if flow is not None and (flow.n_frames, *flow.data.shape[1:3]) != volume.labels.shape:
            flow = None  # the flow of another version of the video: link without it
    linked = link_instances(volume, flow)
    layer = labels_layer(linked, categories, PSEUDO_LABELS, {"path": str(path)})
    layer[1]["metadata"][META_KEY].update(stage="pseudo-labels", video_key=key)
    return [layer]


def project_layers(
    project: str | os.PathLike,
    key: str,
    categories: list[dict[str, Any]],
    shape: tuple[int, int, int],
    stages: tuple[str, ...] = STAGES,
    video: dict[str, Any] | None = None,
) -> list[tuple]:
    """Every stored layer of a video in a project folder, in drawing order (bottom first).

    Parameters
    ----------
    project : path
        Run folder with ``flow/``, ``cams/``, ``pseudo/`` (any may be missing).
    key : str
        The video's output name (:func:`training.data.sources.iter_videos`).
    categories : list of {"id", "name"}
    shape : (T, H, W) of the video.
    stages : subset of ``STAGES``
        Which stages to read.
    video : dict, optional
        The video's dataset entry; with it (the full view of a project), its predictions
        (:func:`run_prediction_layers`) add ``predictions`` and MaskConsist's matches add
        ``matches`` and ``warped masks``; with either, the pseudo-labels get their
        ``disagreement`` per frame.

    Each layer's ``metadata["vis_ws"]`` names its ``stage``, ``video_key`` and ``project``.
    """
    run = Path(project)
    folders = Project(run)
    layers: list[tuple] = []
    if "flow" in stages:
        layers += flow_layers(folders.flow, key)
    if "cams" in stages:
        layers += cam_layers(folders.cams, key, categories, shape)
    if "pseudo-labels" in stages:
        irn = irn_layers(folders.pseudo, key, shape)
        labels = pseudo_label_layers(folders.pseudo, key, categories, folders.flow)
        if labels:
            labels = corrected_labels(run, key, categories, labels[0])
        layers += irn[:1] + labels + irn[1:]  # boundary under the labels, vectors and points above
    if video is not None:
        predicted = run_prediction_layers(run, video, key, categories)
        matches = matches_path(run, key)
        layers += predicted
        layers += match_layers(matches, key) if matches is not None else []
        pseudo = next((ly for ly in layers if ly[1]["name"] == PSEUDO_LABELS), None)
        if pseudo is not None and (predicted or matches is not None):
            pred = predicted[0] if predicted else (None, {})
            dis = labels_disagreement(pseudo[0], pseudo[1]["features"], pred[0], pred[1].get("features"), matches)
            if dis is not None:
                pseudo[1]["metadata"][META_KEY]["disagreement"] = dis
    for _, kwargs, _ in layers:  # where the layer came from (the Corrections dock saves beside it)
        kwargs["metadata"][META_KEY]["project"] = str(run)
    return layers


def corrected_labels(
    project: str | os.PathLike, key: str, categories: list[dict[str, Any]], pseudo: tuple
) -> list[tuple]:
    """The ``pseudo-labels`` layer of a video as corrected in the project, when it holds its corrections.

    The Corrections dock saves them in ``PROJECT/corrections/<key>/``; a video
    with corrections is always shown with them (metadata ``corrected`` and
    ``reviewed``), never with the pseudo-labels they started from. Saved
    corrections of another shape (the video was remade) are ignored.

    Returns
    -------
    list with one Labels layer-data tuple (``pseudo`` itself without corrections).
    """
    from training.errors import InputError
    from training.project import load_project_state, video_dir

    if not (video_dir(project, key) / "labels.npz").is_file():
        return [pseudo]
    try:
        state = load_project_state(project, key)
    except InputError:
        return [pseudo]
    if state.volume.labels.shape != np.shape(pseudo[0]):
        return [pseudo]
    extra = {**pseudo[1]["metadata"][META_KEY], "corrected": True, "reviewed": sorted(state.reviewed)}
    layer = labels_layer(state.volume, state.categories or categories, PSEUDO_LABELS, extra)
    return [layer]


def labels_snapshot(viewer: Any, name: str = PSEUDO_LABELS) -> tuple[np.ndarray, dict[str, list], str | None] | None:
    """A copy of a shown (T, H, W) Labels layer, its features and video key (a worker must not read layers).

    Returns None when the viewer has no such layer or it is not a (T, H, W) volume.
    """
    if name not in viewer.layers or np.ndim(viewer.layers[name].data) != 3:
        return None
    layer = viewer.layers[name]
    features = layer.features
    key = layer.metadata.get(META_KEY, {}).get("video_key")
    return np.array(layer.data, copy=True), {str(c): list(features[c]) for c in features}, key


def attach_disagreement(viewer: Any, disagreement: np.ndarray | None) -> None:
    """Put per-frame MaskConsist disagreement (T,) on the shown pseudo-labels when their frame counts agree.

    The layer gets a new metadata dict, so the Corrections dock hears the change and re-ranks its review queue.
    """
    if disagreement is None or PSEUDO_LABELS not in viewer.layers:
        return
    layer = viewer.layers[PSEUDO_LABELS]
    if np.shape(layer.data)[0] == len(disagreement):
        meta = {**layer.metadata.get(META_KEY, {}), "disagreement": disagreement}
        layer.metadata = {**layer.metadata, META_KEY: meta}
