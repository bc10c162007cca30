"""The Tags dock, driven as a person would: keys on the timeline, a drag, undo, classes, autosave (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from training.cli import main

pytestmark = pytest.mark.gui

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "JPEGImages"


@pytest.fixture
def project(tmp_path) -> Path:
    """A project of the sample's two videos (16 frames each), nothing tagged."""
    videos = [str(SAMPLE / "synth_0000"), str(SAMPLE / "synth_0001")]
    assert main(["project", "new", *videos, "--classes", "disc", "star", "--out", str(tmp_path / "p")]) == 0
    return tmp_path / "p"


@pytest.fixture
def dock(make_napari_viewer, qtbot, project):
    from napari_vis_ws._widgets.tags import TagsWidget

    viewer = make_napari_viewer()
    w = TagsWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open(project / "tags.json")
    return w


def _saved(project: Path, video_id: int = 1) -> dict[int, list[int]]:
    tags = json.loads((project / "tags.json").read_text())
    return {e["frame"]: e["category_ids"] for e in tags["frame_tags"] if e["video_id"] == video_id}


def test_keys_on_the_timeline_tag_frames_and_are_saved(dock, qtbot, project):
    viewer, strips = dock.viewer, dock.strips
    assert dock.video_combo.count() == 2 and viewer.layers["frames"].data.shape == (16, 240, 320, 3)
    assert "frame 1/16: untagged. 0 of 16 frames tagged" in dock.status.text()
    strips.setFocus()
    qtbot.keyClick(strips, Qt.Key_1)  # disc on frame 0
    for _ in range(5):
        qtbot.keyClick(strips, Qt.Key_Right)
    assert viewer.dims.current_step[0] == 5  # the viewer follows the timeline
    qtbot.keyClick(strips, Qt.Key_1, Qt.ShiftModifier)  # disc from frame 0 to here
    qtbot.keyClick(strips, Qt.Key_2)  # star here too
    qtbot.keyClick(strips, Qt.Key_PageDown)  # frame 15
    qtbot.keyClick(strips, Qt.Key_0)  # nothing there
    assert "frame 16/16: nothing (tagged empty). 7 of 16 frames tagged" in dock.status.text()
    qtbot.waitUntil(lambda: len(_saved(project)) == 7, timeout=5000)  # autosaved within a second
    saved = _saved(project)
    assert saved[0] == [1] and saved[5] == [1, 2] and saved[15] == [] and 10 not in saved  # 10: still unknown
    qtbot.keyClick(strips, Qt.Key_Z, Qt.ControlModifier)  # one action undone: frame 15 unknown again
    qtbot.waitUntil(lambda: 15 not in _saved(project), timeout=5000)
    viewer.dims.set_current_step(0, 8)  # napari's slider moves the timeline
    qtbot.keyClick(strips, Qt.Key_C)  # frame 7's tags (none: unknown) copied
    assert dock.session.frame == 8 and not dock.session.tagged[8]


def test_dragging_on_a_class_strip_tags_a_range_and_classes_can_be_added(dock, qtbot, project):
    strips = dock.strips
    strips.resize(320, 60)
    x = lambda frame: int((frame + 0.5) * strips.width() / 16)  # noqa: E731
    qtbot.mousePress(strips, Qt.LeftButton, pos=QPoint(x(3), 30))  # the star strip (row 2)
    qtbot.mouseMove(strips, QPoint(x(9), 30))
    qtbot.mouseRelease(strips, Qt.LeftButton, pos=QPoint(x(9), 30))
    assert np.flatnonzero(dock.session.present[:, 1]).tolist() == list(range(3, 10))
    from napari_vis_ws._prediction_layers import class_color

    image = strips.grab().toImage()  # what the timeline shows: the class's colour, grey, or untagged
    assert image.pixelColor(x(5), 30).name() == class_color(2)  # star tagged at frame 5
    assert image.pixelColor(x(5), 10).name() == "#3a3a3a"  # the frame is tagged without disc
    assert image.pixelColor(x(12), 10).name() not in (class_color(1), "#3a3a3a")  # frame 12: untagged, hatched
    dock.class_edit.setText("square")
    dock.add_class()
    assert dock.class_combo.count() == 3 and "3 square" in dock.legend.text()
    dock.class_edit.setText("disc")
    dock.add_class()  # a name taken: refused, nothing added
    assert dock.class_combo.count() == 3 and "class name 'disc' is taken" in dock.status.text()
    dock.video_combo.setCurrentIndex(1)  # the other video: video 1's tags are kept

    def names() -> list[str]:
        return [c["name"] for c in json.loads((project / "tags.json").read_text())["categories"]]

    qtbot.waitUntil(lambda: names() == ["disc", "star", "square"], timeout=5000)  # autosaved
    assert sorted(_saved(project)) == list(range(3, 10))
    assert main(["info", str(project / "tags.json")]) == 0  # still a valid frame-tags file
    other = project.parent / "other"  # opening another project: its tags, not the ones shown before
    assert main(["project", "new", str(SAMPLE / "synth_0001"), "--classes", "box", "--out", str(other)]) == 0
    dock.open(other / "tags.json")
    assert dock.session.category_ids == [1] and not dock.session.tagged.any() and dock.video_combo.count() == 1


