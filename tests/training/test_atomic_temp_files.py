"""Temporary files of killed atomic writes: which ones go, and when a run folder is opened again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, sample_tags

from training.atomic import remove_stale_temp_files
from training.checkpoint import load_checkpoint
from training.cli import main

HOUR_AGO = time.time() - 3600


def _write(path: Path, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    if old:
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    return path


def _names(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def test_only_old_temp_files_named_as_atomic_writes_name_them_are_removed(tmp_path):
    run = tmp_path / "run"
    _write(run / ".checkpoint.pt.abc123.tmp")  # a 64 MiB checkpoint write, killed an hour ago
    _write(run / ".config.json.u7q3mz0w.tmp", old=False)  # being written now by another process
    for name in ("notes.tmp", ".notes.tmp", "checkpoint.pt.abc123.tmp", "checkpoint.pt"):  # not ours, or done
        _write(run / name)
    nested = _write(run / "predictions" / ".synth_0000.json.k2x_9abc.tmp")
    outside = _write(tmp_path / "elsewhere" / ".weights.pt.f00b4r12.tmp")
    (run / ".link.pt.aaaa1111.tmp").symlink_to(outside)  # a link named like one: neither it nor its target goes
    (run / "linked").symlink_to(outside.parent, target_is_directory=True)  # never walked into

    assert remove_stale_temp_files(run) == [run / ".checkpoint.pt.abc123.tmp"]
    assert nested.is_file()  # not recursive unless asked
    assert remove_stale_temp_files(run, recursive=True) == [nested]
    assert _names(run) == {
        ".config.json.u7q3mz0w.tmp",
        "notes.tmp",
        ".notes.tmp",
        "checkpoint.pt.abc123.tmp",
        "checkpoint.pt",
        ".link.pt.aaaa1111.tmp",
        "linked",
    }
    assert outside.is_file()
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_older_than_spares_a_write_that_may_still_be_running(tmp_path):
    temp = _write(tmp_path / ".checkpoint.pt.abc123.tmp", old=False)
    os.utime(temp, (time.time() - 30, time.time() - 30))
    assert remove_stale_temp_files(tmp_path) == [] and temp.is_file()
    assert remove_stale_temp_files(tmp_path, older_than=10) == [temp] and not temp.exists()


def test_a_checkpoint_write_killed_mid_way_leaves_a_temp_file_of_the_removed_kind(tmp_path):
    code = (
        f"import os, sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from training.atomic import atomic_open\n"
        f"with atomic_open({str(tmp_path / 'checkpoint.pt')!r}) as f:\n"
        "    f.write(b'x' * 4096); f.flush(); os._exit(9)\n"  # killed before the rename
    )
    subprocess.run([sys.executable, "-c", code], timeout=60)
    (left,) = [p for p in tmp_path.iterdir()]
    assert left.name.startswith(".checkpoint.pt.") and left.name.endswith(".tmp")
    os.utime(left, (HOUR_AGO, HOUR_AGO))
    assert remove_stale_temp_files(tmp_path) == [left] and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tags(tmp_path_factory) -> Path:
    return sample_tags(tmp_path_factory.mktemp("resume"))


def test_resuming_a_run_removes_the_temp_file_of_its_killed_checkpoint_write(tags, tmp_path):
    run = tmp_path / "cam"
    argv = ["train-cam", str(tags), "--out", str(run), "--arch", "resnet18", "--epochs", "1", "--batch-size", "4"]
    argv += ["--crop", "64", "--workers", "0", "--device", "cpu", "--progress", "json"]
    assert main(argv) == 0
    stale = _write(run / ".checkpoint.pt.abc123.tmp")  # the run was killed while saving once
    fresh = _write(run / ".checkpoint.pt.zz9y8x7w.tmp", old=False)  # another process saving right now
    assert main([*argv, "--resume"]) == 0
    assert not stale.exists() and fresh.is_file()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1
