"""Atomic file writes: a reader sees the old file or the new one, never half.

Every output of the project goes through these helpers: the data is written to
a temporary file in the destination folder, flushed and fsynced, then renamed
over the destination (``os.replace`` is atomic on POSIX and Windows). A write
killed mid-way leaves its temporary file (``.NAME.<random>.tmp``, next to
``NAME``); :func:`remove_stale_temp_files` removes those when a folder is
opened again (a corrections project, a run folder being resumed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# the temporary file of a write to NAME: mkstemp(prefix=".NAME.", suffix=".tmp") in atomic_path
TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")
STALE_TEMP_S = 60.0  # a write in progress touches its file every few seconds; older ones are a killed write's


def new_file_mode(path: Path) -> int:
    """Permissions for a file about to replace ``path``.

    ``mkstemp`` creates 0600 files; keep the mode of the file being replaced,
    or give a new file the usual 0644 (read for all, as ``open()`` would).
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o644


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; it becomes ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder is created if missing.

    Yields
    ------
    tmp : Path
        An empty file in the same folder (``.NAME.*.tmp``, which
        :func:`remove_stale_temp_files` knows), synced to disk and renamed to
        ``path`` on success with :func:`new_file_mode`, removed on any exception.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fchmod(f.fileno(), new_file_mode(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing; it appears only if the block succeeds (:func:`atomic_path`).

    Yields
    ------
    file : BinaryIO
        The temporary file, open for writing.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    """Serialise ``obj`` as UTF-8 JSON to ``path`` atomically.

    The JSON is fully encoded before the file is touched, so an object that
    cannot be serialised leaves the destination as it was.
    """
    data = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False).encode("utf-8")
    write_bytes(path, data)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays to a compressed ``.npz`` atomically (no pickled objects)."""
    with atomic_open(path) as f:
        np.savez_compressed(f, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})


def remove_stale_temp_files(
    folder: str | os.PathLike,
    older_than: float = STALE_TEMP_S,
    recursive: bool = False,
    pattern: re.Pattern[str] = TEMP_FILE,
) -> list[Path]:
    """Delete the temporary files that :func:`atomic_open` writes killed mid-way left in ``folder``.

    Parameters
    ----------
    folder : path
        A folder written through this module (a missing one has nothing to remove).
    older_than : float
        Seconds a temporary file must have gone unmodified: a write running in
        another process keeps its own.
    recursive : bool
        Also look in the subfolders (never through a symbolic link).
    pattern : compiled regex
        The file names to remove: by default every name :func:`atomic_open`
        gives its temporary files (``.NAME.<random>.tmp``); a caller may
        narrow it to the files it writes.

    Returns
    -------
    The removed files, sorted. Symbolic links and anything that is not a
    regular file are left alone.
    """
    root = Path(folder)
    if root.is_symlink() or not root.is_dir():
        return []
    removed: list[Path] = []
    now = time.time()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if not recursive:
            dirnames.clear()
        for name in filenames:
            if not pattern.match(name):
                continue
            path = Path(dirpath) / name
            try:
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # its writer renamed or removed it meanwhile
                continue
    return sorted(removed)
