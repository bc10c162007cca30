"""Stored stage outputs → layer data with the fixed names, on a project made by `vis-ws pseudo-labels`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_project

from napari_vis_ws._stage_layers import (
    cam_layers,
    flow_layers,
    irn_layers,
    project_layers,
    pseudo_label_layers,
)
from training.atomic import write_npz
from training.cam.store import FrameCAMs, prepare_video, read_frame_cams, write_frame_cams
from training.export import load_labels
from training.flow import flow_to_color, read_video_flow
from training.flow.storage import flow_writer
from training.link import link_instances

T, H, W = 4, 64, 80
KEY = "synth_0000"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One video of 4 frames of 64x80 through every stage of `vis-ws pseudo-labels` (1-epoch models)."""
    return tiny_project(tmp_path_factory.mktemp("stage-layers"), videos=1, frames=T, height=H, width=W)


def _categories(project: Path) -> list[dict]:
    return json.loads((project / "data/tags.json").read_text())["categories"]


def test_a_finished_project_gives_every_layer_at_frame_size(project):
    cats = _categories(project)
    tagged = sorted(
        {c for t in json.loads((project / "data/tags.json").read_text())["frame_tags"] for c in t["category_ids"]}
    )
    names = [c["name"] for c in cats if c["id"] in tagged]
    layers = project_layers(project / "run", KEY, cats, (T, H, W))
    assert [kw["name"] for _, kw, _ in layers] == [
        "flow",
        "flow vectors",
        *[f"cam [{n}]" for n in names],
        *[f"f-cam [{n}]" for n in names],
        "boundary",
        "pseudo-labels",
        "displacement",
        "centroids",
    ]
    by_name = {kw["name"]: (data, kind) for data, kw, kind in layers}
    for name, (data, kind) in by_name.items():
        if kind == "image":
            frame = np.asarray(data[2])
            assert data.shape[:3] == (T, H, W) and frame.shape[:2] == (H, W), name
    assert by_name["flow"][0].shape == (T, H, W, 3) and by_name["flow"][0].dtype == np.uint8
    assert by_name[f"cam [{names[0]}]"][0].dtype == np.float32
    assert by_name["pseudo-labels"][0].shape == (T, H, W) and by_name["pseudo-labels"][0].dtype == np.int32
    for name in ("flow vectors", "displacement"):
        vec = by_name[name][0]
        assert vec.ndim == 3 and vec.shape[1:] == (2, 3) and set(np.unique(vec[:, 0, 0])) == set(range(T))
        assert (vec[:, 1, 0] == 0).all()  # arrows stay in their frame
    points = by_name["centroids"][0]
    assert points.shape[1] == 3 and ((points[:, 0] >= 0) & (points[:, 0] < T)).all()


def test_cam_layers_show_the_stored_maps_of_their_class(project):
    cats = _categories(project)
    layers = cam_layers(project / "run/cams", KEY, cats, (T, H, W))
    maps = read_frame_cams(project / "run/cams", KEY, 1)
    assert len(maps.keys) == 2  # the sample's video has two classes
    names = {c["id"]: c["name"] for c in cats}
    for row, key in enumerate(maps.keys):
        cam = next(d for d, kw, _ in layers if kw["name"] == f"cam [{names[int(key)]}]")
        fcam = next(d for d, kw, _ in layers if kw["name"] == f"f-cam [{names[int(key)]}]")
        np.testing.assert_array_equal(np.asarray(cam[1]), maps.high_res[row])
        np.testing.assert_array_equal(np.asarray(fcam[1]), maps.fcams_high_res[row])


def test_pseudo_labels_are_linked_with_class_and_score_per_id(project):
    cats = _categories(project)
    ((data, kwargs, kind),) = pseudo_label_layers(project / "run/pseudo", KEY, cats, project / "run/flow")
    raw = load_labels(project / "run/pseudo" / KEY / "pseudo.npz")
    linked = link_instances(raw, read_video_flow(project / "run/flow", KEY))
    assert kind == "labels"
    np.testing.assert_array_equal(data, linked.labels)
    np.testing.assert_array_equal(data > 0, raw.labels > 0)
    feats = kwargs["features"]
    ids = [int(i) for i in np.unique(data) if i]
    assert ids and len(ids) <= len(raw.categories)
    assert feats["index"] == [0, *ids]
    names = {c["id"]: c["name"] for c in cats}
    assert feats["class"][1:] == [names[linked.categories[i]] for i in ids]
    assert feats["score"][1:] == pytest.approx([linked.scores[i] for i in ids])
    assert feats["frames"][1:] == [int((data == i).any(axis=(1, 2)).sum()) for i in ids]


