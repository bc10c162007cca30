"""The working scale (METHOD.md §9): small frames upsampled for the classifier, CAMs and IRN, results at frame size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.cli import main
from training.errors import InputError
from training.working_scale import (
    check_working_size,
    mask_to_frame,
    recorded_working_size,
    resize_maps,
    upsample_frame,
    working_scale,
)


def test_small_frames_are_upsampled_to_the_working_size_and_large_ones_kept():
    assert working_scale((120, 160, 3), 360) == 3.0  # the synthetic benchmark's frames: 3x
    assert working_scale((160, 120), 360) == 3.0  # portrait: the short side decides
    assert working_scale((480, 640), 360) == 1.0 and working_scale((360, 640), 360) == 1.0  # never shrunk
    assert working_scale((120, 160), 0) == 1.0  # 0: frame size
    frame = np.zeros((61, 83, 3), np.uint8)
    assert upsample_frame(frame, 360 / 61).shape == (360, 490, 3) and upsample_frame(frame, 1.0) is frame


def test_masks_and_maps_made_at_the_working_scale_come_back_at_frame_size():
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 50), bool)
    mask[5:25, 10:42] = True
    big = np.kron(mask, np.ones((3, 3), bool))  # what IRN paints at 3x
    assert np.array_equal(mask_to_frame(big, (40, 50)), mask)
    maps = rng.random((2, 10, 13)).astype(np.float32)
    there = resize_maps(maps, (30, 39))
    assert there.shape == (2, 30, 39) and np.allclose(resize_maps(there, (10, 13)).mean(), maps.mean(), atol=0.02)
    assert resize_maps(np.zeros((0, 10, 13)), (30, 39)).shape == (0, 30, 39)


@pytest.mark.parametrize("bad", [-1, 5000, 2.5, True])
def test_a_working_size_outside_0_to_2048_is_refused(bad):
    with pytest.raises(InputError, match="--working-size must be a whole number of pixels"):
        check_working_size(bad, "train-irn")


def test_the_cli_refuses_a_negative_working_size_in_one_line_without_writing(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "data"), "--videos", "1", "--frames", "2"]) == 0
    tags = str(tmp_path / "data" / "tags.json")
    for cmd in (["train-cam", tags], ["train-irn", tags, "--cam-model", "x", "--cams", "y"]):
        capsys.readouterr()
        assert main([*cmd, "--out", str(tmp_path / "run"), "--working-size", "-360"]) == 2
        err = capsys.readouterr().err.strip()
        assert "--working-size must be a whole number of pixels in [0, 2048], got -360" in err and "\n" not in err
        assert not (tmp_path / "run").exists()


def test_runs_from_before_the_working_scale_worked_at_frame_size(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"arch": "resnet18", "epochs": 1}))
    assert recorded_working_size(tmp_path) == 0
    (tmp_path / "config.json").write_text(json.dumps({"arch": "resnet18", "working_size": 360}))
    assert recorded_working_size(tmp_path) == 360
    (tmp_path / "config.json").write_text(json.dumps({"working_size": -3}))
    with pytest.raises(InputError, match="config.json: run config: --working-size"):
        recorded_working_size(tmp_path)


def test_a_run_from_before_the_working_scale_resumes_at_frame_size_and_refuses_another(tmp_path):
    # its config.json has no working_size: it trained on frames at their size, so resuming it at 360 would mix scales
    from training.cam.train import CAMTrainConfig, train_cam
    from training.irn.train import IRNTrainConfig

    assert main(["sample", "--out", str(tmp_path / "data"), "--videos", "1", "--frames", "2", "--height", "64",
                 "--width", "80"]) == 0  # fmt: skip
    tags, run = tmp_path / "data" / "tags.json", tmp_path / "cam"
    old = {"arch": "resnet18", "epochs": 1, "batch_size": 2, "crop": 32, "weights": "none", "working_size": 0}
    list(train_cam(CAMTrainConfig(**old), tags, run))
    config = json.loads((run / "config.json").read_text())
    del config["working_size"]
    (run / "config.json").write_text(json.dumps(config))
    assert CAMTrainConfig.from_dict(config).working_size == 0 and recorded_working_size(run) == 0
    assert IRNTrainConfig.ABSENT == {"working_size": 0, "motion_split": 0.0}  # old IRN runs: no motion split
    list(train_cam(CAMTrainConfig(**old), tags, run, resume=True))  # the same options: resumes (nothing left)
    with pytest.raises(InputError, match="started with working_size=0, now working_size=360"):
        list(train_cam(CAMTrainConfig(**{**old, "working_size": 360}), tags, run, resume=True))