def test_a_bad_tags_file_is_named_in_one_line(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    from napari_vis_ws._widgets.tags import TagsWidget

    dock = TagsWidget(make_napari_viewer())
    (tmp_path / "t.json").write_text('{"videos": []}')
    seen = len(notification_manager.records)
    dock.open(tmp_path / "t.json")
    messages = [str(n.message) for n in notification_manager.records[seen:]]
    assert len(messages) == 1 and "t.json" in messages[0] and "\n" not in messages[0]
    assert dock.session is None


def test_closing_napari_right_after_a_change_keeps_it(make_napari_viewer, qtbot, project):
    from napari_vis_ws._widgets.tags import TagsWidget

    viewer = make_napari_viewer(show=True)
    dock = TagsWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.open(project / "tags.json")
    qtbot.wait(100)  # the window shows, the dock docks
    dock.strips.setFocus()
    qtbot.keyClick(dock.strips, Qt.Key_2)
    viewer.close()  # before the autosave's second: saved as the dock is hidden
    assert _saved(project) == {0: [2]}


def test_a_class_colour_shows_everywhere_and_class_edits_are_undone_by_key(dock, qtbot, project):
    from napari_vis_ws._prediction_layers import class_color, score_colormap

    strips = dock.strips
    strips.resize(320, 60)
    strips.setFocus()
    qtbot.keyClick(strips, Qt.Key_2)  # star on frame 0
    dock.class_combo.setCurrentIndex(1)
    dock.choose_color("#00ff00")  # what the colour dialog returns

    def categories() -> list[dict]:
        return json.loads((project / "tags.json").read_text())["categories"]

    assert strips.grab().toImage().pixelColor(10, 30).name() == "#00ff00"  # the timeline
    assert "color:#00ff00'>■</span> 2 star" in dock.legend.text()  # the legend
    qtbot.waitUntil(lambda: categories()[1] == {"id": 2, "name": "star", "color": "#00ff00"}, timeout=5000)
    instance = {"index": [3], "category_id": [2], "score": [0.9]}
    assert score_colormap(instance, 0.5, categories())[3] == "#00ff00"  # the predictions layer draws star in it

    dock.class_edit.setText("square")
    dock.add_class()
    qtbot.keyClick(strips, Qt.Key_3)  # the new class on frame 0
    assert dock.session.present[0].tolist() == [False, True, True]
    for _ in range(3):  # its tag, the class, the colour: one undo each
        qtbot.keyClick(strips, Qt.Key_Z, Qt.ControlModifier)
    assert dock.class_combo.count() == 2 and "square" not in dock.legend.text()
    assert strips.grab().toImage().pixelColor(10, 30).name() == class_color(2)
    qtbot.waitUntil(lambda: categories() == [{"id": 1, "name": "disc"}, {"id": 2, "name": "star"}], timeout=5000)
    assert _saved(project) == {0: [2]}  # the first tag stays


def test_a_read_only_project_folder_is_said_in_one_line_and_the_tags_are_kept(dock, qtbot, project):
    from conftest import read_only

    dock.strips.setFocus()
    with read_only(project):
        qtbot.keyClick(dock.strips, Qt.Key_1)
        dock.save()
        message = dock.status.text()
        assert message.startswith(f"{project / 'tags.json'}: cannot save the tags (") and "\n" not in message
        assert _saved(project) == {} and not list(project.glob(".*tmp"))  # the file as it was, no temp file
    dock.save()  # the next save (a change, hiding, closing) writes it once it can
    assert _saved(project) == {0: [1]}


def test_a_new_project_can_copy_its_frames_and_a_copy_can_be_stopped(make_napari_viewer, qtbot, tmp_path, real_clip):
    from napari_vis_ws._widgets.tags import TagsWidget

    dock = TagsWidget(make_napari_viewer())
    dock.videos_edit.setText(str(real_clip))
    dock.new_classes_edit.setText("person, bicycle")
    dock.extract_check.setChecked(True)
    dock.new_folder_edit.setText(str(tmp_path / "stopped"))
    dock.create_button.click()  # all 250 frames: stopped once the copy is under way
    assert dock.create_button.text() == "Stop copying"
    qtbot.waitUntil(lambda: dock.status.text().startswith("copying the frames"), timeout=30_000)
    dock.create_button.click()
    qtbot.waitUntil(lambda: dock._creating is None, timeout=30_000)
    assert dock.create_button.text() == "Create project" and dock.session is None
    assert not (tmp_path / "stopped/tags.json").exists()
    assert not list((tmp_path / "stopped/JPEGImages").iterdir())  # no half-copied video left

    dock.new_frames_edit.setText("100:104")
    dock.new_folder_edit.setText(str(tmp_path / "copied"))
    dock.create_button.click()
    qtbot.waitUntil(lambda: dock.session is not None, timeout=30_000)
    tags = json.loads((tmp_path / "copied/tags.json").read_text())
    assert "source" not in tags["videos"][0] and tags["videos"][0]["length"] == 4
    copied = sorted(p.name for p in (tmp_path / "copied/JPEGImages/bikes").iterdir())
    assert copied == ["00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"]
    assert dock.viewer.layers["frames"].data.shape[0] == 4  # the dock shows the copied frames
