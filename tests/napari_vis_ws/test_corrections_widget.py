"""The Corrections and Export docks, driven as a person would: pick, re-class, merge, split, paint,
propagate, undo, review, autosave, reopen, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import REPO
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from qtpy.QtCore import Qt

from napari_vis_ws._layers import labels_layer
from napari_vis_ws._widgets.corrections import SHORTCUTS, SPLIT_LINE, CorrectionsWidget
from napari_vis_ws._widgets.export import ExportWidget
from training import corrections as corr
from training.export import LabelVolume, load_labels
from training.flow.storage import flow_writer
from training.project import load_project_state

pytestmark = pytest.mark.gui

T, H, W = 6, 64, 80
CATS = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}]


def _volume() -> LabelVolume:
    """A square (1) moving 2 px right per frame, wrongly labelled 4 in frames 1-3 and missing in frame 4;
    a disc (2) in two pieces in frame 2; a low-scored box (3)."""
    labels = np.zeros((T, H, W), np.int32)
    for t in range(T):
        labels[t, 10:22, 10 + 2 * t : 22 + 2 * t] = 4 if t in (1, 2, 3) else (0 if t == 4 else 1)
    labels[:, 40:50, 50:60] = 2
    labels[2, 55:58, 70:73] = 2  # a second piece of 2 in frame 2
    labels[:, 40:50, 10:20] = 3
    return LabelVolume(labels, {1: 3, 2: 3, 3: 7, 4: 3}, {1: 0.9, 2: 0.8, 3: 0.2, 4: 0.6}, {"id": 1, "name": "clip"})


def _add_layer(viewer, volume: LabelVolume | None = None):
    data, kwargs, _ = labels_layer(volume or _volume(), CATS, "pseudo-labels")
    return viewer.add_labels(data.copy(), **kwargs)


@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = _add_layer(viewer)
    widget = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget, viewer, layer


def _row(widget, k: int) -> int:
    ids = [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())]
    return ids.index(str(k))


def _cells(widget, k: int) -> tuple[str, str, str]:
    r = _row(widget, k)
    return widget.table.cellWidget(r, 1).currentText(), widget.table.item(r, 2).text(), widget.table.item(r, 3).text()


def _class_of(layer, k: int) -> str:
    f = layer.features.set_index("index")
    return str(f.loc[k, "class"])


def test_the_table_lists_every_instance_with_class_frames_and_score(dock):
    widget, _, _ = dock
    assert [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())] == ["1", "2", "3", "4"]
    assert _cells(widget, 1) == ("disc", "0, 5", "0.90")
    assert _cells(widget, 3) == ("box", "0-5", "0.20")
    assert _cells(widget, 4) == ("disc", "1-3", "0.60")
    assert widget.progress.text() == "0/6 frames reviewed"


def test_reclassing_a_row_gives_it_the_new_class_and_one_undo_restores_the_old_one(dock, qtbot):
    widget, _, layer = dock
    before = layer.data.copy()
    widget.table.selectRow(_row(widget, 3))
    assert layer.selected_label == 3
    widget.table.cellWidget(_row(widget, 3), 1).setCurrentText("disc")
    qtbot.waitUntil(lambda: 3 not in layer.data, timeout=5000)
    assert _class_of(layer, 5) == "disc" and (layer.data == 5).sum() == (before == 3).sum()
    assert _cells(widget, 5)[0] == "disc" and layer.selected_label == 5
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    widget.refresh()
    assert _cells(widget, 3)[0] == "box"


def test_merging_two_selected_instances_removes_one_id_and_one_undo_brings_it_back(dock):
    widget, _, layer = dock
    before = layer.data.copy()
    widget.select_instances([4, 1])
    widget.buttons["merge"].click()
    assert 4 not in layer.data and (layer.data == 1).sum() == (before == 1).sum() + (before == 4).sum()
    assert widget.message.text() == "merged 4 into 1"
    assert _cells(widget, 1)[1] == "0-3, 5"
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)


def test_splitting_into_pieces_and_along_a_line_each_undo_in_one_step(dock):
    widget, viewer, layer = dock
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 2)
    widget.select_instances([2])
    widget.buttons["split"].click()
    assert (layer.data[2] == 5).sum() == 9 and (layer.data[2] == 2).sum() == 100
    assert widget.message.text() == "split 2 in frame 2: new ids 5"
    assert _cells(widget, 5)[0] == "disc"
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)

    widget.select_instances([3])
    widget.draw_line_button.click()
    viewer.layers[SPLIT_LINE].add_paths(np.array([[2, 35, 13.0], [2, 55, 13.0]]))  # a cut at x = 13
    widget.buttons["split_line"].click()
    assert set(np.unique(layer.data[2][40:50, 10:20])) == {3, 6}  # 5 is still taken by the undone split
    assert (layer.data[2][40:50, 10:13] == 6).all() and (layer.data[2][40:50, 14:20] == 3).all()
    np.testing.assert_array_equal(layer.data[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])
    assert len(viewer.layers[SPLIT_LINE].data) == 0
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)


def test_deleting_in_one_frame_or_everywhere_each_undo_in_one_step(dock):
    widget, viewer, layer = dock
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 3)
    widget.select_instances([3])
    widget.this_frame_only.setChecked(True)
    widget.buttons["delete"].click()
    assert not (layer.data[3] == 3).any() and (layer.data == 3).sum() == 5 * 100
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    widget.this_frame_only.setChecked(False)
    widget.select_instances([3, 2])
    widget.buttons["delete"].click()
    assert not np.isin(layer.data, [2, 3]).any()
    assert [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())] == ["1", "4"]
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)


def test_painting_with_the_brush_adds_a_row_and_undoes_in_one_step(dock, qtbot):
    widget, viewer, layer = dock
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 2)
    layer.brush_size = 5
    layer.paint((2, 30, 40), 9)
    qtbot.waitUntil(lambda: widget.table.rowCount() == 5, timeout=5000)
    assert _cells(widget, 9)[1] == "2" and (layer.data[2] == 9).sum() > 0
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    qtbot.waitUntil(lambda: widget.table.rowCount() == 4, timeout=5000)


def _write_flow(folder, key: str = "clip") -> None:
    with flow_writer(folder, key, T, H, W, {"method": "test"}) as arr:
        arr[:] = 0
        arr[..., 0], arr[..., 2] = 2, -2  # everything moves 2 px right per frame


def test_propagating_forward_fixes_three_frames_along_the_flow_and_one_undo_reverts_them(dock, tmp_path):
    widget, viewer, layer = dock
    _write_flow(tmp_path / "flow")
    before = layer.data.copy()
    widget.flow_edit.setText(str(tmp_path / "flow"))
    viewer.dims.set_current_step(0, 0)
    widget.select_instances([1])
    widget.steps_spin.setValue(3)
    widget.buttons["propagate_forward"].click()
    for t in (1, 2, 3):
        np.testing.assert_array_equal(layer.data[t] == 1, before[t] == 4)
    np.testing.assert_array_equal(layer.data[[0, 4, 5]], before[[0, 4, 5]])
    assert widget.message.text() == "1 forward: frames 1-3: +432/-0 px"
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)

    widget.steps_spin.setValue(5)  # frame 4 has no labels where the square goes: stop there
    widget.buttons["propagate_forward"].click()
    assert widget.message.text() == "1 forward: frames 1-3: +432/-0 px, stopped at 4: overlap 0.00"
    assert not (layer.data[4] == 1).any()
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)

    viewer.dims.set_current_step(0, 5)  # backward from frame 5 stops at once: frame 4 is empty
    widget.buttons["propagate_backward"].click()
    assert widget.message.text() == "1 backward: no frame changed, stopped at 4: overlap 0.00"


def test_propagating_without_flow_says_what_is_missing(dock, tmp_path):
    widget, _, layer = dock
    widget.select_instances([1])
    widget.flow_edit.setText(str(tmp_path))
    widget.buttons["propagate_forward"].click()
    assert "no flow for video 'clip'" in widget.message.text()


def test_shortcuts_are_free_in_napari_and_shift_m_merges_from_the_canvas(dock):
    from napari.utils.key_bindings import coerce_keybinding
    from napari.utils.shortcuts import default_shortcuts

    widget, viewer, layer = dock
    napari_keys = {str(kb) for kbs in default_shortcuts.values() for kb in kbs}
    napari_keys |= {str(k) for k in [*viewer.class_keymap, *type(layer).class_keymap]}
    ours = {str(coerce_keybinding(k)) for k in SHORTCUTS.values()}
    assert len(ours) == len(SHORTCUTS) and not ours & napari_keys
    widget.select_instances([1, 4])
    handler = viewer.window._qt_viewer._key_map_handler
    handler.press_key("Shift+M")
    handler.release_key("Shift+M")
    assert 4 not in layer.data


def test_marking_frames_reviewed_counts_them_and_next_jumps_to_the_most_suspicious_frame(dock):
    widget, viewer, layer = dock
    viewer.dims.set_current_step(0, 0)
    widget.buttons["next_in_queue"].click()
    first = viewer.dims.current_step[0]
    assert first == widget.queue()[0] == 4  # frame 4 lost an instance
    widget.buttons["toggle_reviewed"].click()
    assert widget.progress.text() == "1/6 frames reviewed" and 4 not in widget.queue()
    assert layer.metadata["vis_ws"]["reviewed"] == [4]
    widget.buttons["next_in_queue"].click()
    assert viewer.dims.current_step[0] == widget.queue()[0] != 4
    widget.buttons["toggle_reviewed"].click()
    widget.buttons["toggle_reviewed"].click()  # pressed twice: unmarked again
    assert widget.progress.text() == "1/6 frames reviewed"


def test_the_review_queue_starts_with_the_frame_maskconsist_disagrees_with_and_says_why(dock):
    widget, _, layer = dock
    assert widget.queue()[0] == 4 and widget.queue_list.item(0).text() == "frame 4: instances 2 vs 3 around"
    disagreement = [0.0] * T
    disagreement[1] = 0.9  # as loading predictions beside the pseudo-labels stores it
    layer.metadata = {**layer.metadata, "vis_ws": {**layer.metadata["vis_ws"], "disagreement": disagreement}}
    assert widget.queue()[:2] == [1, 4]  # the list follows the metadata at once
    assert widget.queue_list.item(0).text() == "frame 1: disagreement 0.90"
    assert widget.queue_list.item(0).data(Qt.UserRole) == 1
    layer.metadata["vis_ws"]["disagreement"] = [0.9] * (T + 1)  # made for another version of the video: ignored
    assert widget.queue()[0] == 4


def _wait_saved(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.save_status.text().startswith("saved") and not widget._dirty, timeout=10000)


def test_autosave_writes_the_project_and_a_fresh_viewer_reopens_labels_and_review(
    dock, qtbot, tmp_path, make_napari_viewer
):
    widget, viewer, layer = dock
    widget.autosave_timer.setInterval(200)
    widget.set_project(tmp_path)
    qtbot.wait(500)  # autosave ticks: choosing a project is not an edit, nothing is written
    assert not (tmp_path / "corrections").exists() and widget.save_status.text() == "no edits to save yet"
    widget.select_instances([1, 4])
    widget.buttons["merge"].click()
    _wait_saved(qtbot, widget)
    assert (tmp_path / "corrections" / "clip" / "pseudo.npz").is_file()  # what the corrections started from
    viewer.dims.set_current_step(0, 2)
    widget.buttons["toggle_reviewed"].click()
    qtbot.waitUntil(lambda: 4 not in load_labels(tmp_path / "corrections" / "clip" / "labels.npz").labels, timeout=5000)
    _wait_saved(qtbot, widget)
    layer.undo()  # an undo is a change too
    qtbot.waitUntil(lambda: 4 in load_labels(tmp_path / "corrections" / "clip" / "labels.npz").labels, timeout=5000)
    layer.redo()
    qtbot.waitUntil(lambda: 4 not in load_labels(tmp_path / "corrections" / "clip" / "labels.npz").labels, timeout=5000)
    _wait_saved(qtbot, widget)
    assert widget.save_status.text().endswith(" s ago")

    fresh = make_napari_viewer()
    reopened = CorrectionsWidget(fresh)
    reopened.set_project(tmp_path)
    np.testing.assert_array_equal(fresh.layers["pseudo-labels"].data, layer.data)
    assert reopened.reviewed == {2} and reopened.progress.text() == "1/6 frames reviewed"
    assert _class_of(fresh.layers["pseudo-labels"], 3) == "box"


def test_edits_saved_by_a_killed_process_are_restored_into_the_layer(dock, tmp_path):
    widget, _, layer = dock
    code = (
        "import os, sys, numpy as np\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from training.export import LabelVolume\n"
        "from training.project import save_corrections\n"
        f"labels = np.zeros(({T}, {H}, {W}), np.int32); labels[:, 5:9, 5:9] = 8\n"
        f"save_corrections({str(tmp_path)!r}, 'clip', LabelVolume(labels, {{8: 7}}, {{8: 1.0}}), [0, 5], "
        f"{CATS!r}, edited=1.0)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    widget.set_project(tmp_path)
    assert set(np.unique(layer.data)) == {0, 8} and (layer.data == 8).sum() == T * 16
    assert widget.reviewed == {0, 5} and _cells(widget, 8)[0] == "box"
    assert widget.message.text() == "restored the corrections of clip (2 frames reviewed)"


def _edit_delete_3_and_review_frame_2(widget, viewer) -> None:
    widget.select_instances([3])
    widget.buttons["delete"].click()
    viewer.dims.set_current_step(0, 2)
    widget.buttons["toggle_reviewed"].click()


def test_closing_the_dock_saves_the_edits_of_the_last_seconds_at_once(dock, qtbot, tmp_path):
    widget, viewer, _ = dock
    widget.autosave_timer.stop()  # no autosave tick: only the close can save the edits
    widget.set_project(tmp_path)
    _edit_delete_3_and_review_frame_2(widget, viewer)
    viewer.window.remove_dock_widget(widget)  # what the dock's close button does
    state = load_project_state(tmp_path, "clip")  # written before remove_dock_widget returned
    assert not (state.volume.labels == 3).any() and state.reviewed == {2}


@pytest.mark.parametrize("close", ["viewer.close()", "the window's close button"])
def test_closing_the_viewer_saves_the_edits_of_the_last_seconds_and_a_new_viewer_has_them(
    make_napari_viewer, qtbot, tmp_path, close
):
    viewer = make_napari_viewer()
    layer = _add_layer(viewer)
    widget = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.autosave_timer.stop()
    widget.set_project(tmp_path)
    qtbot.waitUntil(lambda: widget.window_close.window() is not None)  # it watches its window once the loop ran
    _edit_delete_3_and_review_frame_2(widget, viewer)
    layer.brush_size = 5
    layer.paint((4, 30, 40), 9)  # a brush dab, the table not updated yet
    edited = layer.data.copy()
    if close == "viewer.close()":
        viewer.close()  # removes the layers first, then closes the window
    else:
        viewer.window._qt_window.close()  # the close button, Ctrl+W: the layers stay until the window goes
    fresh = make_napari_viewer()
    CorrectionsWidget(fresh).set_project(tmp_path)
    np.testing.assert_array_equal(fresh.layers["pseudo-labels"].data, edited)
    assert load_project_state(tmp_path, "clip").reviewed == {2}


def test_a_save_running_in_a_worker_never_lands_after_a_newer_one(dock, qtbot, tmp_path, monkeypatch):
    """The worker's write of an older snapshot is held back; switching layers saves a newer one meanwhile."""
    import training.project

    widget, viewer, layer = dock
    widget.autosave_timer.stop()
    widget.set_project(tmp_path)
    real, started, release = training.project.save_corrections, threading.Event(), threading.Event()

    def slow_in_a_worker(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            started.set()
            release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(training.project, "save_corrections", slow_in_a_worker)
    widget.select_instances([2])
    widget.buttons["delete"].click()
    widget.save_now()  # snapshot 1 (2 deleted), written by a worker that waits
    assert started.wait(10)
    _edit_delete_3_and_review_frame_2(widget, viewer)  # snapshot 2 will hold this too
    threading.Timer(0.5, release.set).start()  # the worker's write ends half a second from now
    widget.set_layer(viewer.add_labels(np.zeros((T, H, W), np.int32), name="other"))  # saves snapshot 2
    qtbot.waitUntil(lambda: not widget._saving, timeout=10000)
    state = load_project_state(tmp_path, "clip")
    assert not np.isin(state.volume.labels, [2, 3]).any() and state.reviewed == {2}
    np.testing.assert_array_equal(state.volume.labels, layer.data)

    monkeypatch.setattr(training.project, "save_corrections", real)
    widget.set_layer(layer)
    old = widget._snapshot()  # taken before the next edit ...
    widget.select_instances([1])
    widget.buttons["delete"].click()
    widget.flush()
    assert widget._write(old) is None  # ... so never written over it
    assert not (load_project_state(tmp_path, "clip").volume.labels == 1).any()


def test_opening_a_project_removes_only_temp_files_of_saves_killed_long_ago(dock, qtbot, tmp_path):
    widget, _, _ = dock
    folder = tmp_path / "corrections" / "clip"
    folder.mkdir(parents=True)
    hour_ago = time.time() - 3600
    names = {
        ".labels.npz.k2x_9abc.tmp": True,  # a killed save's: removed
        ".state.json.u7q3mz0w.tmp": True,
        ".notes.txt.a1b2c3d4.tmp": False,  # not a file the project writes
        "labels.npz.tmp": False,
    }
    for name in names:
        (folder / name).write_bytes(b"half a file")
        os.utime(folder / name, (hour_ago, hour_ago))
    (folder / ".pseudo.npz.f00b4r12.tmp").write_bytes(b"being written")  # now, by another process: kept
    widget.set_project(tmp_path)
    assert {p.name for p in folder.iterdir() if p.name.endswith("tmp")} == {
        ".notes.txt.a1b2c3d4.tmp",
        "labels.npz.tmp",
        ".pseudo.npz.f00b4r12.tmp",
    }
    assert not (folder / "labels.npz").exists()  # and wrote nothing: no edit yet


def test_an_edit_recounts_only_the_frames_it_touched_and_moving_frames_recounts_none(dock, qtbot, monkeypatch):
    widget, viewer, layer = dock
    counted: list[int] = []
    real = corr.instance_areas

    def counting(labels):
        counted.append(len(labels))
        return real(labels)

    monkeypatch.setattr(corr, "instance_areas", counting)
    viewer.dims.set_current_step(0, 3)
    widget.select_instances([3])
    widget.this_frame_only.setChecked(True)
    widget.buttons["delete"].click()
    assert counted == [1] and "3" not in _cells(widget, 3)[1]  # frame 3 only, and the table knows
    counted.clear()
    for t in (0, 5, 2):
        viewer.dims.set_current_step(0, t)  # napari's set_data event, as after an undo
        qtbot.wait(200)
    assert counted == []
    layer.undo()  # undoes frame 3, not shown: the dock looks at the frames edits touched
    qtbot.waitUntil(lambda: _cells(widget, 3)[1] == "0-5", timeout=5000)
    assert counted == [1]


def test_export_writes_ytvis_and_coco_whose_masks_match_the_layer(dock, qtbot, tmp_path):
    _, viewer, layer = dock
    ex = ExportWidget(viewer)
    viewer.window.add_dock_widget(ex)
    assert ex.checked_layers() == ["pseudo-labels"]
    data = np.asarray(layer.data)
    n_masks = sum(int(np.isin(k, data[t])) for t in range(T) for k in (1, 2, 3, 4))

    ex.out_edit.setText(str(tmp_path / "gt.json"))
    ex.export_button.click()
    qtbot.waitUntil(ex.export_button.isEnabled, timeout=20000)
    assert ex.summary.text() == f"wrote 1 video, 4 instances, {n_masks} masks to {tmp_path / 'gt.json'}"
    ytvis = json.loads((tmp_path / "gt.json").read_text())
    for ann in ytvis["annotations"]:
        for t, seg in enumerate(ann["segmentations"]):
            mask = np.zeros((H, W), bool) if seg is None else mask_utils.decode(seg).astype(bool)
            np.testing.assert_array_equal(mask, data[t] == ann["instance_id"])

    ex.format_combo.setCurrentText("COCO JSON (RLE)")
    ex.out_edit.setText(str(tmp_path / "gt.coco.json"))
    ex.export_button.click()
    qtbot.waitUntil(ex.export_button.isEnabled, timeout=20000)
    coco = COCO(str(tmp_path / "gt.coco.json"))
    assert len(coco.getAnnIds()) == n_masks and len(coco.getImgIds()) == T
    for ann in coco.loadAnns(coco.getAnnIds()):
        t = coco.imgs[ann["image_id"]]["frame_index"]
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), data[t] == ann["instance_id"])
    assert {coco.cats[a["category_id"]]["name"] for a in coco.loadAnns(coco.getAnnIds())} == {"disc", "box"}


