"""The run (project) folder: every sub-folder and file name of a run, spelled here and nowhere else.

A project is the folder ``vis-ws pseudo-labels TAGS --out RUN`` and ``vis-ws
pipeline TAGS --out RUN`` write, and the plugin's Pipeline, Training and
Corrections docks read and write::

    RUN/
      tags.json                          a project's videos and frame tags (vis-ws project new)
      flow/<video>.npy, <video>.json     optical flow (vis-ws flow)
      cam/                               trained classifier (a training run)
      cams/<video>/                      CAMs and f-CAMs (vis-ws cams)
      irn/                               trained IRN / flowIRN (a training run)
      pseudo/<video>/, pseudo_labels.json
                                         instance pseudo-labels (vis-ws pseudo-labels)
      maskrcnn/                          Mask R-CNN, step 1 (a training run)
      maskconsist/                       MaskConsist, step 2 (a training run)
        matches/<video>.json             its inter-frame matches
      full/                              a fully supervised detector (vis-ws pipeline --supervision full)
      results.json, eval.json            predictions of every video (vis-ws predict), their scores
      predictions/<video>.json           one video predicted from the Training dock
      corrections/<video>/               a person's corrections (training.project)
      targets/                           pseudo-labels with the corrections (Export dock)

A training run (``cam/``, ``irn/``, ``maskrcnn/``, ``maskconsist/``, or any
``--out`` of a ``train*`` command) holds :data:`CHECKPOINT`, :data:`CONFIG`
and :data:`CATEGORIES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT = "checkpoint.pt"  # a training run's checkpoint
CONFIG = "config.json"  # a training run's settings (its config dataclass)
CATEGORIES = "categories.json"  # the classes a run was trained on
MATCHES = "matches"  # a MaskConsist run's inter-frame matches, one JSON per video
RESULTS = "results.json"  # RUN/results.json
CAMS_RECORD = "cams.json"  # RUN/cams/<video>/: what the video's CAMs were made with (training.cam.store)
TAGS = "tags.json"  # a project's frame tags (training.data.new_project)
DETECTORS = ("maskconsist", "maskrcnn")  # a project's detector runs, the preferred first


@dataclass(frozen=True)
class Project:
    """The paths of one run folder. Nothing is created or checked: these are names.

    Parameters
    ----------
    root : path
        The run folder.
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def tags(self) -> Path:
        """A project's frame-tags JSON, its videos read from their sources (``vis-ws project new``)."""
        return self.root / TAGS

    @property
    def flow(self) -> Path:
        """Optical flow of every video."""
        return self.root / "flow"

    @property
    def cam(self) -> Path:
        """The trained classifier (a training run)."""
        return self.root / "cam"

    @property
    def cams(self) -> Path:
        """CAMs and f-CAMs of every video."""
        return self.root / "cams"

    @property
    def irn(self) -> Path:
        """The trained IRN / flowIRN (a training run)."""
        return self.root / "irn"

    @property
    def pseudo(self) -> Path:
        """Instance pseudo-labels of every video."""
        return self.root / "pseudo"

    @property
    def maskrcnn(self) -> Path:
        """Mask R-CNN trained on the pseudo-labels (step 1, a training run)."""
        return self.root / DETECTORS[1]

    @property
    def maskconsist(self) -> Path:
        """MaskConsist (step 2, a training run)."""
        return self.root / DETECTORS[0]

    @property
    def detectors(self) -> tuple[Path, Path]:
        """The detector runs, the one to prefer first (MaskConsist, then Mask R-CNN)."""
        return (self.maskconsist, self.maskrcnn)

    @property
    def full(self) -> Path:
        """A fully supervised detector (``vis-ws pipeline --supervision full``, a training run)."""
        return self.root / "full"

    @property
    def evaluation(self) -> Path:
        """The pipeline's scores of ``results.json`` against ``--gt``."""
        return self.root / "eval.json"

    @property
    def results(self) -> Path:
        """Predictions of every video (``vis-ws predict --out RUN/results.json``)."""
        return self.root / RESULTS

    @property
    def predictions(self) -> Path:
        """One video's predictions at a time, made from the Training dock: ``predictions/<video>.json``."""
        return self.root / "predictions"

    @property
    def corrections(self) -> Path:
        """A person's corrections, one folder per video (:mod:`training.project`)."""
        return self.root / "corrections"

    @property
    def targets(self) -> Path:
        """Training targets: the pseudo-labels with the corrections (the Export dock writes them)."""
        return self.root / "targets"

    def matches(self, key: str) -> list[Path]:
        """Where a video's MaskConsist matches may be, preferred first: ``RUN/matches/``, ``maskconsist/matches/``."""
        return [self.root / MATCHES / f"{key}.json", self.maskconsist / MATCHES / f"{key}.json"]


def checkpoint(run: str | os.PathLike) -> Path:
    """A training run's checkpoint file."""
    return Path(run) / CHECKPOINT


def config(run: str | os.PathLike) -> Path:
    """A training run's settings file."""
    return Path(run) / CONFIG


def categories(run: str | os.PathLike) -> Path:
    """A training run's class list."""
    return Path(run) / CATEGORIES
