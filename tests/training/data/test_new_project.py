"""`vis-ws project new|add|remove`: a project from a user's own videos, frames read from the files (issue 19)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.cli import main
from training.data.sources import iter_videos
from training.data.video import open_frames

SAMPLE = Path(__file__).resolve().parents[3] / "sample_data" / "JPEGImages" / "synth_0000"


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # one line, no traceback
    return lines[0]


def test_a_project_of_a_real_clip_and_a_frames_folder_is_a_dataset_read_from_the_files(real_clip, tmp_path, capsys):
    project = tmp_path / "proj"
    assert main(["project", "new", str(real_clip), str(SAMPLE), "--classes", "person", "bicycle",
                 "--out", str(project)]) == 0  # fmt: skip
    assert "2 videos, 266 frames, classes person, bicycle" in capsys.readouterr().out
    tags = json.loads((project / "tags.json").read_text())
    assert [(v["id"], v["name"], v["length"]) for v in tags["videos"]] == [(1, "bikes", 250), (2, "synth_0000", 16)]
    assert tags["categories"] == [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}]
    assert tags["frame_tags"] == [] and not list(project.glob("**/*.jpg"))  # nothing tagged, nothing extracted

    bikes, synth = iter_videos(project / "tags.json")
    assert bikes.key == "bikes" and bikes.reader.shape == (250, 272, 640, 3)
    np.testing.assert_array_equal(bikes.reader.read(120), open_frames(real_clip).read(120))  # the mp4's own frame
    np.testing.assert_array_equal(synth.reader.read(3), open_frames(SAMPLE).read(3))
    assert main(["info", str(project / "tags.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sources"] == [str(real_clip.resolve()), str(SAMPLE.resolve())]

    tags["frame_tags"] = [{"video_id": 2, "frame": 0, "category_ids": [1]}]  # tagged in the plugin, say
    (project / "tags.json").write_text(json.dumps(tags))
    copy = tmp_path / "frames"
    shutil.copytree(SAMPLE, copy)
    assert main(["project", "remove", str(project), "bikes"]) == 0
    assert main(["project", "add", str(project), str(copy)]) == 0
    tags = json.loads((project / "tags.json").read_text())
    assert [(v["id"], v["name"]) for v in tags["videos"]] == [(2, "synth_0000"), (3, "frames")]  # ids kept
    assert tags["frame_tags"] == [{"video_id": 2, "frame": 0, "category_ids": [1]}]  # the others' tags kept


def test_flow_runs_on_a_project_reading_its_videos_lazily(tmp_path):
    frames = tmp_path / "clip"
    frames.mkdir()
    for f in sorted(SAMPLE.iterdir())[:3]:
        shutil.copy(f, frames / f.name)
    assert main(["project", "new", str(frames), "--classes", "disc", "--out", str(tmp_path / "p")]) == 0
    assert main(["flow", str(tmp_path / "p/tags.json"), "--out", str(tmp_path / "p/flow")]) == 0
    assert (tmp_path / "p/flow/clip.flow.npy").is_file()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("twice", "class 'a' is given twice"),
        ("corrupt", "bad.mp4: not a readable video"),
        ("sizes", "frame 1 (1.png) is 30x22, frame 0 is 30x20: a video has one frame size"),
        ("missing", "nothing.mp4: no such file or folder"),
        ("exists", "tags.json: exists: add videos with 'vis-ws project add'"),
        ("out is a file", "out: exists and is not a folder"),
        ("not a project", "is not a project (no tags.json)"),
        ("unknown name", "no video called 'nope' (it has clip)"),
    ],
)
def test_bad_input_gets_one_line_and_writes_nothing(case, expected, tmp_path, capsys):
    import imageio.v3 as iio

    clip = tmp_path / "clip"
    shutil.copytree(SAMPLE, clip)
    (tmp_path / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    iio.imwrite(sizes / "0.png", np.zeros((20, 30, 3), np.uint8))
    iio.imwrite(sizes / "1.png", np.zeros((22, 30, 3), np.uint8))
    made = tmp_path / "made"
    assert main(["project", "new", str(clip), "--classes", "disc", "--out", str(made)]) == 0
    before = (made / "tags.json").read_bytes()
    capsys.readouterr()
    (tmp_path / "out").write_text("a file")
    argv = {
        "twice": ["new", str(clip), "--classes", "a", "a", "--out", str(tmp_path / "p")],
        "corrupt": ["add", str(made), str(tmp_path / "bad.mp4")],
        "sizes": ["add", str(made), str(sizes)],
        "missing": ["add", str(made), str(tmp_path / "nothing.mp4")],
        "exists": ["new", str(clip), "--classes", "disc", "--out", str(made)],
        "out is a file": ["new", str(clip), "--classes", "disc", "--out", str(tmp_path / "out")],
        "not a project": ["add", str(tmp_path / "clip"), str(sizes)],
        "unknown name": ["remove", str(made), "nope"],
    }[case]
    assert main(["project", *argv]) == 2
    assert expected in _error(capsys)
    assert (made / "tags.json").read_bytes() == before and not (tmp_path / "p").exists()


def test_a_source_replaced_after_the_project_was_made_is_named_in_one_line(tmp_path, capsys):
    clip = tmp_path / "clip"
    shutil.copytree(SAMPLE, clip)
    assert main(["project", "new", str(clip), "--classes", "disc", "--out", str(tmp_path / "p")]) == 0
    sorted(clip.iterdir())[-1].unlink()  # a frame gone
    assert main(["flow", str(tmp_path / "p/tags.json"), "--out", str(tmp_path / "flow")]) == 2
    line = _error(capsys)
    assert f"its source {clip.resolve()} has 15 frames of 320x240, the project lists 16" in line
