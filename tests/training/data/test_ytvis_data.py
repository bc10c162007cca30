"""YouTube-VIS datasets and frame tags: validation, frame paths, tags."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from training.data.tags import load_tags, tag_matrix, tags_from_ytvis
from training.data.ytvis import (
    dataset_video_frames,
    frame_paths,
    frames_root,
    gt_volume,
    load_ytvis,
    safe_relative_path,
)
from training.errors import InputError


def _edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_ground_truth_volume_matches_what_was_written(tiny_dataset):
    from conftest import make_volume

    data = load_ytvis(tiny_dataset)
    vol = gt_volume(data, 2, tiny_dataset)
    np.testing.assert_array_equal(vol.labels, make_volume(t=2, seed=2).labels)


def test_frames_are_found_beside_the_json_or_in_frames_dir(tiny_dataset, tmp_path):
    data = load_ytvis(tiny_dataset)
    assert frames_root(tiny_dataset) == tiny_dataset.parent / "JPEGImages"
    reader = dataset_video_frames(tiny_dataset, data, 1)
    assert reader.shape == (3, 20, 30, 3) and int(reader.read(2)[5, 5, 0]) in range(70, 90)
    other = tmp_path / "elsewhere"
    os.rename(tiny_dataset.parent / "JPEGImages", other)
    with pytest.raises(InputError, match="missing frame file"):
        dataset_video_frames(tiny_dataset, data, 1)
    assert dataset_video_frames(tiny_dataset, data, 1, frames=other).shape[0] == 3


@pytest.mark.parametrize("name", ["../x.jpg", "/etc/passwd", "a/../../b.jpg", "C:\\x.jpg", "", "\\\\srv\\x.jpg"])
def test_paths_escaping_the_frames_folder_are_refused(name):
    assert not safe_relative_path(name)


def test_dataset_naming_a_file_outside_its_root_is_refused(tiny_dataset):
    _edit(tiny_dataset, lambda d: d["videos"][0]["file_names"].__setitem__(1, "../../secret.jpg"))
    with pytest.raises(InputError, match=r"videos\[0\] \(id 1\): file_names\[1\] '../../secret.jpg'"):
        load_ytvis(tiny_dataset)


def test_symlink_out_of_the_frames_folder_is_refused(tiny_dataset, tmp_path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((tiny_dataset.parent / "JPEGImages/v1/00000.jpg").read_bytes())
    link = tiny_dataset.parent / "JPEGImages/v1/00001.jpg"
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(InputError, match="symlink points outside"):
        frame_paths(frames_root(tiny_dataset), load_ytvis(tiny_dataset)["videos"][0])


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d.pop("videos"), "missing 'videos' list"),
        (lambda d: d["annotations"][0].update(video_id=99), r"annotations\[0\] \(id 1\): unknown video_id 99"),
        (lambda d: d["annotations"][1].update(category_id=5), r"annotations\[1\] \(id 2\): unknown category_id 5"),
        (lambda d: d["annotations"][0]["segmentations"].pop(), "one entry per frame"),
        (lambda d: d["annotations"][2].update(id=1), "duplicate annotation id"),
        (lambda d: d["videos"][1].update(id=1), "duplicate video id"),
        (lambda d: d["videos"][0].update(height="20"), "'height' must be a positive integer"),
        (lambda d: d["videos"][0].update(length=7), "does not match 3 file_names"),
    ],
)
def test_malformed_dataset_gets_one_line_naming_the_entry(tiny_dataset, edit, message):
    _edit(tiny_dataset, edit)
    with pytest.raises(InputError, match=message) as info:
        load_ytvis(tiny_dataset)
    assert str(info.value).startswith(str(tiny_dataset)) and "\n" not in str(info.value)


def test_malformed_json_names_line_and_column(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"videos": [\n  1,,]}')
    with pytest.raises(InputError, match=r"bad\.json: malformed JSON at line 2 column 5"):
        load_ytvis(p)


def test_tags_mark_a_category_only_where_an_instance_is_present(tiny_dataset):
    tags = tags_from_ytvis(load_ytvis(tiny_dataset))
    m, cats = tag_matrix(tags, 1)
    assert cats == [3, 7, 9]
    # instance 5 (category 7) is absent in frame 0 of every video
    assert m.tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    assert len(tags["frame_tags"]) == 5


def test_tags_file_with_unknown_category_names_the_frame(tiny_dataset, tmp_path):
    tags = tags_from_ytvis(load_ytvis(tiny_dataset))
    tags["frame_tags"][3]["category_ids"].append(42)
    p = tmp_path / "tags.json"
    p.write_text(json.dumps(tags))
    with pytest.raises(InputError, match=r"frame_tags\[3\]: unknown category id 42 in video 2 frame 0"):
        load_tags(p)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t["frame_tags"][0].update(frame=3), r"frame 3 is not in 0..2 of video 1"),
        (lambda t: t["frame_tags"][1].update(frame=0), "video 1 frame 0 is tagged twice"),
        (lambda t: t["frame_tags"][0].update(video_id=8), "unknown video_id 8"),
        (lambda t: t.pop("frame_tags"), "missing 'frame_tags'"),
    ],
)
def test_tags_file_naming_unknown_frames_is_refused(tiny_dataset, tmp_path, edit, message):
    tags = tags_from_ytvis(load_ytvis(tiny_dataset))
    edit(tags)
    p = tmp_path / "tags.json"
    p.write_text(json.dumps(tags))
    with pytest.raises(InputError, match=message):
        load_tags(p)
