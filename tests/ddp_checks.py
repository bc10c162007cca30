"""What every ``vis-ws ... --nproc 2`` test checks: the command under torchrun (2 gloo CPU processes) against one.

Not a test module: the DDP tests of each stage import it (``from ddp_checks import ...``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import load_checkpoint
from training.cli import main
from training.distributed import DEBUG_RANK_DIR


def torchrun(args: list[str], ranks: Path | None = None) -> subprocess.CompletedProcess:
    """``vis-ws *args --nproc 2``: 2 gloo CPU processes of one thread each; every rank's weights in ``ranks``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks is not None:
        env[DEBUG_RANK_DIR] = str(ranks)
    cmd = [sys.executable, "-m", "training.cli", *args, "--nproc", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def json_events(stdout: str) -> list[dict[str, Any]]:
    """The progress events of a ``--progress json`` run (rank 0 alone prints them)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread, as each torchrun process runs: the same kernels give the same floats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class TwoRuns:
    """A training command run in one process and under torchrun, once :func:`train_both_ways` checked them.

    Attributes
    ----------
    single, ddp : Path
        The two run folders.
    single_weights : dict of str to Tensor
        The single-process checkpoint's ``model``.
    rank_weights : dict of str to Tensor
        Rank 0's final weights: those of rank 1 and of the torchrun checkpoint.
    """

    single: Path
    ddp: Path
    single_weights: dict[str, torch.Tensor]
    rank_weights: dict[str, torch.Tensor]


def train_both_ways(args: list[str], tmp_path: Path, steps: int, measured_after: tuple[str, ...] = ()) -> TwoRuns:
    """Run ``vis-ws *args --out RUN`` (a training command with ``--progress json``) alone, then with ``--nproc 2``.

    Checks what any DDP run must give: rank 0 alone reports ``steps`` steps;
    the run folder has the single-process layout, ``config.json`` and
    ``categories.json``; the checkpoint has the same keys, step and tensor
    shapes; both ranks end with the weights of the checkpoint, bit for bit
    (but for the buffers ``measured_after`` training, by rank 0 alone).
    The single process runs on one thread, as each torchrun process does.
    """
    single, ddp, ranks = tmp_path / "single", tmp_path / "ddp", tmp_path / "ranks"
    with one_thread():
        assert main([*args, "--out", str(single)]) == 0
    events = json_events(torchrun([*args, "--out", str(ddp)], ranks).stdout)
    assert events and "2 processes (DDP)" in events[0]["message"]
    assert sum(1 for e in events if "loss" in e.get("metrics", {})) == steps  # reported by rank 0 only

    assert {p.name for p in ddp.iterdir()} == {p.name for p in single.iterdir()}
    for name in ("config.json", "categories.json"):
        assert (ddp / name).read_text() == (single / name).read_text(), name
    a, b = load_checkpoint(single / "checkpoint.pt"), load_checkpoint(ddp / "checkpoint.pt")
    assert a.keys() == b.keys() and a["step"] == b["step"] == steps
    assert a.get("category_ids") == b.get("category_ids")
    assert {k: v.shape for k, v in a["model"].items()} == {k: v.shape for k, v in b["model"].items()}
    r0 = torch.load(ranks / "rank0.pt", weights_only=True)
    r1 = torch.load(ranks / "rank1.pt", weights_only=True)
    assert r0.keys() == r1.keys() == b["model"].keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert k in measured_after or torch.equal(r0[k], b["model"][k]), k
    return TwoRuns(single, ddp, a["model"], r0)
