"""The Pipeline dock's stages: a user's action on one video → the backend generator that does it.

No Qt here: each function runs in a napari worker and yields the backend's
progress events; :mod:`napari_vis_ws._widgets.pipeline` turns them into
progress bars and layers. Flow, CAMs and pseudo-labels are
:mod:`training.pipeline`'s own stages, for one video: the ones ``vis-ws
pipeline`` runs, reading the settings the project's runs recorded (working
scale, IRN variant, instance background score, normalisation and split).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_vis_ws._project import detector_checkpoint, prediction_work, predictions_path
from training.run_folder import Project

if TYPE_CHECKING:
    from training.cli.options import OptionSpec
    from training.data.sources import VideoSource

DETECTOR_HINT = (
    "Run all trains one, or the Training dock (Mask R-CNN, MaskConsist), or `vis-ws pipeline {tags} --out {project}`"
)


def video_source(tags: Path, video_id: int) -> VideoSource:
    """The video ``video_id`` of a dataset or tags JSON."""
    from training.pipeline import videos

    return videos(tags, video_ids=[video_id], share=False)[0]


def video_shape(source: VideoSource) -> tuple[int, int, int]:
    """(T, H, W) of a video."""
    return (len(source.reader), *source.reader.frame_shape)


def flow_stage(tags: Path, project: Path, video_id: int, method: str = "dis") -> Iterator[Any]:
    """Optical flow of the video into ``project/flow`` (skipped when already there)."""
    from training.pipeline import flow_stage as backend_stage

    yield from backend_stage(tags, project, [video_id], method=method)


def cams_stage(tags: Path, project: Path, video_id: int, device: str = "auto") -> Iterator[Any]:
    """CAMs and f-CAMs of the video into ``project/cams`` with the classifier of ``project/cam``."""
    from training.pipeline import cams_stage as backend_stage

    yield from backend_stage(tags, project, [video_id], device=device)


def pseudo_labels_stage(tags: Path, project: Path, video_id: int, **settings: Any) -> Iterator[Any]:
    """flowIRN pseudo-labels of the video into ``project/pseudo``, with the settings the project recorded.

    ``settings`` (``device``, ``instance_bg``, ``instance_norm``,
    ``instance_split``) override them, as the same options of ``vis-ws
    pseudo-labels`` do: a video made with another value is made again.
    """
    from training.pipeline import pseudo_labels_stage as backend_stage

    yield from backend_stage(tags, project, [video_id], **settings)


SETTINGS_COMMAND = "pseudo-labels"
"""The command whose options the Pipeline dock's Settings form shows (those of :data:`SETTINGS`)."""

SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "--flow-method": (("flow",), "method"),
    "--device": (("cams", "pseudo-labels", "predictions"), "device"),
    "--instance-bg": (("pseudo-labels",), "instance_bg"),
    "--instance-norm": (("pseudo-labels",), "instance_norm"),
    "--instance-split": (("pseudo-labels",), "instance_split"),
}
"""Flag of :data:`SETTINGS_COMMAND` → (the dock's stages it applies to, their keyword)."""


def settings_options() -> dict[str, list[OptionSpec]]:
    """The Settings form's options: ``{"settings": [OptionSpec, ...]}`` (a child process: call it in a worker)."""
    from napari_vis_ws._training import read_command_options

    specs = read_command_options([SETTINGS_COMMAND])[SETTINGS_COMMAND]
    return {"settings": [spec for spec in specs if spec.flag in SETTINGS]}


def stage_settings(stage: str, values: dict[str, Any]) -> dict[str, Any]:
    """The keywords of :data:`STAGE_WORK` ``[stage]`` that the Settings form sets (``values``: flag → value or None).

    A value left None (the field empty or at the command's default) is not
    passed: the stage uses the project's recorded setting, else its default.
    """
    return {
        kw: values[flag] for flag, (stages, kw) in SETTINGS.items() if stage in stages and values.get(flag) is not None
    }


def predictions_stage(
    tags: Path,
    project: Path,
    video_id: int,
    categories: list[dict[str, Any]],
    pseudo: tuple[np.ndarray, dict[str, list], str | None] | None = None,
    device: str = "auto",
) -> Iterator[Any]:
    """MaskConsist predictions of the video with the project's detector, kept in ``project/predictions/<video>.json``.

    Progress events (one per frame predicted), then a
    :class:`~napari_vis_ws._project.LoadedPredictions` (``predictions``,
    and ``matches`` when the project has the video's). Predictions already
    stored (``RUN/results.json``, ``RUN/predictions/<video>.json``) are read
    back, not made again. The detector is ``maskconsist/`` when trained, else
    ``maskrcnn/``; tubes are linked along ``project/flow`` when it holds the video.

    Parameters
    ----------
    pseudo : ((T, H, W) int, features, video key or None), optional
        The pseudo-labels shown, for their MaskConsist disagreement with the predictions.
    device : str
        auto, cpu, cuda or cuda:N.
    """
    from training.errors import InputError

    missing = missing_detector(project, video_source(tags, video_id).key)
    if missing is not None:
        raise InputError(None, f"{missing}: {DETECTOR_HINT.format(tags=tags, project=project)}")
    yield from prediction_work(tags, video_id, project, categories, device, (Project(project).flow,), pseudo)


def missing_detector(project: Path, key: str) -> str | None:
    """"no trained detector in …" when video ``key`` has no stored predictions and ``project`` no detector."""
    folders = Project(project)
    stored = folders.results.is_file() or predictions_path(project, key).is_file()
    if stored or detector_checkpoint(project) is not None:
        return None
    return "no trained detector in " + " or ".join(str(p) for p in folders.detectors)


def missing_before(name: str, project: Path, key: str) -> tuple[str, str | list[str]] | None:
    """What the Pipeline dock offers to run first when stage ``name`` of video ``key`` cannot run yet.

    Returns
    -------
    (what, plan) or None
        ``what``: the first thing missing, naming its folder. ``plan``:
        "all" (Run all, which trains the missing model and makes every
        video's pseudo-labels), "detector" (Run all with the detector and
        predictions), or the stages of this video to run in order, ``name``
        last (``["flow", "cams", "pseudo-labels"]``). None when ``name`` can run.
    """
    from training.pipeline import missing_input

    if name == "predictions":
        missing = missing_detector(project, key)
        return None if missing is None else (missing, "detector")
    plan, stage, what = [name], name, ""
    while (missing := missing_input(stage, project, key)) is not None:
        what = what or missing[0]
        if missing[1] == "model":
            return what, "all"
        stage = missing[1]
        plan.insert(0, stage)
    return (what, plan) if len(plan) > 1 else None


STAGE_WORK: dict[str, Callable[..., Iterator[Any]]] = {  # (tags, project, video_id, **stage_settings)
    "flow": flow_stage,
    "cams": cams_stage,
    "pseudo-labels": pseudo_labels_stage,
}
