"""Distributed training: ``vis-ws train-cam --nproc 2`` (DDP, gloo on CPU) against a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from training.cli import main
from training.distributed import DEBUG_RANK_DIR, all_reduce_mean, init_from_env, is_main, rank_world, shard

TRAIN = ["--arch", "resnet18", "--epochs", "1", "--batch-size", "4", "--crop", "64", "--device", "cpu"]


def test_shard_splits_a_global_batch_into_disjoint_slices():
    batch = [7, 3, 9, 1, 4]
    parts = [shard(batch, r, 2) for r in range(2)]
    assert parts == [[7, 9, 4], [3, 1]]
    assert sorted(parts[0] + parts[1]) == sorted(batch)


def test_single_process_helpers_are_no_ops(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert init_from_env("cpu") == (0, 1, 0)
    assert rank_world() == (0, 1) and is_main()
    t = torch.tensor([1.5])
    assert all_reduce_mean(t) is t


@pytest.mark.slow
def test_train_cam_nproc_2_matches_single_process_layout_and_ranks_agree(tmp_path):
    data = tmp_path / "data"
    assert (
        main(["sample", "--out", str(data), "--videos", "1", "--frames", "4", "--height", "64", "--width", "80"]) == 0
    )
    tags = data / "tags.json"
    single = tmp_path / "single"
    assert main(["train-cam", str(tags), "--out", str(single), *TRAIN, "--progress", "json"]) == 0

    ddp, ranks = tmp_path / "ddp", tmp_path / "ranks"
    env = {**os.environ, DEBUG_RANK_DIR: str(ranks), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "training.cli", "train-cam", str(tags), "--out", str(ddp), *TRAIN]
    proc = subprocess.run(
        [*cmd, "--progress", "json", "--nproc", "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events and "2 processes (DDP)" in events[0]["message"]
    assert sum(1 for e in events if "loss" in e.get("metrics", {})) == 1  # rank 0 only: 1 step of 4 frames

    assert {p.name for p in ddp.iterdir()} == {p.name for p in single.iterdir()}
    assert (ddp / "config.json").read_text() == (single / "config.json").read_text()
    assert (ddp / "categories.json").read_text() == (single / "categories.json").read_text()
    a = torch.load(single / "checkpoint.pt", weights_only=True)
    b = torch.load(ddp / "checkpoint.pt", weights_only=True)
    assert a.keys() == b.keys() and a["step"] == b["step"] == 1
    assert {k: v.shape for k, v in a["model"].items()} == {k: v.shape for k, v in b["model"].items()}

    r0 = torch.load(ranks / "rank0.pt", weights_only=True)
    r1 = torch.load(ranks / "rank1.pt", weights_only=True)
    assert r0.keys() == r1.keys() == b["model"].keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.equal(r0[k], b["model"][k]), k
    moved = [k for k in r0 if r0[k].is_floating_point() and not torch.equal(r0[k], a["model"][k])]
    assert moved  # a step was taken


@pytest.mark.parametrize(
    "argv",
    [
        ["train-cam", "tags.json", "--out", "run", "--lr", "0.05", "--freeze-stem", "--weights", "w.pt"],
        ["train-irn", "t.json", "--cam-model", "c", "--cams", "cs", "--out", "o", "--variant", "irn", "--resume"],
        ["train", "t.json", "--out", "o", "--no-iom", "--step", "2", "--init", "r1", "--delta-max", "2"],
        ["pseudo-labels", "t.json", "--out", "o", "--arch", "resnet18", "--crf"],
        ["predict", "gt.json", "--model", "m", "--out", "r.json", "--score-threshold", "0.3"],
    ],
)
def test_a_relaunched_command_parses_to_the_same_options_without_nproc(argv):
    from training.cli import build_parser
    from training.distributed import command_line

    parser = build_parser()
    args = parser.parse_args([*argv, "--nproc", "3"])
    again = command_line(parser, args)
    assert "--nproc" not in again and again[0] == argv[0]
    reparsed = parser.parse_args(again)
    assert {**vars(reparsed), "nproc": 3} == vars(args)


def test_nproc_below_one_is_refused_with_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "gt.json"), "--model", "m", "--out", "r.json", "--nproc", "0"]) == 2
    assert capsys.readouterr().err == "vis-ws predict: error: --nproc must be at least 1, got 0\n"
