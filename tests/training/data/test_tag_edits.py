"""Tagging a video by keyboard: each key's action, one undo step per action, and few keystrokes (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.tag_edits import TagSession
from training.data.tags import validate_tags
from training.errors import InputError


def _tags(frames: int = 250) -> dict:
    video = {"id": 1, "name": "v", "file_names": [f"v/{i:05d}.jpg" for i in range(frames)], "height": 8,
             "width": 8, "length": frames}  # fmt: skip
    other = {**video, "id": 2, "name": "w", "file_names": video["file_names"][:3], "length": 3}
    return {"videos": [video, other], "categories": [{"id": 1, "name": "person"}, {"id": 7, "name": "bicycle"}],
            "frame_tags": [{"video_id": 2, "frame": 0, "category_ids": [7]}]}  # fmt: skip


def test_250_frames_with_two_classes_changing_at_6_points_take_under_30_keystrokes():
    # truth: person in 0-99 and 200-249, bicycle in 60-179, nothing in 180-199
    session = TagSession(_tags(), 1)
    keys = 0

    def at(frame: int, *pressed: str) -> None:  # the frame is reached with the mouse on the timeline
        nonlocal keys
        session.go(frame)
        for key in pressed:
            assert session.press(key), key
            keys += 1

    at(0, "1")
    at(99, "shift+1")
    at(60, "2")
    at(179, "shift+2")
    at(180, "0")
    at(199, "shift+0")
    at(200, "1")
    at(249, "shift+1")
    assert keys < 30
    truth = np.zeros((250, 2), bool)
    truth[:100, 0] = truth[200:, 0] = truth[60:180, 1] = True
    np.testing.assert_array_equal(session.present, truth)
    assert session.tagged.all()
    tags = validate_tags(session.tags(), "t.json")  # still a valid frame-tags file
    mine = {e["frame"]: e["category_ids"] for e in tags["frame_tags"] if e["video_id"] == 1}
    assert mine[70] == [1, 7] and mine[150] == [7] and mine[190] == [] and mine[220] == [1]
    assert [e for e in tags["frame_tags"] if e["video_id"] == 2] == [{"video_id": 2, "frame": 0, "category_ids": [7]}]


def test_each_action_is_one_undo_step_and_untagged_frames_stay_unknown():
    session = TagSession(_tags(20), 1)
    assert not session.tagged.any() and session.tags()["frame_tags"] == _tags()["frame_tags"]
    session.go(5)
    session.press("2")
    session.press("right")
    session.press("c")  # frame 6 := frame 5
    assert session.frame == 6 and session.present[5:7, 1].all() and session.tagged[5:7].all()
    session.press("delete")
    assert not session.tagged[6] and session.tagged[5]  # unknown again, not "no object"
    session.press("pagedown")
    session.press("shift+2")  # from frame 5 (the last bicycle before 16) to 16
    assert session.frame == 16 and session.present[5:17, 1].all()
    assert session.undo() and np.flatnonzero(session.present[:, 1]).tolist() == [5] and not session.tagged[6]
    assert session.undo() and session.tagged[6] and session.present[6, 1]  # the delete undone: the copy is back
    assert session.undo() and not session.tagged[6] and session.undo() and not session.tagged.any()
    session = TagSession(_tags(20), 1)
    session.go(3)
    session.press("1")
    session.press("1")  # toggled off: the frame stays tagged, as empty
    assert session.tagged[3] and not session.present[3].any()
    assert session.press("ctrl+z") and session.present[3, 0] and session.press("ctrl+z") and not session.tagged[3]
    assert not session.undo() and session.redo() and session.present[3, 0]
    assert session.press("end") and session.frame == 19 and session.press("home") and session.frame == 0
    assert not session.press("3") and not session.press("x")  # 2 classes only; not a tagging key


def test_shift_extends_from_after_when_nothing_before_and_ranges_tag_frames():
    session = TagSession(_tags(30), 1)
    session.go(20)
    session.press("1")
    session.go(10)
    session.press("shift+1")  # no person before 10: from the next one, 20
    assert np.flatnonzero(session.present[:, 0]).tolist() == list(range(10, 21))
    session.set_range(1, 25, 22)
    session.set_range(0, 12, 14, on=False)
    assert session.present[22:26, 1].all() and not session.present[12:15, 0].any() and session.tagged[12:15].all()
    with pytest.raises(InputError, match="no video with id 9"):
        TagSession(_tags(), 9)


def test_adding_renaming_and_colouring_classes_are_undone_with_the_tags():
    session = TagSession(_tags(20), 1)
    session.press("1")
    new = session.add_class(" square ")
    assert new == 8 and session.present.shape == (20, 3)
    session.go(4)
    assert session.press("3")  # the new class's key
    session.rename_class(7, "bike")
    session.set_color(8, "#FF0000")
    tags = validate_tags(session.tags(), "t.json")  # a valid file, the colour in it
    assert tags["categories"] == [{"id": 1, "name": "person"}, {"id": 7, "name": "bike"},
                                  {"id": 8, "name": "square", "color": "#ff0000"}]  # fmt: skip
    assert {"video_id": 1, "frame": 4, "category_ids": [8]} in tags["frame_tags"]
    for message, bad in [("a class name is empty", lambda: session.add_class("  ")),
                         ("class name 'person' is taken", lambda: session.rename_class(8, "person")),
                         ("colour 'red' is not '#rrggbb'", lambda: session.set_color(1, "red")),
                         ("no class with id 5", lambda: session.set_color(5, "#000000"))]:  # fmt: skip
        with pytest.raises(InputError, match=message):
            bad()
    for _ in range(3):  # colour, rename, frame 4's tag: one undo each
        assert session.undo()
    assert [c["name"] for c in session.categories] == ["person", "bicycle", "square"] and not session.tagged[4]
    assert "color" not in session.categories[2]
    assert session.undo() and session.present.shape == (20, 2) and session.category_ids == [1, 7]  # the add
    assert session.redo() and session.redo() and session.present[4, 2]  # and back
    with pytest.raises(InputError, match="'color' must be '#rrggbb', not 'blue'"):
        validate_tags({**session.tags(), "categories": [{"id": 1, "name": "a", "color": "blue"}]}, "t.json")