def test_training_targets_take_reviewed_frames_from_the_corrections(dock, qtbot, tmp_path):
    widget, viewer, layer = dock
    before = layer.data.copy()
    widget.set_project(tmp_path / "proj")
    widget.select_instances([3])
    widget.buttons["delete"].click()  # deleted everywhere, but only frame 1 gets reviewed
    viewer.dims.set_current_step(0, 1)
    widget.buttons["toggle_reviewed"].click()
    widget.save_now()
    _wait_saved(qtbot, widget)
    ex = ExportWidget(viewer)
    assert ex.project_edit.text() == str(tmp_path / "proj")  # the project the Corrections dock saves to
    ex.targets_button.click()
    qtbot.waitUntil(ex.targets_button.isEnabled, timeout=20000)
    target = load_labels(tmp_path / "proj" / "targets" / "clip" / "pseudo.npz")
    assert not (target.labels[1] == 3).any()
    np.testing.assert_array_equal(target.labels[[0, 2, 3, 4, 5]], before[[0, 2, 3, 4, 5]])
    assert ex.targets_summary.text().startswith("wrote 1 video, 4 instances, ")
    assert "(1/6 frames reviewed)" in ex.targets_summary.text()


def test_both_docks_open_from_the_plugins_menu_and_follow_new_pseudo_labels(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((2, 8, 8), np.int32), name="ground truth")
    _, corrections = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Corrections")
    _, export = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Export")
    assert corrections.layer.name == "ground truth" and export.checked_layers() == ["ground truth"]
    layer = _add_layer(viewer)
    assert corrections.layer.name == layer.name == "pseudo-labels"  # the dock sees layers through a proxy
    assert corrections.table.rowCount() == 4
    assert export.checked_layers() == ["pseudo-labels"]  # the default follows: the labels being corrected
    before = layer.data.copy()
    corrections.select_instances([1, 4])
    corrections.buttons["merge"].click()
    assert 4 not in layer.data
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    corrections.set_project(tmp_path)
    _wait_saved(qtbot, corrections)
    viewer.add_image(np.zeros((6, 64, 80)), name="frames")  # another layer does not unbind the dock
    assert corrections.project_edit.text() == str(tmp_path) and corrections.layer.name == "pseudo-labels"
