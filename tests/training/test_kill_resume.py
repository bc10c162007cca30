"""A trainer killed with SIGKILL and resumed ends where an uninterrupted run ends, bit for bit (CPU).

``vis-ws train-cam`` and ``vis-ws train-irn`` run as subprocesses with one
thread and ``--progress json``; the test reads their step lines and SIGKILLs
them right after step k (k drawn with a seeded generator), in the middle of an
epoch after the first checkpoint exists (and, for train-cam, once more before
any checkpoint exists). Checkpoints are written at the end of every epoch, so
a kill loses the steps done since the last one and ``--resume`` repeats them.
The resumed run must give the same per-step losses, per-epoch losses, weights,
optimizer state and RNG state as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO, irn_inputs, synthetic_tags

from training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

TIMEOUT_S = 300.0
EPOCHS = 3
CAM = ["--arch", "resnet18", "--epochs", str(EPOCHS), "--batch-size", "2", "--crop", "64", "--seed", "5"]
CAM_STEPS = 4  # steps per epoch: 8 tagged frames in batches of 2
# batches of 1: 8 steps per epoch, so that a kill 4 steps before the epoch's end lands before its save
# (an IRN step takes ~40 ms here)
IRN = ["--irn-epochs", "2", "--irn-batch-size", "1", "--irn-crop", "64", "--irn-radius", "5", "--seed", "3"]
IRN_STEPS = 8


def _env() -> dict[str, str]:
    # one thread: the same reduction order on the CPU in every run
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}


class Trainer:
    """A ``vis-ws`` training subprocess and the JSON progress events it printed."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.stderr = log.open("w")
        cmd = [sys.executable, "-m", "training.cli", *args, "--device", "cpu", "--progress", "json"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self) -> dict[str, Any] | None:
        """The next progress event; None at the end of the output."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT_S)
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"no output for {TIMEOUT_S} s:\n{self._log()}")
            if line is None:
                return None
            if line.startswith("{"):
                event = json.loads(line)
                self.events.append(event)
                return event

    def _log(self) -> str:
        self.stderr.flush()
        return self.log.read_text()[-3000:]

    def kill_after(self, step: int) -> None:
        """SIGKILL the process as soon as it reports step ``step`` done."""
        while (event := self._next()) is not None:
            if event["done"] == step and "loss" in event["metrics"]:
                os.kill(self.proc.pid, signal.SIGKILL)
                break
        self.proc.wait(timeout=TIMEOUT_S)
        self.stderr.close()
        assert self.proc.returncode == -signal.SIGKILL, (
            f"exit {self.proc.returncode} before step {step}:\n{self._log()}"
        )

    def finish(self) -> None:
        """Read to the end; the run must succeed."""
        while self._next() is not None:
            pass
        self.proc.wait(timeout=TIMEOUT_S)
        self.stderr.close()
        assert self.proc.returncode == 0, self._log()

    def step_losses(self) -> dict[int, float]:
        return {e["done"]: e["metrics"]["loss"] for e in self.events if "loss" in e["metrics"]}

    def first_message(self) -> str:
        return self.events[0]["message"]


def _assert_same_checkpoint(a: dict[str, Any], b: dict[str, Any], total: int, epochs: int) -> None:
    assert a["step"] == b["step"] == total
    assert a["epoch_losses"] == b["epoch_losses"] and len(a["epoch_losses"]) == epochs  # float equality
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    momentum = any(g["momentum"] for g in a["optimizer"]["param_groups"])
    assert sa.keys() == sb.keys() and (len(sa) > 0 or not momentum)  # SGD momentum buffers (IRN has none)
    for i in sa:
        for name, value in sa[i].items():
            assert torch.equal(value, sb[i][name]) if torch.is_tensor(value) else value == sb[i][name], (i, name)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def _kill_resume_and_compare(
    args: list[str], out: Path, steps_per_epoch: int, epochs: int, kills: list[int], logs: Path
) -> list[int]:
    """Train ``args`` straight into ``out/straight``; into ``out/killed`` with a SIGKILL after each step of
    ``kills`` (each run but the first with --resume), then resumed to the end; compare. Returns the step of
    the checkpoint each resume started from."""
    total = steps_per_epoch * epochs
    straight = Trainer([*args, "--out", str(out / "straight")], logs / "straight.log")
    straight.finish()
    expected = straight.step_losses()
    assert sorted(expected) == list(range(1, total + 1))
    final = load_checkpoint(out / "straight" / "checkpoint.pt")

    run = out / "killed"
    ckpt = run / "checkpoint.pt"
    starts = []
    for i, step in enumerate([*kills, None]):
        start = load_checkpoint(ckpt)["step"] if ckpt.exists() else 0
        starts.append(start)
        trainer = Trainer([*args, "--out", str(run), *(["--resume"] if i else [])], logs / f"run{i}.log")
        if step is None:
            trainer.finish()
        else:
            trainer.kill_after(step)
        assert ("resuming at" if start else "training from") in trainer.first_message()
        assert f"step {start}" in trainer.first_message()
        end = total if step is None else step
        assert trainer.step_losses() == {k: expected[k] for k in range(start + 1, end + 1)}
        if step is not None:
            saved = load_checkpoint(ckpt)["step"] if ckpt.exists() else 0
            assert saved == step - step % steps_per_epoch < step  # killed mid-epoch: steps since the save are lost
            if ckpt.exists():
                state = load_checkpoint(ckpt)
                assert state["epoch_losses"] == final["epoch_losses"][: saved // steps_per_epoch]
    _assert_same_checkpoint(final, load_checkpoint(ckpt), total, epochs)
    return starts


@pytest.fixture(scope="module")
def tags(tmp_path_factory) -> Path:
    """2 synthetic videos x 4 frames of 64x80 (tags.json)."""
    return synthetic_tags(tmp_path_factory.mktemp("synthetic"))


def test_train_cam_killed_twice_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(tags, tmp_path):
    rng = np.random.default_rng(0)
    early = int(rng.integers(1, CAM_STEPS - 1))  # in epoch 1: no checkpoint yet
    # in epoch 2 or 3, at least 2 steps before its end: the previous epoch's checkpoint exists
    late = int(rng.integers(1, EPOCHS)) * CAM_STEPS + int(rng.integers(1, CAM_STEPS - 1))
    starts = _kill_resume_and_compare(
        ["train-cam", str(tags), *CAM], tmp_path, CAM_STEPS, EPOCHS, [early, late], tmp_path
    )
    assert starts == [0, 0, late - late % CAM_STEPS]


def test_train_irn_killed_mid_epoch_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    root = irn_inputs(tmp_path / "inputs")  # tags, flow, a 1-epoch classifier and its CAMs + f-CAMs
    tags = str(root / "data" / "tags.json")

    rng = np.random.default_rng(1)
    step = IRN_STEPS + int(rng.integers(1, IRN_STEPS - 3))  # epoch 2, at least 4 steps before its end
    inputs = ["--cam-model", str(root / "cam"), "--cams", str(root / "cams"), "--flow", str(root / "flow")]
    starts = _kill_resume_and_compare(["train-irn", tags, *inputs, *IRN], tmp_path, IRN_STEPS, 2, [step], tmp_path)
    assert starts == [0, IRN_STEPS]
