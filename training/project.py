"""A corrections project on disk, written atomically, and what is exported from it.

One folder per video under ``PROJECT/corrections/<video key>/``:

- ``labels.npz``: the corrected label volume (:func:`training.export.save_labels`);
- ``pseudo.npz``: the pseudo-labels the corrections started from, written
  once, so training targets can take the unreviewed frames from them;
- ``state.json``: reviewed frames, categories (class names), the time of the
  last edit and of the save, and how many pixels differ from ``pseudo.npz``;
- ``backups/<time>/``: earlier saves that had more edits (see below).

Every file is replaced atomically (temporary file + rename), so a process
killed at any moment leaves the previous save or the new one, never half a
file. ``labels.npz`` is written before ``state.json``: a kill between the two
loses at most the review marks of the last few seconds, never labels.

A save never silently throws corrections away: when the labels it writes
differ from the pseudo-labels in fewer pixels than the save on disk does, or
it unmarks reviewed frames (an undo, a wrong refill), the files on disk are
first kept as a backup generation, ``backups/<time>/labels.npz`` and
``state.json`` (hard links: no copy), the newest :data:`KEEP_BACKUPS` of them.

A kill during a write leaves its temporary file (``.labels.npz.<random>.tmp``);
:func:`remove_stale_temp_files` removes those when the project is opened.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from training.atomic import write_json
from training.corrections import instance_areas, training_targets
from training.errors import InputError
from training.export import LabelVolume, load_labels, save_labels, write_coco, write_ytvis
from training.export.labels import Form, labels_to_ytvis
from training.json_io import read_json
from training.run_folder import Project

STATE_VERSION = 1
# training.atomic's temporary file of one of them: mkstemp(prefix=".<name>.", suffix=".tmp")
TEMP_FILE = re.compile(r"^\.(?:labels\.npz|pseudo\.npz|state\.json)\.[A-Za-z0-9_]+\.tmp$")
KEEP_BACKUPS = 10  # backup generations kept per video
BACKUPS = "backups"
STALE_TEMP_S = 60.0  # a write in progress touches its file every few seconds; older ones are a killed write's
Format = Literal["ytvis", "coco"]


@dataclass
class ProjectState:
    """The saved corrections of one video.

    Attributes
    ----------
    key : video key (folder name under ``corrections/``)
    volume : the corrected labels
    reviewed : frames marked reviewed
    categories : YouTube-VIS categories (id, name)
    edited : Unix time of the last edit (None if unknown)
    saved : Unix time of the save
    pseudo : the pseudo-labels the corrections started from, if saved
    """

    key: str
    volume: LabelVolume
    reviewed: set[int]
    categories: list[dict[str, Any]]
    edited: float | None = None
    saved: float | None = None
    pseudo: LabelVolume | None = None


def video_dir(project: str | os.PathLike, key: str) -> Path:
    """``PROJECT/corrections/<key>``."""
    return Project(project).corrections / key


def project_videos(project: str | os.PathLike) -> list[str]:
    """Keys of the videos with saved corrections, sorted."""
    root = Project(project).corrections
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "labels.npz").is_file())


def remove_stale_temp_files(project: str | os.PathLike, older_than: float = STALE_TEMP_S) -> list[Path]:
    """Delete the temporary files that saves killed mid-write left in ``PROJECT/corrections/*/``.

    Only files named as :mod:`training.atomic` names the temporary files of
    ``labels.npz``, ``pseudo.npz`` and ``state.json``, and unmodified for
    ``older_than`` seconds (a save running in another process keeps its own);
    see :func:`training.atomic.remove_stale_temp_files`.

    Returns
    -------
    The removed files, sorted.
    """
    from training import atomic

    root = Project(project).corrections
    if not root.is_dir():
        return []
    removed: list[Path] = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.is_symlink():
            removed += atomic.remove_stale_temp_files(folder, older_than, pattern=TEMP_FILE)
    return sorted(removed)


def save_pseudo(project: str | os.PathLike, key: str, volume: LabelVolume) -> bool:
    """Keep the pseudo-labels the corrections start from; returns False when they are already saved."""
    path = video_dir(project, key) / "pseudo.npz"
    if path.is_file():
        return False
    save_labels(path, volume)
    return True


@dataclass(frozen=True)
class SavedCorrections:
    """What :func:`save_corrections` did.

    Attributes
    ----------
    folder : the video's folder
    edited_pixels : pixels of the saved labels that differ from the pseudo-labels (-1: no pseudo-labels saved)
    backup : the backup generation the previous save was kept as, or None
    previous_pixels : edited pixels of that previous save (-1 when unknown)
    """

    folder: Path
    edited_pixels: int
    backup: Path | None = None
    previous_pixels: int = -1


def edited_pixels(volume: LabelVolume, pseudo: LabelVolume | None) -> int:
    """Pixels whose id differs between the corrected labels and the pseudo-labels they started from (-1: unknown)."""
    if pseudo is None or pseudo.labels.shape != volume.labels.shape:
        return -1
    return int(np.count_nonzero(volume.labels != pseudo.labels))


def list_backups(project: str | os.PathLike, key: str) -> list[Path]:
    """The backup generations of a video's corrections, oldest first."""
    root = video_dir(project, key) / BACKUPS
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / "labels.npz").is_file())


def _keep_backup(folder: Path, keep: int) -> Path:
    """Keep ``folder``'s labels.npz and state.json as a new backup generation; prune the oldest past ``keep``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    root = folder / BACKUPS
    n = 0
    while (gen := root / f"{stamp}-{n:03d}").exists():
        n += 1
    tmp = root / f".{gen.name}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("labels.npz", "state.json"):
        if (folder / name).is_file():
            try:
                os.link(folder / name, tmp / name)  # the save then replaces the name, not this inode
            except OSError:
                shutil.copy2(folder / name, tmp / name)
    os.replace(tmp, gen)
    old = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    for stale in old[: max(len(old) - keep, 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return gen


def save_corrections(
    project: str | os.PathLike,
    key: str,
    volume: LabelVolume,
    reviewed: Iterable[int],
    categories: list[dict[str, Any]],
    edited: float | None = None,
    pseudo: LabelVolume | None = None,
    keep_backups: int = KEEP_BACKUPS,
) -> SavedCorrections:
    """Save the corrected labels and review state of one video, atomically.

    Parameters
    ----------
    project : project folder (created if missing)
    key : video key
    volume : corrected labels
    reviewed : frames marked reviewed
    categories : YouTube-VIS categories (id, name)
    edited : Unix time of the last edit
    pseudo : the pseudo-labels the corrections started from; saved as ``pseudo.npz``
        when the video has none yet (read from there otherwise)
    keep_backups : backup generations to keep; a save with fewer edited pixels
        or fewer reviewed frames than the one on disk first keeps that one as a backup

    Returns
    -------
    SavedCorrections : the folder, the edited pixels, and the backup made (if any).
    """
    n_t = volume.labels.shape[0]
    frames = sorted({int(f) for f in reviewed})
    if frames and not (0 <= frames[0] and frames[-1] < n_t):
        raise ValueError(f"reviewed frames must be in 0..{n_t - 1}, got {frames[0]}..{frames[-1]}")
    folder = video_dir(project, key)
    if pseudo is not None:
        save_pseudo(project, key, pseudo)
    elif (folder / "pseudo.npz").is_file():
        pseudo = load_labels(folder / "pseudo.npz")
    pixels = edited_pixels(volume, pseudo)
    backup, previous = None, -1
    if (folder / "labels.npz").is_file():
        old = _saved_state(folder)
        previous = int(old.get("edited_pixels", -1)) if isinstance(old.get("edited_pixels", -1), int) else -1
        if previous < 0 and pseudo is not None:  # saved before the count was recorded
            with contextlib.suppress(InputError):
                previous = edited_pixels(load_labels(folder / "labels.npz"), pseudo)
        lost_review = not set(old.get("reviewed") or []) <= set(frames)
        if (0 <= pixels < previous or lost_review) and keep_backups > 0:
            backup = _keep_backup(folder, keep_backups)
    save_labels(folder / "labels.npz", volume)
    state = {
        "version": STATE_VERSION,
        "video_key": key,
        "n_frames": n_t,
        "reviewed": frames,
        "categories": categories,
        "edited": edited,
        "saved": time.time(),
        "edited_pixels": pixels,
    }
    write_json(folder / "state.json", state, indent=1)
    return SavedCorrections(folder, pixels, backup, previous)


def _saved_state(folder: Path) -> dict[str, Any]:
    """``state.json`` of a video folder, {} when missing or unreadable."""
    try:
        raw = read_json(folder / "state.json") if (folder / "state.json").is_file() else {}
    except InputError:
        return {}
    return raw if isinstance(raw, dict) else {}


def load_project_state(project: str | os.PathLike, key: str) -> ProjectState:
    """Read the saved corrections of one video.

    Raises
    ------
    InputError
        No saved corrections for this video, or files that do not fit together.
    """
    folder = video_dir(project, key)
    if not (folder / "labels.npz").is_file():
        raise InputError(folder, f"no saved corrections for video {key!r}")
    volume = load_labels(folder / "labels.npz")
    state: dict[str, Any] = {}
    if (folder / "state.json").is_file():
        raw = read_json(folder / "state.json")
        if not isinstance(raw, dict):
            raise InputError(folder / "state.json", "expected a JSON object")
        state = raw
    n_t = volume.labels.shape[0]
    reviewed = {int(f) for f in state.get("reviewed", []) if isinstance(f, int) and 0 <= f < n_t}
    categories = state.get("categories") or [
        {"id": c, "name": f"class {c}"} for c in sorted(set(volume.categories.values()))
    ]
    pseudo = load_labels(folder / "pseudo.npz") if (folder / "pseudo.npz").is_file() else None
    if pseudo is not None and pseudo.labels.shape != volume.labels.shape:
        raise InputError(
            folder / "pseudo.npz", f"shape {pseudo.labels.shape} differs from the corrections' {volume.labels.shape}"
        )
    return ProjectState(key, volume, reviewed, categories, state.get("edited"), state.get("saved"), pseudo)


# -- export ------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    path: Path
    videos: int
    instances: int
    masks: int
    note: str = ""

    def __str__(self) -> str:
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        text = f"wrote {n(self.videos, 'video')}, {n(self.instances, 'instance')}, {n(self.masks, 'mask')}"
        return f"{text}{f' ({self.note})' if self.note else ''} to {self.path}"


def _counts(volumes: list[LabelVolume]) -> tuple[int, int]:
    instances = masks = 0
    for v in volumes:
        a = instance_areas(v.labels)
        present = a.areas > 0
        instances += int(present.any(axis=0).sum())
        masks += int(present.sum())
    return instances, masks


def export_volumes(
    path: str | os.PathLike,
    volumes: list[LabelVolume],
    categories: list[dict[str, Any]],
    fmt: Format = "ytvis",
    form: Form = "gt",
) -> ExportSummary:
    """Write label volumes as YouTube-VIS or COCO JSON (RLE), atomically.

    Parameters
    ----------
    path : output JSON
    volumes : one per video; video ids must differ
    categories : YouTube-VIS categories (id, name)
    fmt : "ytvis" or "coco"
    form : "gt" (a dataset) or "results" (with scores)
    """
    ids = [v.video["id"] for v in volumes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two volumes share a video id ({ids}); export them separately")
    if fmt == "ytvis":
        write_ytvis(path, volumes, categories, form)
    elif fmt == "coco":
        write_coco(path, volumes, categories, form)
    else:
        raise ValueError(f"format must be 'ytvis' or 'coco', got {fmt!r}")
    instances, masks = _counts(volumes)
    return ExportSummary(Path(path), len(volumes), instances, masks)


def write_training_targets(
    project: str | os.PathLike, out: str | os.PathLike, keys: Iterable[str] | None = None
) -> ExportSummary:
    """Write the training targets of a project's videos, in the pseudo-labels' layout.

    For each video, :func:`training.corrections.training_targets` of its saved
    pseudo-labels (the corrections themselves when none were saved), its
    corrections and its reviewed frames goes to ``OUT/<key>/pseudo.npz``;
    ``OUT/pseudo_labels.json`` holds all of them as YouTube-VIS results, as
    ``vis-ws pseudo-labels`` writes them, so training reads them in place of
    the pseudo-labels. ``OUT/targets.json`` records the reviewed frames.

    Raises
    ------
    InputError
        A project without saved corrections.
    """
    keys = project_videos(project) if keys is None else list(keys)
    if not keys:
        raise InputError(Project(project).corrections, "no saved corrections to make training targets from")
    out = Path(out)
    volumes: list[LabelVolume] = []
    record: dict[str, Any] = {"project": str(Path(project).resolve()), "videos": {}}
    reviewed = total = 0
    for key in keys:
        st = load_project_state(project, key)
        target = training_targets(st.pseudo or st.volume, st.volume, st.reviewed)
        save_labels(out / key / "pseudo.npz", target)
        volumes.append(target)
        record["videos"][key] = {"reviewed": sorted(st.reviewed), "n_frames": int(target.labels.shape[0])}
        reviewed += len(st.reviewed)
        total += int(target.labels.shape[0])
    results: list[dict[str, Any]] = []
    for v in volumes:
        results += labels_to_ytvis(v, "results")
    write_json(out / "pseudo_labels.json", results)
    write_json(out / "targets.json", record, indent=1)
    instances, masks = _counts(volumes)
    return ExportSummary(out, len(volumes), instances, masks, f"{reviewed}/{total} frames reviewed")
