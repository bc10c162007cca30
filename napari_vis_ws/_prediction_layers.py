"""Predictions and MaskConsist matches of one video → napari layer-data tuples (``predictions``, ``matches``,
``warped masks``), and the MaskConsist disagreement of pseudo-labels with them.

The layer names and where each is read from are listed in :mod:`napari_vis_ws._stage_layers`,
which builds a project's whole view from these and the first module's layers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_vis_ws._layers import META_KEY, labels_layer
from napari_vis_ws._layers import stage_meta as _meta
from napari_vis_ws._project import predictions_path
from training.run_folder import Project

PREDICTIONS = "predictions"
MATCHES = "matches"
WARPED = "warped masks"
DISAGREEMENT_SCORE = 0.5  # predictions below it are left out of the disagreement (as in MaskConsist's matching)
SCORE_THRESHOLD = 0.5  # the predictions layer draws the instances scored at least this (the docks' slider)
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
"""Colour of category id c: ``CLASS_COLORS[(c - 1) % 9]`` (matplotlib's tab10 without its grey)."""
HIDDEN = (0.0, 0.0, 0.0, 0.0)


def class_color(category_id: int, categories: Sequence[dict[str, Any]] = ()) -> str:
    """The colour a class is drawn in: the ``color`` its entry in ``categories`` holds (chosen in the Tags dock),
    else :data:`CLASS_COLORS`'s."""
    chosen = next((c.get("color") for c in categories if int(c["id"]) == int(category_id)), None)
    return str(chosen) if chosen else CLASS_COLORS[(int(category_id) - 1) % len(CLASS_COLORS)]


def score_colormap(
    features: Any, threshold: float, categories: Sequence[dict[str, Any]] = ()
) -> dict[int | None, Any]:
    """A Labels colormap (napari's ``DirectLabelColormap`` dict) that draws instances scored ≥ ``threshold``.

    Parameters
    ----------
    features : DataFrame or dict of columns
        The layer's ``index``, ``category_id`` and ``score`` per id.
    threshold : float
        In [0, 1].
    categories : list of dict
        The tags file's classes, for the colours chosen there.

    Returns
    -------
    dict
        id → its class colour (:func:`class_color`) when its score reaches
        ``threshold``, else transparent; ``None`` (every other id, the
        background) transparent. Low-score noise is not drawn at all.
    """
    table = _table(features)
    rows = zip(table.get("index", []), table.get("category_id", []), table.get("score", []), strict=True)
    colors: dict[int | None, Any] = {None: HIDDEN}
    for index, category, score in rows:
        if int(index) != 0:
            colors[int(index)] = class_color(category, categories) if float(score) >= threshold else HIDDEN
    return colors


def show_above(layer: Any, threshold: float) -> tuple[int, int]:
    """Draw only the instances of a predictions layer scored ≥ ``threshold``; (shown, all) instance counts."""
    meta = layer.metadata.get(META_KEY, {})
    colors = score_colormap(layer.features, threshold, meta.get("categories") or ())
    layer.colormap = colors
    layer.metadata = {**layer.metadata, META_KEY: {**meta, "score_threshold": threshold}}
    instances = [c for k, c in colors.items() if k is not None]
    return sum(c != HIDDEN for c in instances), len(instances)


def _video_results(path: Path, video_id: int) -> list[dict[str, Any]] | None:
    """The entries of video ``video_id`` in a YouTube-VIS results file; None without the file."""
    from training.errors import InputError
    from training.json_io import read_json

    if not path.is_file():
        return None
    results = read_json(path)
    if not isinstance(results, list):
        raise InputError(path, "expected a YouTube-VIS results list")
    return [r for r in results if isinstance(r, dict) and r.get("video_id") == video_id]


def _prediction_layer(
    path: Path, mine: list[dict[str, Any]], video: dict[str, Any], categories: list[dict[str, Any]]
) -> tuple:
    from training.errors import InputError
    from training.export import ytvis_to_labels

    try:
        volume = ytvis_to_labels(mine, video)
    except ValueError as exc:
        raise InputError(path, f"video {video['id']}: {exc}") from None
    layer = labels_layer(volume, categories, PREDICTIONS, {"path": str(path)})
    layer[1]["metadata"][META_KEY].update(stage="predictions", video_key=video.get("name", ""))
    # drawn from SCORE_THRESHOLD up; the docks' slider moves it
    layer[1]["colormap"] = score_colormap(layer[1]["features"], SCORE_THRESHOLD, categories)
    layer[1]["opacity"] = 0.7
    return layer


def prediction_layers(
    results_json: str | os.PathLike, video: dict[str, Any], categories: list[dict[str, Any]]
) -> list[tuple]:
    """``predictions``: the tubes a trained model predicted for this video (``vis-ws predict``); [] without them.

    Overlapping tubes are painted highest score on top; each id's class and
    score are in the layer's features (napari's status bar shows them under
    the cursor). Drawn in its class's colour when scored at least
    :data:`SCORE_THRESHOLD`, not drawn below (:func:`show_above` moves it).
    """
    path = Path(results_json)
    mine = _video_results(path, video["id"])
    return [] if mine is None else [_prediction_layer(path, mine, video, categories)]


def run_prediction_layers(
    run: str | os.PathLike, video: dict[str, Any], key: str, categories: list[dict[str, Any]]
) -> list[tuple]:
    """``predictions`` of a video in a run folder or project; [] when it has none for the video.

    Read from ``RUN/results.json`` when it holds the video, else from
    ``RUN/predictions/<key>.json``.
    """
    results = Project(run).results
    mine = _video_results(results, video["id"])
    if not mine:
        results = predictions_path(run, key)
        mine = _video_results(results, video["id"])
        if mine is None:
            return []
    layer = _prediction_layer(results, mine, video, categories)
    layer[1]["metadata"][META_KEY]["video_key"] = key
    return [layer]


def _table(features: Any) -> dict[str, list]:
    """A layer's ``features`` (DataFrame or dict of columns) as a dict of lists."""
    if features is None:
        return {}
    return {str(c): list(features[c]) for c in features}


def labels_disagreement(
    pseudo: np.ndarray,
    pseudo_features: Any,
    predictions: np.ndarray | None = None,
    prediction_features: Any = None,
    matches_json: str | os.PathLike | None = None,
) -> list[float] | None:
    """MaskConsist disagreement per frame of a pseudo-label volume, for the review queue; None without evidence.

    Parameters
    ----------
    pseudo : (T, H, W) int, the pseudo-labels (as shown, corrections included)
    pseudo_features : the pseudo-labels layer's features (``index``, ``category_id``)
    predictions : (T, H, W) int, optional, the ``predictions`` layer's data
    prediction_features : its features (``index``, ``category_id``, ``score``)
    matches_json : path, optional, the video's MaskConsist matches

    Predictions that are all below the score threshold (or none at all) give
    no evidence: a detector that sees nothing in the video would read as
    "disagreement 1.00" on every frame with pseudo-labels, ranking nothing.

    Returns
    -------
    list of T floats in [0, 1] (:func:`training.maskconsist.disagreement.video_disagreement`
    of :func:`~training.maskconsist.disagreement.frame_disagreement` and
    :func:`~training.maskconsist.disagreement.match_disagreement`), or None.
    """
    from training.errors import InputError
    from training.maskconsist.disagreement import frame_disagreement, match_disagreement, video_disagreement
    from training.maskconsist.targets import read_matches

    pseudo = np.asarray(pseudo)
    by_frame = None
    if predictions is not None and np.shape(predictions) == pseudo.shape:
        pt, qt = _table(pseudo_features), _table(prediction_features)

        def column(table: dict[str, list], name: str) -> dict[int, Any]:
            if name not in table or "index" not in table:
                return {}
            return {int(k): v for k, v in zip(table["index"], table[name], strict=True) if int(k)}

        pc, qc = column(pt, "category_id"), column(qt, "category_id")
        qs = {k: float(v) for k, v in column(qt, "score").items() if v is not None}
        kept = [k for k in np.unique(predictions).tolist() if k and qs.get(int(k), 1.0) >= DISAGREEMENT_SCORE]
        if kept:  # a detector that predicts nothing in the whole video disagrees equally with every frame: no evidence
            by_frame = frame_disagreement(pseudo, np.asarray(predictions), pc or None, qc or None, qs)
    by_match = None
    pairs = read_matches(matches_json) if matches_json is not None else None
    if pairs is not None:
        try:
            by_match = match_disagreement(pairs, pseudo.shape[0])
        except ValueError as exc:
            raise InputError(matches_json, str(exc)) from None
    both = video_disagreement(by_frame, by_match)
    return None if both is None else [round(float(d), 4) for d in both]


def _centre(box: list[float]) -> tuple[float, float]:
    x, y, w, h = box
    return y + h / 2, x + w / 2


def _rectangle(t: int, box: list[float]) -> list[list[float]]:
    x, y, w, h = box
    return [[t, y, x], [t, y, x + w], [t, y + h, x + w], [t, y + h, x]]


def match_layers(matches_json: str | os.PathLike, key: str) -> list[tuple]:
    """``matches`` and ``warped masks``: MaskConsist's inter-frame matches of a video; [] without them.

    ``matches`` draws, in frame t2 = t ± δ, a line from where frame t's expanded
    prediction lands after flow warping to the prediction it was matched
    with, coloured by the match's IoU (viridis: dark 0.5, bright 1.0); the
    line is thick where the prediction was transferred as a label.
    ``warped masks`` (hidden until asked for) outlines the warped boxes.
    Read from ``RUN/maskconsist/matches/<key>.json`` (``vis-ws train --step 2``).
    """
    from training.errors import InputError
    from training.maskconsist.targets import match_lines, read_matches, warped_boxes

    path = Path(matches_json)
    pairs = read_matches(path)
    if pairs is None:
        return []
    try:
        found = match_lines(pairs)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    lines, ious, widths = [], [], []
    for m in found:
        (y0, x0), (y1, x1) = _centre(m.warped_box), _centre(m.matched_box)
        lines.append(np.array([[m.t2, y0, x0], [m.t2, y1, x1]], np.float32))
        ious.append(m.iou)
        widths.append(3.0 if m.transferred else 1.0)
    boxes = [np.array(_rectangle(t2, b), np.float32) for t2, b in warped_boxes(pairs)]
    layers: list[tuple] = []
    if lines:
        from napari.utils.colormaps import ensure_colormap

        colours = ensure_colormap("viridis").map(np.clip((np.asarray(ious) - 0.5) / 0.5, 0, 1))
        kwargs = {
            "name": MATCHES,
            "shape_type": "line",
            "edge_color": colours,
            "edge_width": widths,
            "features": {"iou": ious, "transferred": [w > 1 for w in widths]},
            "metadata": _meta("matches", key, path=str(path)),
        }
        layers.append((lines, kwargs, "shapes"))
    if boxes:
        kwargs = {
            "name": WARPED,
            "shape_type": "polygon",
            "edge_color": "white",
            "face_color": "transparent",
            "edge_width": 1,
            "visible": False,
            "metadata": _meta("matches", key, path=str(path)),
        }
        layers.append((boxes, kwargs, "shapes"))
    return layers


def describe_matches(matches_json: str | os.PathLike | None) -> str:
    """One line on a video's MaskConsist matches, saying why when there are none; "" without a matches file."""
    from training.errors import InputError
    from training.maskconsist.targets import count_matches, read_matches

    try:
        pairs = read_matches(matches_json) if matches_json is not None else None
    except InputError:
        return ""  # the layers say what is wrong with the file
    if pairs is None:
        return ""
    counts = count_matches(pairs)
    if counts.matches:
        return (
            f"MaskConsist: {counts.matches} matches in {counts.pairs} frame pairs, "
            f"{counts.transferred} transferred as labels"
        )
    preds = counts.predictions
    why = (
        "the detector predicted nothing in these frames"
        if not preds
        else "no prediction warped along the flow overlapped one in the other frame at IoU > 0.5"
    )
    return f"MaskConsist matched nothing in {len(pairs)} frame pairs ({why}), so the matches layer is empty"
