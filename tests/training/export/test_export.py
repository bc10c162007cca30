"""Label volumes ⇄ YouTube-VIS / COCO JSON: exact round trips, atomic files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_volume
from pycocotools.coco import COCO

from training.errors import InputError
from training.export import (
    LabelVolume,
    coco_to_labels,
    decode_segmentation,
    encode_mask,
    labels_to_coco,
    labels_to_ytvis,
    load_labels,
    save_labels,
    write_coco,
    write_ytvis,
    ytvis_to_labels,
)

CATS = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}]


def test_labels_to_ytvis_and_back_gives_identical_arrays(tmp_path):
    vol = make_volume()
    write_ytvis(tmp_path / "gt.json", [vol], CATS)
    data = json.loads((tmp_path / "gt.json").read_text())
    back = ytvis_to_labels(data["annotations"], data["videos"][0])
    np.testing.assert_array_equal(back.labels, vol.labels)
    assert back.categories == vol.categories


def test_results_form_keeps_scores_and_round_trips(tmp_path):
    vol = make_volume()
    write_ytvis(tmp_path / "res.json", [vol], CATS, form="results")
    res = json.loads((tmp_path / "res.json").read_text())
    assert sorted(r["score"] for r in res) == [0.5, 0.75, 0.9]
    back = ytvis_to_labels(res, vol.video)
    np.testing.assert_array_equal(back.labels, vol.labels)
    assert back.scores == vol.scores


def test_instance_absent_in_a_frame_is_null_in_json():
    ann = {a["instance_id"]: a for a in labels_to_ytvis(make_volume())}
    assert ann[5]["segmentations"][0] is None and ann[5]["areas"][0] is None
    assert ann[5]["areas"][1] == 6 * 8
    assert ann[5]["bboxes"][1] == [20.0, 12.0, 8.0, 6.0]


def test_coco_json_has_one_image_per_frame_and_round_trips(tmp_path):
    vol = make_volume()
    write_coco(tmp_path / "c.json", [vol], CATS)
    coco = COCO(str(tmp_path / "c.json"))
    assert len(coco.getImgIds()) == 3
    m = coco.annToMask(coco.loadAnns(coco.getAnnIds(imgIds=[2], catIds=[7]))[0])
    np.testing.assert_array_equal(m.astype(bool), vol.labels[1] == 5)
    data = json.loads((tmp_path / "c.json").read_text())
    back = coco_to_labels(data["images"], data["annotations"])
    np.testing.assert_array_equal(back.labels, vol.labels)


def test_coco_results_load_with_pycocotools(tmp_path):
    vol = make_volume()
    write_coco(tmp_path / "gt.json", [vol], CATS)
    write_coco(tmp_path / "res.json", [vol], CATS, form="results")
    gt = COCO(str(tmp_path / "gt.json"))
    res = gt.loadRes(str(tmp_path / "res.json"))
    assert len(res.getAnnIds()) == len(gt.getAnnIds())


def test_overlapping_json_masks_are_painted_highest_score_on_top():
    video = {"id": 1, "height": 4, "width": 4, "length": 1, "file_names": ["a.jpg"]}
    full = np.ones((4, 4), bool)
    res = [
        {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [encode_mask(full)]},
        {"video_id": 1, "category_id": 2, "score": 0.2, "segmentations": [encode_mask(full)]},
    ]
    vol = ytvis_to_labels(res, video)
    assert (vol.labels == 1).all() and vol.categories == {1: 1, 2: 2}


def test_polygon_and_uncompressed_rle_decode_to_the_same_mask():
    m = np.zeros((10, 12), bool)
    m[2:6, 3:9] = True
    unc = {"size": [10, 12], "counts": _uncompressed(m)}
    poly = [[3, 2, 9, 2, 9, 6, 3, 6]]
    np.testing.assert_array_equal(decode_segmentation(unc, 10, 12), m)
    assert decode_segmentation(poly, 10, 12).sum() > 0
    assert decode_segmentation(None, 10, 12) is None


def _uncompressed(m: np.ndarray) -> list[int]:
    flat = m.T.reshape(-1).astype(np.uint8)  # column-major, as COCO RLE
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return counts


def test_rle_of_the_wrong_size_is_refused():
    rle = encode_mask(np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="does not match"):
        decode_segmentation(rle, 6, 5)


def test_npz_volume_round_trip_keeps_video_and_scores(tmp_path):
    vol = make_volume()
    save_labels(tmp_path / "v.npz", vol)
    back = load_labels(tmp_path / "v.npz")
    np.testing.assert_array_equal(back.labels, vol.labels)
    assert back.scores == vol.scores and back.video["name"] == "v" and back.video["id"] == 4


def test_loading_a_non_volume_npz_names_the_file(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(InputError, match=r"x\.npz: not a label volume"):
        load_labels(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"y\.npz"):
        load_labels(tmp_path / "y.npz")


def test_failed_write_leaves_the_old_file_untouched(tmp_path):
    out = tmp_path / "gt.json"
    out.write_text("old")
    bad = LabelVolume(np.ones((1, 2, 2), np.int32), {1: 1}, {1: float("nan")})
    with pytest.raises(ValueError):
        write_ytvis(out, [bad], CATS, form="results")  # NaN is not valid JSON
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["gt.json"]


def test_labels_without_a_category_are_refused():
    with pytest.raises(ValueError, match="no category"):
        LabelVolume(np.ones((1, 2, 2), np.int32), {})


def test_coco_images_carry_video_and_frame_index():
    images, anns = labels_to_coco(make_volume())
    assert [im["frame_index"] for im in images] == [0, 1, 2]
    assert {im["video_id"] for im in images} == {4}
    assert {a["instance_id"] for a in anns} == {1, 2, 5}


def test_written_files_get_normal_permissions(tmp_path):
    write_ytvis(tmp_path / "gt.json", [make_volume()], CATS)
    assert (tmp_path / "gt.json").stat().st_mode & 0o777 == 0o644
    (tmp_path / "gt.json").chmod(0o664)
    write_ytvis(tmp_path / "gt.json", [make_volume()], CATS)  # replacing keeps the file's mode
    assert (tmp_path / "gt.json").stat().st_mode & 0o777 == 0o664
