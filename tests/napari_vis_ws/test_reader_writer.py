"""The reader and writers, through napari's own plugin machinery."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from conftest import make_volume
from pycocotools.coco import COCO

from napari_vis_ws._reader import napari_get_reader
from training.export import save_labels

pytestmark = pytest.mark.gui


def test_reader_declines_what_it_cannot_open(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader([str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]) is None


def test_a_path_too_long_for_the_file_system_is_refused_in_one_line(tmp_path):
    from training.errors import InputError

    for name in ("v" * 300 + ".mp4", "d" * 300 + ".json"):
        reader = napari_get_reader(str(tmp_path / name))
        assert reader is not None
        with pytest.raises(InputError, match="path too long") as info:
            reader(str(tmp_path / name))
        assert "\n" not in str(info.value) and name[:20] in str(info.value)
    assert napari_get_reader(str(tmp_path / ("f" * 300))) is None  # nothing this plugin would open


def test_video_opens_as_a_lazy_frames_layer(make_napari_viewer, real_clip):
    viewer = make_napari_viewer()
    viewer.open(str(real_clip), plugin="napari-vis-ws")
    layer = viewer.layers["frames"]
    assert layer.rgb and layer.data.shape == (250, 272, 640, 3)
    assert type(layer.data).__module__.startswith("dask")
    assert tuple(layer.axis_labels) == ("t", "y", "x")
    viewer.dims.set_current_step(0, 100)
    from training.data.video import open_frames

    np.testing.assert_array_equal(np.asarray(layer.data[100]), open_frames(real_clip).read(100))


def test_tiff_stack_opens_with_a_time_axis(make_napari_viewer, tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.arange(120, dtype=np.uint8).reshape(4, 5, 6), photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "s.tif"), plugin="napari-vis-ws")
    assert viewer.layers["frames"].data.shape == (4, 5, 6, 3)


def test_dataset_json_opens_frames_and_ground_truth(make_napari_viewer, tiny_dataset):
    viewer = make_napari_viewer()
    viewer.open(str(tiny_dataset), plugin="napari-vis-ws")
    assert [ly.name for ly in viewer.layers] == ["frames", "ground truth"]
    gt = viewer.layers["ground truth"]
    np.testing.assert_array_equal(gt.data, make_volume(t=3, seed=1).labels)
    feats = gt.features.set_index("index")
    assert feats.loc[5, "class"] == "box" and feats.loc[1, "class"] == "disc"


def test_dataset_folder_opens_like_its_json(make_napari_viewer, tiny_dataset):
    viewer = make_napari_viewer()
    viewer.open(str(tiny_dataset.parent), plugin="napari-vis-ws")
    assert viewer.layers["frames"].data.shape == (3, 20, 30, 3)


def test_bad_dataset_is_reported_with_the_file_name(make_napari_viewer, tmp_path):
    bad = tmp_path / "gt.json"
    bad.write_text('{"videos": 3}')
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="gt.json: missing 'videos' list"):
        viewer.open(str(bad), plugin="napari-vis-ws")
    assert len(viewer.layers) == 0


def test_npz_volume_opens_as_labels(make_napari_viewer, tmp_path):
    save_labels(tmp_path / "pseudo.npz", make_volume())
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "pseudo.npz"), plugin="napari-vis-ws")
    np.testing.assert_array_equal(viewer.layers["pseudo"].data, make_volume().labels)


def test_saving_labels_writes_ytvis_and_coco_json(make_napari_viewer, tiny_dataset, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(tiny_dataset), plugin="napari-vis-ws")
    layer = viewer.layers["ground truth"]
    layer.data[2, 0:3, 0:3] = 5  # a user's edit
    layer.save(str(tmp_path / "edited.json"), plugin="napari-vis-ws")
    data = json.loads((tmp_path / "edited.json").read_text())
    assert data["videos"][0]["file_names"][0] == "v1/00000.jpg"
    assert {a["instance_id"]: a["category_id"] for a in data["annotations"]} == {1: 3, 2: 3, 5: 7}
    coco_path = tmp_path / "edited.coco.json"
    layer.save(str(coco_path), plugin="napari-vis-ws")
    coco = COCO(str(coco_path))
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[3], catIds=[7]))[0]
    assert coco.annToMask(ann)[0:3, 0:3].all()


def _open_error(viewer, path) -> str:
    """The message napari shows when this plugin fails to open ``path``; no layer is added."""
    with pytest.raises(Exception) as info:
        viewer.open(str(path), plugin="napari-vis-ws")
    assert len(viewer.layers) == 0
    return str(info.value)


def test_an_empty_folder_says_it_has_no_image_frames(make_napari_viewer, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    message = _open_error(make_napari_viewer(), folder)
    assert f"{folder}: no image frames (.jpg/.jpeg/.png/...) in this folder" in message
    assert "refused" not in message


def test_a_folder_of_other_files_says_what_it_expected(make_napari_viewer, tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / ".hidden.jpg").write_bytes(b"")  # not a frame (list_frames skips it)
    message = _open_error(make_napari_viewer(), tmp_path)
    assert f"{tmp_path}: no image frames" in message and "expected a folder of video frames" in message


def test_a_folder_whose_frames_are_in_subfolders_names_one_to_open(make_napari_viewer, tiny_dataset):
    message = _open_error(make_napari_viewer(), tiny_dataset.parent / "JPEGImages")
    assert "its subfolder 'v1' has some: open that one" in message


def test_frames_without_their_dataset_json_say_the_json_is_missing(make_napari_viewer, tiny_dataset):
    tiny_dataset.unlink()
    message = _open_error(make_napari_viewer(), tiny_dataset.parent)
    assert f"{tiny_dataset.parent}: a JPEGImages/ folder but no dataset JSON beside it" in message


def test_a_results_json_opened_as_a_dataset_says_it_is_results(make_napari_viewer, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [None]}]))
    message = _open_error(make_napari_viewer(), path)
    assert f"{path}: a results list (instances with a 'score'), not a dataset" in message
