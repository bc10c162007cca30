"""`vis-ws pipeline --preset tiny`: frame tags to scored YouTube-VIS results, end to end, resumable."""

from __future__ import annotations

import json

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.cli import main


@pytest.mark.slow
def test_tiny_pipeline_goes_from_tags_to_scored_results_and_resumes(tmp_path, capsys):
    data = tmp_path / "data"
    args = ["--videos", "2", "--frames", "4", "--height", "64", "--width", "80", "--seed", "4"]
    assert main(["sample", "--out", str(data), *args]) == 0
    run = tmp_path / "run"
    cmd = ["pipeline", str(data / "tags.json"), "--out", str(run), "--preset", "tiny", "--gt", str(data / "gt.json"),
           "--progress", "json"]  # fmt: skip
    assert main(cmd) == 0
    results = json.loads((run / "results.json").read_text())
    assert results and {r["video_id"] for r in results} <= {1, 2}
    assert all(len(r["segmentations"]) == 4 for r in results)
    stats = json.loads((run / "eval.json").read_text())
    assert set(stats) >= {"AP", "AP50", "AR10"} and all(-1 <= v <= 1 for v in stats.values())
    for stage in ("flow", "cam", "cams", "irn", "pseudo", "maskrcnn", "maskconsist"):
        assert (run / stage).is_dir(), stage
    for trained in ("cam", "irn", "maskrcnn", "maskconsist"):
        assert (run / trained / "config.json").is_file()  # each stage's config beside its output
    # Without ImageNet weights, Mask R-CNN's backbone starts from the classifier trained on the tags.
    step1 = json.loads((run / "maskrcnn/config.json").read_text())
    assert step1["weights"] == str((run / "cam/checkpoint.pt").resolve())
    cam = load_checkpoint(run / "cam/checkpoint.pt")["model"]
    detector = load_checkpoint(run / "maskrcnn/checkpoint.pt")["model"]
    assert torch.equal(detector["backbone.body.conv1.weight"], cam["backbone.conv1.weight"])  # frozen stem
    stamp = (run / "maskconsist" / "checkpoint.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(cmd) == 0  # everything done: stages resume at their end or skip
    out = capsys.readouterr().out
    assert "already done, skipped" in out and (run / "maskconsist" / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_the_pipeline_hands_every_instance_setting_to_its_stages():
    from training.cli import build_parser
    from training.cli.pipeline_commands import settings_of

    argv = ["pipeline", "t.json", "--out", "r", "--instance-bg", "0.6", "--instance-norm", "frame"]
    given = settings_of(build_parser().parse_args([*argv, "--instance-split", "0.3"]))
    assert (given.instance_bg, given.instance_norm, given.instance_split) == (0.6, "frame", 0.3)
    unset = settings_of(build_parser().parse_args(argv[:4]))
    assert unset.instance_split is None  # the recorded value, else the classifier's default


def test_full_supervision_needs_the_ground_truth(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "d"), "--videos", "1", "--frames", "2", "--height", "64",
                 "--width", "64"]) == 0  # fmt: skip
    code = main(["pipeline", str(tmp_path / "d/tags.json"), "--out", str(tmp_path / "r"), "--supervision", "full"])
    assert code == 2 and "--gt" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_missing_weights_file_exits_2_before_anything_is_written(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "d"), "--videos", "1", "--frames", "2", "--height", "64",
                 "--width", "64"]) == 0  # fmt: skip
    run = tmp_path / "r"
    code = main(["pipeline", str(tmp_path / "d/tags.json"), "--out", str(run), "--weights", str(tmp_path / "in.pth")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "in.pth" in err and "no such weights file" in err and not run.exists()


def test_without_a_preset_the_pipeline_runs_the_cpu_preset_on_a_cpu_and_says_so(tmp_path, capsys):
    from training.pipeline import PRESETS, choose_preset

    assert choose_preset(None, "cpu") == ("cpu", "preset cpu (no --preset: no GPU here)")
    assert choose_preset("tiny", "cpu") == ("tiny", "preset tiny")
    assert PRESETS["cpu"]["cam"]["arch"] == PRESETS["cpu"]["detector"]["backbone"] == "efficientnet_lite0"
    assert main(["sample", "--out", str(tmp_path / "d"), "--videos", "1", "--frames", "2", "--height", "64",
                 "--width", "64"]) == 0  # fmt: skip
    capsys.readouterr()
    code = main(["pipeline", str(tmp_path / "d/tags.json"), "--out", str(tmp_path / "r"), "--supervision", "full",
                 "--device", "cpu"])  # fmt: skip
    assert code == 2 and "==> preset cpu (no --preset: no GPU here)" in capsys.readouterr().out


def test_presets_choose_the_working_size_and_a_bad_instance_background_is_refused(tmp_path, capsys):
    from training.pipeline import PipelineSettings, working_size

    def args(preset: str, **kw) -> PipelineSettings:
        return PipelineSettings(preset=preset, **kw)

    assert working_size(args("cpu")) == working_size(args("default")) == 360  # METHOD §9
    assert working_size(args("tiny")) == 0 and working_size(args("cpu", working_size=0)) == 0
    assert main(["sample", "--out", str(tmp_path / "d"), "--videos", "1", "--frames", "2"]) == 0
    capsys.readouterr()
    code = main(["pipeline", str(tmp_path / "d/tags.json"), "--out", str(tmp_path / "r"), "--instance-bg", "1.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--instance-bg must lie in (0, 1), got 1.5" in err and not (tmp_path / "r").exists()


def test_the_cpu_preset_trains_a_longer_step_1_instead_of_maskconsist_and_predicts_with_it(tmp_path):
    # chosen on the validation set: 4 epochs of step 1 beat 2 epochs + MaskConsist in less time (RESULTS.md)
    from training.pipeline import PipelineSettings, pipeline_stages

    names = {p: [s.name for s in pipeline_stages(tmp_path / "t.json", tmp_path / p, PipelineSettings(preset=p))]
             for p in ("cpu", "tiny", "default")}  # fmt: skip
    assert names["cpu"][-2:] == ["train (Mask R-CNN)", "predict"] and "train (MaskConsist)" not in names["cpu"]
    assert names["tiny"][-3:] == names["default"][-3:] == ["train (Mask R-CNN)", "train (MaskConsist)", "predict"]


def test_until_pseudo_labels_stops_after_the_first_module(tmp_path, capsys):
    # issue 19: Run all goes from tags to pseudo-labels, and on request on to the detector and predictions
    from training.pipeline import PipelineSettings, pipeline_stages

    names = [
        s.name for s in pipeline_stages(tmp_path / "t.json", tmp_path, PipelineSettings("tiny", until="pseudo-labels"))
    ]
    everything = [s.name for s in pipeline_stages(tmp_path / "t.json", tmp_path, PipelineSettings("tiny"))]
    assert names[-1] == "pseudo-labels" and everything[: len(names)] == names and everything[-1] == "predict"
    assert main(["sample", "--out", str(tmp_path / "d"), "--videos", "1", "--frames", "2", "--height", "64",
                 "--width", "64"]) == 0  # fmt: skip
    code = main(["pipeline", str(tmp_path / "d/tags.json"), "--out", str(tmp_path / "r"), "--supervision", "full",
                 "--gt", str(tmp_path / "d/gt.json"), "--until", "pseudo-labels"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--until pseudo-labels is for weak supervision" in err[0]
