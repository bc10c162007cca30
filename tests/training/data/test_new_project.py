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


def test_a_cut_of_a_long_video_is_read_from_the_file_at_its_own_frames(real_clip, tmp_path, capsys):
    project = tmp_path / "proj"
    assert main(["project", "new", str(real_clip), "--classes", "person", "--out", str(project),
                 "--frame-range", "100:112"]) == 0  # fmt: skip
    assert "bikes: 12 frames of 640x272 from" in capsys.readouterr().out
    assert main(["project", "add", str(project), str(real_clip), "--frame-range", "240:"]) == 0  # to the end
    assert main(["project", "add", str(project), str(real_clip)]) == 0  # the whole clip is another video
    tags = json.loads((project / "tags.json").read_text())
    assert [(v["name"], v["length"], v.get("source_frames")) for v in tags["videos"]] == [
        ("bikes", 12, [100, 112]), ("bikes-2", 10, [240, 250]), ("bikes-3", 250, None)]  # fmt: skip
    whole = open_frames(real_clip)
    cut, tail, _ = iter_videos(project / "tags.json")
    assert cut.reader.shape == (12, 272, 640, 3) and len(tail.reader) == 10
    np.testing.assert_array_equal(cut.reader.read(0), whole.read(100))  # frame 0 of the cut is the mp4's 100
    np.testing.assert_array_equal(cut.reader.read(-1), whole.read(111))
    np.testing.assert_array_equal(tail.reader.read(9), whole.read(249))
    with pytest.raises(IndexError):
        cut.reader.read(12)  # frame 112 of the file is not in the cut

    tags["videos"][0]["source_frames"] = [100, 300]  # edited by hand past the file's end
    (project / "tags.json").write_text(json.dumps(tags))
    assert main(["flow", str(project / "tags.json"), "--out", str(tmp_path / "flow")]) == 2
    assert "video bikes: source_frames [100, 300] is not a range [start, stop] of the 250 frames" in _error(capsys)


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
        ("range past the end", "clip: has 16 frames: the frame range 10:20 is not in them"),
        ("range backwards", "frame range '5:3': expected 0 <= START < STOP"),
        ("range not numbers", "frame range 'a:b': expected START:STOP, e.g. 0:250"),
        ("same video twice", "clip: is already in the project"),
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
        "range past the end": ["add", str(made), str(clip), "--frame-range", "10:20"],
        "range backwards": ["new", str(clip), "--classes", "a", "--out", str(tmp_path / "p"), "--frame-range", "5:3"],
        "range not numbers": ["add", str(made), str(clip), "--frame-range", "a:b"],
        "same video twice": ["add", str(made), str(clip)],
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


