"""A corrections project on disk: save, reopen after a killed process, export, training targets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, make_volume
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from training.errors import InputError
from training.export import LabelVolume, load_labels
from training.project import (
    export_volumes,
    load_project_state,
    project_videos,
    save_corrections,
    save_pseudo,
    write_training_targets,
)

CATS = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}]


def test_saved_corrections_reopen_with_labels_review_marks_and_classes(tmp_path):
    vol = make_volume()
    save_corrections(tmp_path, "v", vol, reviewed={2, 0}, categories=CATS, edited=123.5)
    st = load_project_state(tmp_path, "v")
    np.testing.assert_array_equal(st.volume.labels, vol.labels)
    assert st.reviewed == {0, 2} and st.categories == CATS and st.edited == 123.5
    assert st.volume.categories == vol.categories and st.pseudo is None
    assert project_videos(tmp_path) == ["v"]


def test_pseudo_labels_are_kept_from_the_first_save_only(tmp_path):
    first = make_volume()
    assert save_pseudo(tmp_path, "v", first)
    assert not save_pseudo(tmp_path, "v", make_volume(seed=5))
    save_corrections(tmp_path, "v", make_volume(seed=3), [], CATS)
    np.testing.assert_array_equal(load_project_state(tmp_path, "v").pseudo.labels, first.labels)


def test_a_process_killed_right_after_saving_leaves_its_edits_on_disk(tmp_path):
    code = (
        "import os, sys, numpy as np\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from training.export import LabelVolume\n"
        "from training.project import save_corrections\n"
        "labels = np.zeros((4, 8, 9), np.int32); labels[1:3, 2:5, 2:6] = 7\n"
        f"save_corrections({str(tmp_path)!r}, 'clip', LabelVolume(labels, {{7: 3}}), [1], "
        "[{'id': 3, 'name': 'disc'}], edited=1.0)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    st = load_project_state(tmp_path, "clip")
    assert (st.volume.labels == 7).sum() == 2 * 3 * 4 and st.reviewed == {1}
    assert not list((tmp_path / "corrections" / "clip").glob(".*tmp"))


def test_reopening_a_video_without_corrections_says_so(tmp_path):
    with pytest.raises(InputError, match="no saved corrections for video 'nope'"):
        load_project_state(tmp_path, "nope")


def test_review_marks_outside_the_video_are_refused(tmp_path):
    with pytest.raises(ValueError, match="0..2"):
        save_corrections(tmp_path, "v", make_volume(), [5], CATS)


def test_export_summary_counts_videos_instances_and_masks(tmp_path):
    a, b = make_volume(), make_volume(t=2, seed=1)
    b.video["id"] = 8
    s = export_volumes(tmp_path / "out.coco.json", [a, b], CATS, "coco")
    coco = COCO(str(tmp_path / "out.coco.json"))
    assert (s.videos, s.instances, s.masks) == (2, 6, len(coco.getAnnIds()))
    assert str(s) == f"wrote 2 videos, 6 instances, {s.masks} masks to {tmp_path / 'out.coco.json'}"
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[1], catIds=[7]))
    assert ann == []  # instance 5 (box) is absent in frame 0
    m = mask_utils.decode(coco.loadAnns(coco.getAnnIds(imgIds=[2], catIds=[7]))[0]["segmentation"])
    np.testing.assert_array_equal(m.astype(bool), a.labels[1] == 5)


def test_two_volumes_of_the_same_video_are_refused(tmp_path):
    with pytest.raises(ValueError, match="share a video id"):
        export_volumes(tmp_path / "x.json", [make_volume(), make_volume()], CATS)


def test_training_targets_replace_the_pseudo_labels_of_reviewed_frames_only(tmp_path):
    pseudo = make_volume()
    corrected_labels = pseudo.labels.copy()
    corrected_labels[:, 2:8, 3:10] = 0  # instance 1 deleted everywhere, but only frame 1 is reviewed
    save_pseudo(tmp_path / "proj", "v", pseudo)
    save_corrections(tmp_path / "proj", "v", LabelVolume(corrected_labels, pseudo.categories), {1}, CATS)
    s = write_training_targets(tmp_path / "proj", tmp_path / "targets")
    target = load_labels(tmp_path / "targets" / "v" / "pseudo.npz")
    np.testing.assert_array_equal(target.labels[1], corrected_labels[1])
    np.testing.assert_array_equal(target.labels[[0, 2]], pseudo.labels[[0, 2]])
    results = json.loads((tmp_path / "targets" / "pseudo_labels.json").read_text())
    assert sorted(r["instance_id"] for r in results) == [1, 2, 5]
    assert json.loads((tmp_path / "targets" / "targets.json").read_text())["videos"]["v"]["reviewed"] == [1]
    assert str(s).startswith("wrote 1 video, 3 instances,") and "(1/3 frames reviewed)" in str(s)


def test_a_save_with_fewer_edits_or_fewer_reviewed_frames_keeps_the_previous_one_as_a_backup(tmp_path):
    from training.project import KEEP_BACKUPS, list_backups

    pseudo = make_volume(t=4)
    edited = LabelVolume(pseudo.labels.copy(), pseudo.categories, pseudo.scores)
    edited.labels[1][edited.labels[1] == 2] = 0  # instance 2 erased in frame 1
    first = save_corrections(tmp_path, "v", edited, [1], CATS, pseudo=pseudo)
    n = int((pseudo.labels[1] == 2).sum())
    assert first.edited_pixels == n and first.backup is None and project_videos(tmp_path) == ["v"]
    more = save_corrections(tmp_path, "v", edited, [1, 2], CATS)  # pseudo.npz read from disk: same edits
    assert more.backup is None and more.previous_pixels == n and list_backups(tmp_path, "v") == []

    undone = save_corrections(tmp_path, "v", pseudo, [1, 2], CATS)  # every pixel edit undone
    assert undone.edited_pixels == 0 and undone.previous_pixels == n
    assert list_backups(tmp_path, "v") == [undone.backup]
    np.testing.assert_array_equal(load_labels(undone.backup / "labels.npz").labels, edited.labels)
    assert json.loads((undone.backup / "state.json").read_text())["reviewed"] == [1, 2]
    np.testing.assert_array_equal(load_project_state(tmp_path, "v").volume.labels, pseudo.labels)  # saved all the same

    unreviewed = save_corrections(tmp_path, "v", pseudo, [2], CATS)  # a review mark taken back
    assert unreviewed.backup is not None and len(list_backups(tmp_path, "v")) == 2
    for _ in range(KEEP_BACKUPS + 3):
        save_corrections(tmp_path, "v", edited, [1, 2], CATS)
        save_corrections(tmp_path, "v", pseudo, [], CATS)
    kept = list_backups(tmp_path, "v")
    assert len(kept) == KEEP_BACKUPS and kept[-1].name > undone.backup.name  # the newest generations
    assert project_videos(tmp_path) == ["v"]  # backups are not videos
