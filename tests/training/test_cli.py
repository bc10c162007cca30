"""``vis-ws``: help, exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import build_parser, main

FOUNDATION_COMMANDS = {"sample", "tags", "info", "export", "eval"}


def test_help_lists_every_subcommand_with_a_description():
    exe = Path(sys.executable).parent / "vis-ws"  # the installed console script
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in FOUNDATION_COMMANDS:
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(cmd + " "))
        assert len(line.split(None, 1)[1]) > 20  # a real one-line description


@pytest.mark.parametrize("cmd", sorted(FOUNDATION_COMMANDS))
def test_each_subcommand_help_shows_defaults(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0
    assert "usage: vis-ws " + cmd in capsys.readouterr().out


def test_every_registered_subcommand_is_documented():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert FOUNDATION_COMMANDS <= set(sub.choices)
    for action in sub._choices_actions:
        assert action.help, action.dest


def test_tags_writes_frame_tags(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "tags.json"
    assert main(["tags", str(tiny_dataset), "--out", str(out)]) == 0
    tags = json.loads(out.read_text())
    assert len(tags["frame_tags"]) == 5 and tags["frame_tags"][1]["category_ids"] == [3, 7]
    assert "5 frames of 2 videos" in capsys.readouterr().out


@pytest.mark.parametrize("content,problem", [("{", "malformed JSON at line 1"), ("[]", "expected a JSON object")])
def test_malformed_json_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, content, problem):
    bad = tmp_path / "gt.json"
    bad.write_text(content)
    out = tmp_path / "tags.json"
    assert main(["tags", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and problem in err
    assert not out.exists()


def test_missing_file_exits_2_naming_it(tmp_path, capsys):
    code = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "tags",
            str(tmp_path / "nope.json"),
            "--out",
            str(tmp_path / "t.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert code.returncode == 2
    assert code.stderr.strip() == f"vis-ws tags: error: {tmp_path / 'nope.json'}: no such file"


def test_output_over_an_input_is_refused(tiny_dataset, capsys):
    before = tiny_dataset.read_bytes()
    assert main(["tags", str(tiny_dataset), "--out", str(tiny_dataset)]) == 2
    assert tiny_dataset.read_bytes() == before


def test_export_gt_to_coco_and_results(tiny_dataset, tmp_path):
    from pycocotools.coco import COCO

    assert main(["export", str(tiny_dataset), "--format", "coco", "--out", str(tmp_path / "c.json")]) == 0
    coco = COCO(str(tmp_path / "c.json"))
    assert len(coco.getImgIds()) == 5
    assert main(["export", str(tiny_dataset), "--form", "results", "--out", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert {r["video_id"] for r in res} == {1, 2} and all(r["score"] == 1.0 for r in res)


def test_export_npz_volumes_with_named_categories(tiny_dataset, tmp_path):
    from conftest import make_volume

    from training.export import save_labels

    save_labels(tmp_path / "a.npz", make_volume())
    assert (
        main(
            [
                "export",
                str(tmp_path / "a.npz"),
                "--categories",
                str(tiny_dataset),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "o.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["disc", "box", "unused"]
    assert len(data["annotations"]) == 3


def test_info_describes_a_real_video(real_clip, capsys):
    assert main(["info", str(real_clip), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["frames"], info["height"], info["width"], info["fps"]) == (250, 272, 640, 25.0)


def test_info_describes_a_dataset(tiny_dataset, capsys):
    assert main(["info", str(tiny_dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "YouTube-VIS ground truth" and info["videos"] == 2 and info["instances"] == 6


def _results_of_gt(tiny_dataset, tmp_path):
    res = tmp_path / "res.json"
    assert main(["export", str(tiny_dataset), "--form", "results", "--out", str(res)]) == 0
    return res


def test_eval_json_prints_the_twelve_stats(tiny_dataset, tmp_path, capsys):
    res = _results_of_gt(tiny_dataset, tmp_path)
    capsys.readouterr()
    assert main(["eval", "--gt", str(tiny_dataset), "--results", str(res), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert list(stats) == ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                           "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]  # fmt: skip
    assert stats["AP"] == 1.0 and stats["AR100"] == 1.0 and stats["AP_large"] == -1.0


def test_eval_frame_level_of_gt_is_perfect(tiny_dataset, tmp_path, capsys):
    res = _results_of_gt(tiny_dataset, tmp_path)
    capsys.readouterr()
    assert main(["eval", "--gt", str(tiny_dataset), "--results", str(res), "--frame-level"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("frame-level COCO mask AP") and "= 1.000" in out


def test_eval_of_an_empty_results_list_is_all_zero(tiny_dataset, tmp_path, capsys):
    res = tmp_path / "empty.json"
    res.write_text("[]")
    assert main(["eval", "--gt", str(tiny_dataset), "--results", str(res), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0


def test_eval_of_results_naming_an_unknown_video_exits_2(tiny_dataset, tmp_path, capsys):
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"video_id": 9, "category_id": 3, "score": 0.5, "segmentations": [None] * 3}]))
    assert main(["eval", "--gt", str(tiny_dataset), "--results", str(res)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "video id 9" in err and "res.json" in err


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_sample_makes_small_frames_with_objects_that_fit(tmp_path, size):
    h, w = size
    out = tmp_path / "s"
    assert (
        main(["sample", "--out", str(out), "--videos", "2", "--frames", "3", "--height", str(h), "--width", str(w)])
        == 0
    )
    gt = json.loads((out / "gt.json").read_text())
    assert gt["videos"][0]["height"] == h and len(gt["annotations"]) >= 4


def test_training_that_stops_exits_1_with_one_line(monkeypatch, capsys, tiny_dataset):
    from training.cli import eval_commands
    from training.errors import TrainingStopped

    def stop(args):
        raise TrainingStopped("train-x: loss became nan at epoch 2 step 3; the last good checkpoint is kept: run/c.pt")

    monkeypatch.setattr(eval_commands, "run_eval", stop)
    assert main(["eval", "--gt", str(tiny_dataset), "--results", str(tiny_dataset)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vis-ws eval: stopped: train-x: loss became nan")