def test_flow_layer_is_the_colour_wheel_of_a_known_flow(tmp_path):
    forward = np.zeros((H, W, 2), np.float32)
    forward[..., 0] = 2.0  # everything moves 2 px right
    forward[:, : W // 2, 1] = -1.0  # the left half also 1 px up
    with flow_writer(tmp_path, "v", 3, H, W, {"method": "dis"}) as array:
        array[:, ..., 0:2] = forward
        array[:, ..., 2:4] = -forward
    image, vectors = flow_layers(tmp_path, "v")
    assert image[1]["name"] == "flow" and image[1]["rgb"] and image[0].shape == (3, H, W, 3)
    speed = float(np.hypot(2, 1))
    for t in range(3):  # the last frame shows the negated backward flow: the same motion
        np.testing.assert_array_equal(np.asarray(image[0][t]), flow_to_color(forward, max_magnitude=speed))
    right = np.asarray(image[0][0])[H // 2, W - 1]
    assert right[0] > 200 and right[1] < 100 and right[2] < 100  # moving right: red on the wheel
    vec = vectors[0]
    assert vectors[1]["name"] == "flow vectors" and len(vec) == 3 * (H // 16) * (W // 16)
    assert vec[0].tolist() == [[0, 8, 8], [0, -1, 2]]
    assert np.allclose(vec[vec[:, 0, 2] > W // 2, 1], [0, 0, 2])


def test_cam_layers_are_zero_where_a_class_is_untagged_or_not_computed_yet(tmp_path):
    cats = [{"id": 3, "name": "dog"}, {"id": 5, "name": "cat"}]
    prepare_video(tmp_path, "v", {"frame_keys": [[3], [3, 5], [5]], "fcam": None})
    rng = np.random.default_rng(0)
    dog, cat = rng.random((2, H, W)).astype(np.float16)
    write_frame_cams(tmp_path, "v", 0, FrameCAMs(np.array([3]), dog[None, ::4, ::4], dog[None]))
    write_frame_cams(
        tmp_path, "v", 1, FrameCAMs(np.array([3, 5]), np.stack([dog, cat])[:, ::4, ::4], np.stack([dog, cat]))
    )
    layers = cam_layers(tmp_path, "v", cats, (3, H, W))
    assert [kw["name"] for _, kw, _ in layers] == ["cam [dog]", "cam [cat]"]  # no f-CAMs were made
    dogs, cats_ = (np.asarray(d) for d, _, _ in layers)
    np.testing.assert_array_equal(dogs[:2], np.stack([dog, dog]).astype(np.float32))
    assert not dogs[2].any() and not cats_[0].any() and not cats_[2].any()  # untagged / frame 2 not written
    np.testing.assert_array_equal(cats_[1], cat.astype(np.float32))


def test_irn_maps_are_drawn_at_image_pixels(tmp_path):
    gh, gw = (H - 1) // 4 + 1, (W - 1) // 4 + 1
    rng = np.random.default_rng(1)
    boundary = rng.random((T, gh, gw)).astype(np.float16)
    displacement = rng.normal(size=(T, 2, gh, gw)).astype(np.float16)
    centroids = np.array([[0, 10.0, 20.0], [3, 40.0, 60.0]], np.float32)
    write_npz(tmp_path / "v" / "irn.npz", boundary=boundary, displacement=displacement, centroids=centroids)
    (bound, bkw, _), (vec, vkw, _), (pts, pkw, _) = irn_layers(tmp_path, "v", (T, H, W))
    assert (bkw["name"], vkw["name"], pkw["name"]) == ("boundary", "displacement", "centroids")
    frame = np.asarray(bound[2])
    assert frame.shape == (H, W)
    np.testing.assert_allclose(
        frame[::4, ::4], boundary[2].astype(np.float32), atol=1e-6
    )  # grid (i, j) = pixel (4i, 4j)
    np.testing.assert_allclose(frame[2, 0], (boundary[2, 0, 0] + boundary[2, 1, 0]) / 2, atol=1e-3)
    first = vec[0]
    assert first[0].tolist() == [0, 4, 4]  # grid (1, 1), the first of every second grid pixel
    np.testing.assert_allclose(first[1, 1:], 4 * displacement[0, :, 1, 1].astype(np.float32))
    np.testing.assert_array_equal(pts, centroids)


def test_broken_irn_maps_or_matches_are_refused_in_one_line_naming_the_file(tmp_path):
    # The readers live beside their writers (training.irn.pseudo_labels, training.maskconsist.targets): a file
    # that is not what they write is an InputError, which the dock shows, not an IndexError in a worker.
    import json

    from napari_vis_ws._prediction_layers import match_layers
    from training.errors import InputError

    gh, gw = (H - 1) // 4 + 1, (W - 1) // 4 + 1
    write_npz(tmp_path / "v" / "irn.npz", boundary=np.zeros((T, gh, gw)), displacement=np.zeros((T, 2, gh + 1, gw)),
              centroids=np.zeros((0, 3)))  # fmt: skip
    with pytest.raises(InputError, match=r"irn\.npz: IRN maps of mismatched shapes"):
        irn_layers(tmp_path, "v", (T, H, W))
    (tmp_path / "v" / "irn.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"irn\.npz: not IRN maps"):
        irn_layers(tmp_path, "v", (T, H, W))
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"video": "v", "pairs": [{"t": 0, "t2": 1, "matches": [[0, 0, 0.9]]}]}))
    with pytest.raises(InputError, match=r"m\.json: malformed matches"):
        match_layers(path, "v")


def test_a_project_without_results_gives_no_layers(tmp_path):
    assert project_layers(tmp_path, "v", [], (T, H, W)) == []


def test_predictions_of_a_video_become_the_predictions_layer(tmp_path):
    from conftest import make_volume

    from napari_vis_ws._prediction_layers import prediction_layers
    from napari_vis_ws._stage_layers import project_layers
    from training.export import write_ytvis

    vol = make_volume()
    other = make_volume(seed=3)
    other.video.update(id=9)
    cats = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}]
    write_ytvis(tmp_path / "results.json", [vol, other], cats, form="results")
    ((data, kwargs, kind),) = prediction_layers(tmp_path / "results.json", vol.video, cats)
    assert kind == "labels" and kwargs["name"] == "predictions"
    np.testing.assert_array_equal(data, vol.labels)
    assert dict(zip(kwargs["features"]["index"], kwargs["features"]["score"], strict=True))[2] == 0.5
    names = [kw["name"] for _, kw, _ in project_layers(tmp_path, "v", cats, vol.labels.shape, video=vol.video)]
    assert names == ["predictions"]
    assert prediction_layers(tmp_path / "none.json", vol.video, cats) == []


@pytest.mark.gui
def test_maskconsist_matches_are_drawn_as_lines_coloured_by_iou(make_napari_viewer, tmp_path):
    from napari_vis_ws._prediction_layers import match_layers

    box = {"boxes": [[10.0, 20.0, 8.0, 6.0], [40.0, 5.0, 4.0, 4.0]], "classes": [1, 2], "scores": [0.9, 0.4]}
    moved = {"boxes": [[14.0, 20.0, 8.0, 6.0], [41.0, 5.0, 4.0, 4.0]], "classes": [1, 2], "scores": [0.8, 0.3]}
    pair = {"t": 0, "t2": 2, "matches": [[0, 0, 0.9], [1, 1, 0.55]], "transferred": [0], "warped_t": box,
            "expanded_t2": moved, "expanded_t": box}  # fmt: skip
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"video": "v", "pairs": [pair]}))
    viewer = make_napari_viewer()
    for data, kwargs, kind in match_layers(path, "v"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    lines = viewer.layers["matches"]
    assert len(lines.data) == 2 and lines.data[0][:, 0].tolist() == [2, 2]  # drawn in frame t+δ
    np.testing.assert_allclose(lines.data[0][:, 1:], [[23, 14], [23, 18]])  # warped centre → matched centre
    assert lines.edge_width[0] > lines.edge_width[1]  # the transferred match is thicker
    assert not np.allclose(lines.edge_color[0], lines.edge_color[1])  # coloured by IoU
    assert not viewer.layers["warped masks"].visible and len(viewer.layers["warped masks"].data) == 2
    assert match_layers(tmp_path / "none.json", "v") == []


def test_pseudo_labels_shown_with_predictions_carry_their_disagreement_per_frame(project, tmp_path):
    from napari_vis_ws._stage_layers import project_layers
    from training.export import LabelVolume, write_ytvis

    cats = _categories(project)
    shutil.copytree(project / "run/pseudo", tmp_path / "pseudo")
    video = json.loads((project / "data/tags.json").read_text())["videos"][0]
    raw = load_labels(tmp_path / "pseudo" / KEY / "pseudo.npz")
    assert raw.labels[1].any()
    predicted = raw.labels.copy()
    predicted[1] = 0  # the detector agrees everywhere but in frame 1, where it sees nothing
    sure = {k: 0.9 for k in raw.categories}
    write_ytvis(tmp_path / "results.json", [LabelVolume(predicted, raw.categories, sure, video)], cats, "results")
    layers = project_layers(tmp_path, KEY, cats, (T, H, W), ("pseudo-labels",), video=video)
    by_name = {kw["name"]: kw for _, kw, _ in layers}
    assert set(by_name) == {"boundary", "pseudo-labels", "displacement", "centroids", "predictions"}
    assert by_name["pseudo-labels"]["metadata"]["vis_ws"]["disagreement"] == [0.0, 1.0, 0.0, 0.0]
    alone = project_layers(tmp_path, KEY, cats, (T, H, W), ("pseudo-labels",))  # no predictions asked for
    assert "disagreement" not in next(kw for _, kw, _ in alone if kw["name"] == "pseudo-labels")["metadata"]["vis_ws"]


def test_matches_are_described_and_an_empty_result_says_why(tmp_path):
    import json

    from napari_vis_ws._prediction_layers import describe_matches

    box = {"boxes": [[10.0, 20.0, 8.0, 6.0]], "classes": [1], "scores": [0.9]}
    empty = {"boxes": [], "classes": [], "scores": []}
    pair = {"t": 0, "t2": 1, "n_pred_t": 1, "n_pred_t2": 1, "matches": [], "transferred": [],
            "warped_t": box, "expanded_t2": box}  # fmt: skip
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"video": "v", "pairs": [pair, {**pair, "t": 2}]}))
    assert describe_matches(path) == (
        "MaskConsist matched nothing in 2 frame pairs (no prediction warped along the flow overlapped one in "
        "the other frame at IoU > 0.5), so the matches layer is empty"
    )
    nothing = {**pair, "n_pred_t": 0, "n_pred_t2": 0, "warped_t": empty, "expanded_t2": empty}
    path.write_text(json.dumps({"video": "v", "pairs": [nothing]}))
    assert "the detector predicted nothing in these frames" in describe_matches(path)
    assert describe_matches(tmp_path / "missing.json") == ""


def test_a_detector_that_predicts_nothing_in_the_video_gives_no_disagreement_not_1_on_every_frame():
    from napari_vis_ws._prediction_layers import labels_disagreement

    pseudo = np.zeros((3, 8, 8), np.int32)
    pseudo[:, 2:5, 2:5] = 1
    features = {"index": [0, 1], "category_id": [0, 1]}
    nothing = np.zeros_like(pseudo)
    assert labels_disagreement(pseudo, features, nothing, {"index": [0], "category_id": [0], "score": [None]}) is None
    faint = np.where(pseudo > 0, 4, 0)  # one tube, below the score threshold
    low = {"index": [0, 4], "category_id": [0, 1], "score": [None, 0.2]}
    assert labels_disagreement(pseudo, features, faint, low) is None
    missed = faint.copy()
    missed[2] = 0  # seen in frames 0 and 1 at 0.9, missed in frame 2
    dis = labels_disagreement(pseudo, features, missed, {"index": [0, 4], "category_id": [0, 1], "score": [None, 0.9]})
    assert dis == [0.0, 0.0, 1.0]
