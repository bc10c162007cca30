"""A run folder or project as the plugin sees it, without Qt: what it holds, and a video's predictions from it.

Run discovery (:func:`detector_checkpoint`, :func:`has_predictions`,
:func:`predictions_path`, :func:`matches_path`) and prediction loading
(:func:`prediction_work`, run in a worker): the Pipeline dock's Predictions
stage and the Training dock's Load predictions both call it and show what it
hands over. The paths themselves are :class:`training.run_folder.Project`'s.

Layers go into the viewer through :func:`put_layers` (one layer:
:func:`put_layer`), the one rule every dock follows: a same-named layer of the
same kind takes the new data in place, anything else is replaced. It touches
the viewer, so only the main thread calls it; the Pipeline dock paces it one
layer per event-loop turn (:mod:`napari_vis_ws._placing`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_vis_ws._layers import META_KEY
from training.run_folder import Project


def predictions_path(run: str | os.PathLike, key: str) -> Path:
    """Where predicting one video from the Training dock writes it: ``RUN/predictions/<key>.json``."""
    return Project(run).predictions / f"{key}.json"


def detector_checkpoint(run: str | os.PathLike) -> Path | None:
    """The folder of a run's or project's trained detector (itself, its maskconsist/ or maskrcnn/), or None."""
    from training.detection.runs import detector_checkpoint as checkpoint_of
    from training.errors import InputError

    if Path(run).is_file():
        return None
    try:
        return checkpoint_of(run).parent
    except InputError:
        return None


def matches_path(run: str | os.PathLike, key: str) -> Path | None:
    """MaskConsist's matches of a video in a run folder (``matches/``) or project (``maskconsist/matches/``)."""
    return next((path for path in Project(run).matches(key) if path.is_file()), None)


def has_predictions(run: str | os.PathLike) -> bool:
    """Whether a folder holds predictions or a detector that can make them (a cheap look, nothing read)."""
    run = Path(run)
    if not run.is_dir():
        return False
    project = Project(run)
    return project.results.is_file() or project.predictions.is_dir() or detector_checkpoint(run) is not None


@dataclass
class LoadedPredictions:
    """What :func:`prediction_work` hands to the main thread at its end.

    Attributes
    ----------
    key : str, the video's output name
    layers : layer-data tuples (``predictions``, and ``matches``/``warped masks`` when the run has them)
    disagreement : list of T floats, or None (no pseudo-labels of this video to compare with)
    predicted : str, where the predictions were just written ("" when they were read as stored)
    """

    key: str
    layers: list[tuple]
    disagreement: list[float] | None
    predicted: str = ""


def prediction_work(
    dataset_json: Path,
    video_id: int,
    run: Path,
    categories: list[dict[str, Any]],
    device: str = "auto",
    flow_dirs: tuple[Path, ...] = (),
    pseudo: tuple[np.ndarray, dict[str, list], str | None] | None = None,
) -> Iterator[Any]:
    """Predictions of one video from a run folder: progress events while predicting, then a LoadedPredictions.

    Parameters
    ----------
    dataset_json : path, the dataset or tags JSON of the video
    video_id : int
    run : path, a ``vis-ws train`` run folder or a project (``results.json``, ``maskconsist/``, ``maskrcnn/``)
    categories : list of {"id", "name"}, the dataset's (the run's ``categories.json`` wins)
    device : str
    flow_dirs : folders to look for the video's flow in (tubes are linked along it when found)
    pseudo : ((T, H, W) int, features, video key or None), optional
        The pseudo-labels shown, for their disagreement with the predictions (when of this video).

    Raises
    ------
    InputError
        No predictions of the video and no trained detector in ``run``; bad files.
    """
    from napari_vis_ws._prediction_layers import labels_disagreement, match_layers, run_prediction_layers
    from napari_vis_ws._stages import video_source
    from training import run_folder
    from training.errors import InputError
    from training.flow.storage import flow_paths
    from training.json_io import read_json

    if not run.is_dir():
        raise InputError(run, "no such run folder: choose the output folder of a Mask R-CNN or MaskConsist training")
    source = video_source(dataset_json, video_id)
    model = detector_checkpoint(run)
    if model is not None and run_folder.categories(model).is_file():
        categories = list(read_json(run_folder.categories(model)))
    layers = run_prediction_layers(run, source.video, source.key, categories)
    predicted = ""
    if not layers:
        if model is None:
            what = f"no predictions of video {source.key} and no trained detector (checkpoint.pt) to make them"
            raise InputError(run, f"{what}: train Mask R-CNN or MaskConsist first, or choose its run folder")
        from training.detection.predict import predict

        out = predictions_path(run, source.key)
        flow = next((d for d in flow_dirs if all(p.is_file() for p in flow_paths(d, source.key))), None)
        yield from predict(dataset_json, model, out, flow, device, video_ids=[video_id])
        predicted = str(out)
        layers = run_prediction_layers(run, source.video, source.key, categories)
    matches = matches_path(run, source.key)
    dis = None
    if pseudo is not None and pseudo[2] in (None, source.key):
        pred = layers[0] if layers else (None, {})
        dis = labels_disagreement(pseudo[0], pseudo[1], pred[0], pred[1].get("features"), matches)
    if matches is not None:
        layers += match_layers(matches, source.key)
    for _, kwargs, _ in layers:
        kwargs["metadata"][META_KEY].update(project=str(run), video_key=source.key)
    yield LoadedPredictions(source.key, layers, dis, predicted)


def fits(layer: Any, kwargs: dict[str, Any], kind: str) -> bool:
    """Whether ``layer`` can take the data of a layer-data tuple (same kind, both RGB or neither).

    Shapes never do: they carry per-shape styles, so they are added anew.
    """
    same = layer.__class__.__name__.lower() == kind and kind != "shapes"
    return same and bool(getattr(layer, "rgb", False)) == bool(kwargs.get("rgb"))


def put_layer(
    viewer: Any, data: Any, kwargs: dict[str, Any], kind: str, restyle: bool = False, visible: bool = True
) -> None:
    """Add a layer, or give a same-named layer of the same kind the new data (its features and metadata too).

    An updated layer keeps its display settings (opacity, visibility,
    contrast) unless ``restyle``, for a layer reused under a new name; a new
    one is shown when ``visible``.

    Parameters
    ----------
    viewer : napari.Viewer
    data, kwargs, kind : a layer-data tuple (``kwargs["name"]`` names the layer)
    """
    name = kwargs["name"]
    if restyle or name not in viewer.layers:
        kwargs = {**kwargs, "visible": visible}
    if name in viewer.layers:
        layer = viewer.layers[name]
        if fits(layer, kwargs, kind):
            layer.data = data
            if "features" in kwargs:
                layer.features = kwargs["features"]
            if restyle:
                for key in ("colormap", "contrast_limits", "blending", "opacity", "visible"):
                    if key in kwargs:
                        setattr(layer, key, kwargs[key])
            layer.metadata = {**layer.metadata, **kwargs.get("metadata", {})}
            return
        viewer.layers.remove(name)
    getattr(viewer, f"add_{kind}")(data, **kwargs)


def put_layers(viewer: Any, layers: list[tuple], restyle: bool = False) -> None:
    """:func:`put_layer` each layer-data tuple, at once (shown unless its kwargs say ``visible=False``).

    With ``restyle``, a reused layer takes the new display settings too, as a
    file opened anew should look.
    """
    for data, kwargs, kind in layers:
        put_layer(viewer, data, kwargs, kind, restyle, visible=kwargs.get("visible", True))