def test_tags_import_into_a_project_and_export_from_it(tmp_path, capsys):
    sample = SAMPLE.parents[1]
    project = tmp_path / "p"
    videos = [str(sample / "JPEGImages" / "synth_0001"), str(sample / "JPEGImages" / "synth_0000")]
    assert main(["project", "new", *videos, "--classes", "star", "person", "--out", str(project)]) == 0
    before = json.loads((project / "tags.json").read_text())
    capsys.readouterr()

    assert main(["tags", str(sample / "tags.json"), "--out", str(project)]) == 0  # import, by video name
    assert "classes added: disc, box, triangle" in capsys.readouterr().out
    tags = json.loads((project / "tags.json").read_text())
    assert tags["videos"] == before["videos"]  # ids, sources kept: synth_0001 is the project's video 1
    names = {c["id"]: c["name"] for c in tags["categories"]}
    assert names == {1: "star", 2: "person", 3: "disc", 4: "box", 5: "triangle"}
    sample_tags = json.loads((sample / "tags.json").read_text())
    sample_names = {c["id"]: c["name"] for c in sample_tags["categories"]}
    key = {1: 2, 2: 1}  # sample video id -> project video id (matched by name)
    want = {(key[t["video_id"]], t["frame"]): sorted(sample_names[c] for c in t["category_ids"])
            for t in sample_tags["frame_tags"]}  # fmt: skip
    got = {(t["video_id"], t["frame"]): sorted(names[c] for c in t["category_ids"]) for t in tags["frame_tags"]}
    assert got == want and len(got) == 32

    out = tmp_path / "exported.json"
    assert main(["tags", str(project), "--out", str(out)]) == 0  # export: the same JSON
    assert json.loads(out.read_text()) == tags
    other = tmp_path / "q"
    assert main(["project", "new", *reversed(videos), "--classes", "box", "--out", str(other)]) == 0
    assert main(["tags", str(out), "--out", str(other)]) == 0  # into another project: the same tags by name
    again = json.loads((other / "tags.json").read_text())
    again_names = {c["id"]: c["name"] for c in again["categories"]}
    flip = {1: 2, 2: 1}
    assert {(flip[t["video_id"]], t["frame"]): sorted(again_names[c] for c in t["category_ids"])
            for t in again["frame_tags"]} == got  # fmt: skip

    gt = json.loads((sample / "gt.json").read_text())  # a ground truth is derived on the way in
    derived = tmp_path / "derived.json"
    assert main(["tags", str(sample / "gt.json"), "--out", str(derived)]) == 0
    assert {(t["video_id"], t["frame"]) for t in json.loads(derived.read_text())["frame_tags"]} == {
        (v["id"], f) for v in gt["videos"] for f in range(16)}  # fmt: skip


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda t: t["videos"][0].update(file_names=t["videos"][0]["file_names"] * 2, length=32),
         "video 'synth_0000' has 32 frames here and 16 in the project"),
        (lambda t: t["videos"][1].update(file_names=[f.replace("synth_0001", "cat") for f in t["videos"][1][
            "file_names"]]),
         "video 'cat' is not in the project (it has synth_0000, synth_0001): add it first"),
        (lambda t: t["frame_tags"].append({"video_id": 1, "frame": 16, "category_ids": []}),
         "frame_tags[32]: frame 16 is not in 0..15 of video 1"),
        (lambda t: t["videos"].append({**t["videos"][0], "id": 9}), "video 'synth_0000' is listed twice"),
    ],
)  # fmt: skip
def test_tags_that_do_not_fit_the_project_are_refused_in_one_line(change, expected, tmp_path, capsys):
    sample = SAMPLE.parents[1]
    project = tmp_path / "p"
    videos = [str(sample / "JPEGImages" / "synth_0000"), str(sample / "JPEGImages" / "synth_0001")]
    assert main(["project", "new", *videos, "--classes", "disc", "--out", str(project)]) == 0
    before = (project / "tags.json").read_bytes()
    tags = json.loads((sample / "tags.json").read_text())
    change(tags)
    (tmp_path / "t.json").write_text(json.dumps(tags))
    capsys.readouterr()
    assert main(["tags", str(tmp_path / "t.json"), "--out", str(project)]) == 2
    assert _error(capsys) == f"vis-ws tags: error: {tmp_path / 't.json'}: {expected}"
    assert (project / "tags.json").read_bytes() == before  # nothing half imported
    assert main(["tags", str(tmp_path / "t.json"), "--out", str(tmp_path)]) == 2  # a folder that is no project
    assert "is a folder but not a project" in _error(capsys)


def test_frames_extracted_into_the_project_replace_the_source_whole_or_not_at_all(real_clip, tmp_path, capsys):
    from training.data.new_project import extract_frames, new_project_tags

    project = tmp_path / "proj"
    assert main(["project", "new", str(real_clip), "--classes", "person", "--out", str(project),
                 "--frame-range", "100:106", "--extract"]) == 0  # fmt: skip
    tags = json.loads((project / "tags.json").read_text())
    assert "source" not in tags["videos"][0] and "source_frames" not in tags["videos"][0]
    assert sorted(p.name for p in (project / "JPEGImages/bikes").iterdir()) == [f"{i:05d}.jpg" for i in range(6)]
    (video,) = iter_videos(project / "tags.json")
    whole = open_frames(real_clip)
    for t in (0, 5):  # the project's frame t is the file's frame 100 + t, JPEG at quality 95
        diff = np.abs(video.reader.read(t).astype(int) - whole.read(100 + t).astype(int))
        assert diff.mean() < 3
    capsys.readouterr()

    assert main(["project", "add", str(project), str(real_clip), "--frame-range", "0:3", "--extract"]) == 0
    assert (project / "JPEGImages/bikes-2/00002.jpg").is_file()
    (project / "JPEGImages/bikes-3").mkdir()  # in the way of the next video's frames
    before = (project / "tags.json").read_bytes()
    assert main(["project", "add", str(project), str(real_clip), "--frame-range", "3:6", "--extract"]) == 2
    assert "bikes-3: exists: remove it or give the video another name" in _error(capsys)
    assert (project / "tags.json").read_bytes() == before and not list((project / "JPEGImages/bikes-3").iterdir())

    fresh = tmp_path / "fresh"  # stopped after 3 of 2 x 10 frames: no folder, no temporary folder is left
    tags = new_project_tags([real_clip, SAMPLE], ["a"], (0, 10))
    copy = extract_frames(tags, fresh / "tags.json", ["bikes", "synth_0000"])
    assert [next(copy).done for _ in range(3)] == [1, 2, 3]
    copy.close()
    assert list((fresh / "JPEGImages").iterdir()) == []
