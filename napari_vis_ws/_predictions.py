"""Predictions of one video for the viewer: read from a run, or made by its detector (no Qt; run in a worker).

The Pipeline dock's Predictions stage and the Training dock's Load predictions
both call :func:`prediction_work` and show what it hands over.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_vis_ws._layers import META_KEY


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
    from napari_vis_ws._prediction_layers import (
        detector_checkpoint,
        labels_disagreement,
        match_layers,
        matches_path,
        predictions_path,
        run_prediction_layers,
    )
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
