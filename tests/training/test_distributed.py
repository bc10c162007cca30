"""Distributed training: ``vis-ws train-cam --nproc 2`` (DDP, gloo on CPU) against a single-process run."""

from __future__ import annotations

import json

import pytest
import torch
from ddp_checks import train_both_ways

from training.cam.train import CAMTrainConfig, build_model
from training.cli import main
from training.distributed import all_reduce_mean, init_from_env, is_main, rank_world, shard

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
    runs = train_both_ways(["train-cam", str(tags), *TRAIN, "--progress", "json"], tmp_path, steps=1)  # 4 frames

    config = CAMTrainConfig.from_dict(json.loads((runs.ddp / "config.json").read_text()))
    n_classes = len(json.loads((runs.ddp / "categories.json").read_text()))
    initial = build_model(config, n_classes).state_dict()  # the run's seeded init
    moved = [k for k, v in runs.rank_weights.items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert moved  # a step was taken


@pytest.mark.parametrize(
    "argv",
    [
        ["train-cam", "tags.json", "--out", "run", "--lr", "0.05", "--freeze-stem", "--weights", "w.pt"],
        ["train-irn", "t.json", "--cam-model", "c", "--cams", "cs", "--out", "o", "--variant", "irn", "--resume"],
        ["train", "t.json", "--out", "o", "--no-iom", "--maskcon-first", "--step", "2", "--init", "r1"],
        ["pseudo-labels", "t.json", "--out", "o", "--arch", "resnet18", "--crf", "--instance-bg", "0.4"],
        ["pseudo-labels", "t.json", "--out", "o", "--no-crf"],
        ["predict", "gt.json", "--model", "m", "--out", "r.json", "--score-threshold", "0.3"],
    ],
)
@pytest.mark.parametrize("nproc", [["--nproc", "3"], ["--nproc=3"], ["--npr", "3"]])
def test_a_relaunched_command_is_the_typed_one_without_nproc(argv, nproc):
    # the ranks get the arguments as typed, with only --nproc taken out (not rebuilt from parsed options)
    from training.cli import build_parser
    from training.cli.relaunch import without_nproc

    parser = build_parser()
    typed = [*argv[:2], *nproc, *argv[2:]]
    args = parser.parse_args(typed)
    assert args.nproc == 3
    again = without_nproc(typed)
    assert again == argv
    reparsed = parser.parse_args(again)
    assert {**vars(reparsed), "nproc": 3} == vars(args)


def test_nproc_below_one_is_refused_with_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "gt.json"), "--model", "m", "--out", "r.json", "--nproc", "0"]) == 2
    assert capsys.readouterr().err == "vis-ws predict: error: --nproc must be at least 1, got 0\n"
