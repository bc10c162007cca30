"""Where a trained detector lives: a ``vis-ws train`` run folder, or a ``vis-ws pipeline`` run's sub-folder.

No torch here: the plugin asks this on its main thread (is there a detector to
predict with?) before anything is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.errors import InputError
from training.run_folder import DETECTORS, checkpoint

PIPELINE_DETECTORS = DETECTORS
"""Sub-folders of a ``vis-ws pipeline`` run holding a detector, the one to prefer first."""


def detector_checkpoint(path: str | os.PathLike) -> Path:
    """The detector checkpoint a ``--model`` path names.

    Parameters
    ----------
    path : path
        A checkpoint file, a ``vis-ws train`` run folder, or a ``vis-ws
        pipeline`` run folder (its :data:`PIPELINE_DETECTORS`, in that order,
        except that a MaskConsist run older than step 1's checkpoint is passed
        over: it was trained from an earlier step 1, e.g. before a preset
        without step 2 trained step 1 further).

    Raises
    ------
    InputError
        Naming ``path``: no detector checkpoint there.
    """
    path = Path(path)
    if path.is_file():
        return path
    if checkpoint(path).is_file():
        return checkpoint(path)
    found = [checkpoint(path / name) for name in PIPELINE_DETECTORS if checkpoint(path / name).is_file()]
    if len(found) == 2 and found[1].stat().st_mtime_ns > found[0].stat().st_mtime_ns:
        return found[1]  # step 2 predates step 1: stale
    if found:
        return found[0]
    raise InputError(
        path, "no detector checkpoint here: pass a 'vis-ws train --out' folder or a 'vis-ws pipeline --out' folder"
    )
