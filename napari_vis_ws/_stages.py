"""The Pipeline dock's stages: a user's action on one video → the backend generator that does it.

No Qt here: each function runs in a napari worker and yields the backend's
progress events; :mod:`napari_vis_ws._widgets.pipeline` turns them into
progress bars and layers. The settings are the ones the project's runs
recorded (working scale, instance background score), so a stage run from the
dock makes what ``vis-ws`` makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_vis_ws._prediction_layers import detector_checkpoint, predictions_path
from napari_vis_ws._predictions import prediction_work
from training import run_folder
from training.run_folder import Project

if TYPE_CHECKING:
    from training.data.sources import VideoSource

MODEL_HINT = "train it from the Training dock or with `vis-ws pseudo-labels`"
DETECTOR_HINT = "train one with `vis-ws pipeline {tags} --out {project}` or the Training dock (Mask R-CNN, MaskConsist)"


def video_source(tags: Path, video_id: int) -> VideoSource:
    """The video ``video_id`` of a dataset or tags JSON."""
    from training.data.sources import iter_videos
    from training.errors import InputError

    for source in iter_videos(tags, video_ids=[video_id]):
        return source
    raise InputError(tags, f"no video with id {video_id}")


def video_shape(source: VideoSource) -> tuple[int, int, int]:
    """(T, H, W) of a video."""
    return (len(source.reader), *source.reader.frame_shape)


def flow_stage(tags: Path, project: Path, video_id: int) -> Iterator[Any]:
    """Optical flow of the video into ``project/flow`` (skipped when already there)."""
    from training.flow import compute_video_flow

    yield from compute_video_flow(video_source(tags, video_id), Project(project).flow, method="dis")


def cams_stage(tags: Path, project: Path, video_id: int) -> Iterator[Any]:
    """CAMs and f-CAMs of the video into ``project/cams`` with the classifier of ``project/cam``."""
    from training.cam.store import write_cams
    from training.errors import InputError
    from training.flow.storage import flow_paths

    folders = Project(project)
    run = folders.cam
    if not run_folder.checkpoint(run).is_file():
        raise InputError(None, f"no trained classifier in {run}: {MODEL_HINT}")
    source = video_source(tags, video_id)
    if not all(p.is_file() for p in flow_paths(folders.flow, source.key)):
        raise InputError(None, f"no optical flow of video {source.key} in {folders.flow}: run Flow first")
    yield from write_cams(tags, run, folders.cams, folders.flow, video_ids=[video_id])


def pseudo_labels_stage(tags: Path, project: Path, video_id: int) -> Iterator[Any]:
    """flowIRN pseudo-labels of the video into ``project/pseudo`` with the IRN of ``project/irn``."""
    from training.cam.store import RECORD
    from training.data.json_io import read_json
    from training.errors import InputError
    from training.irn.pseudo_labels import make_pseudo_labels, recorded_settings
    from training.irn.train import IRNTrainConfig

    folders = Project(project)
    run = folders.irn
    if not run_folder.checkpoint(run).is_file():
        raise InputError(None, f"no trained IRN in {run}: {MODEL_HINT}")
    source = video_source(tags, video_id)
    if not (folders.cams / source.key / RECORD).is_file():
        raise InputError(None, f"no CAMs of video {source.key} in {folders.cams}: run CAMs first")
    config = read_json(run_folder.config(run))
    variant = config.get("variant", "flowirn") if isinstance(config, dict) else "flowirn"
    use_fcams = IRNTrainConfig(variant=variant).uses_fcams  # as the run was trained (`vis-ws pseudo-labels`)
    # the other videos' pseudo-labels were made with these (`vis-ws pseudo-labels --instance-bg/--instance-norm`):
    # keep them; none yet: the same defaults as the CLI (None: from the classifier, training.irn.pseudo_labels)
    recorded = recorded_settings(folders.pseudo)
    bg, norm = recorded.get("instance_bg"), recorded.get("instance_norm")
    yield from make_pseudo_labels(
        tags, run, folders.cams, folders.pseudo, use_fcams, video_ids=[video_id], bg_threshold=bg, instance_norm=norm
    )


def predictions_stage(
    tags: Path,
    project: Path,
    video_id: int,
    categories: list[dict[str, Any]],
    pseudo: tuple[np.ndarray, dict[str, list], str | None] | None = None,
) -> Iterator[Any]:
    """MaskConsist predictions of the video with the project's detector, kept in ``project/predictions/<video>.json``.

    Progress events (one per frame predicted), then a
    :class:`~napari_vis_ws._predictions.LoadedPredictions` (``predictions``,
    and ``matches`` when the project has the video's). Predictions already
    stored (``RUN/results.json``, ``RUN/predictions/<video>.json``) are read
    back, not made again. The detector is ``maskconsist/`` when trained, else
    ``maskrcnn/``; tubes are linked along ``project/flow`` when it holds the video.

    Parameters
    ----------
    pseudo : ((T, H, W) int, features, video key or None), optional
        The pseudo-labels shown, for their MaskConsist disagreement with the predictions.
    """
    from training.errors import InputError

    key = video_source(tags, video_id).key
    folders = Project(project)
    stored = folders.results.is_file() or predictions_path(project, key).is_file()
    if not stored and detector_checkpoint(project) is None:
        where = " or ".join(str(p) for p in folders.detectors)
        raise InputError(None, f"no trained detector in {where}: {DETECTOR_HINT.format(tags=tags, project=project)}")
    yield from prediction_work(tags, video_id, project, categories, "auto", (folders.flow,), pseudo)


STAGE_WORK: dict[str, Callable[[Path, Path, int], Iterator[Any]]] = {
    "flow": flow_stage,
    "cams": cams_stage,
    "pseudo-labels": pseudo_labels_stage,
}
