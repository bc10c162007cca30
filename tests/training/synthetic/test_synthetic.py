"""The synthetic benchmark: deterministic, valid YouTube-VIS, and every cue of the method is there."""

from __future__ import annotations

import json

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from conftest import SAMPLE

from training.data.tags import load_tags
from training.data.ytvis import frame_paths, frames_root, gt_volume, load_ytvis
from training.errors import InputError
from training.synthetic import (
    CATEGORIES,
    SyntheticConfig,
    generate_dataset,
    generate_video,
    object_mask,
    plan_video,
)

CONFIG = SyntheticConfig()  # the default set: 4 videos x 16 frames at 240x320, seed 0
K3 = np.ones((3, 3), np.uint8)


@pytest.fixture(scope="module")
def default_set(tmp_path_factory):
    """The default dataset on disk, with each video's script and rendering."""
    root = tmp_path_factory.mktemp("synthetic")
    paths = generate_dataset(root, CONFIG)
    scenes = [plan_video(CONFIG, i) for i in range(CONFIG.n_videos)]
    videos = [generate_video(CONFIG, i) for i in range(CONFIG.n_videos)]
    return paths, scenes, videos


def _adjacent(labels: np.ndarray, a: int, b: int) -> bool:
    """True when instance ``a`` and ``b`` share a 4-connected pixel edge."""
    h = (labels[:, 1:] == a) & (labels[:, :-1] == b) | (labels[:, 1:] == b) & (labels[:, :-1] == a)
    v = (labels[1:] == a) & (labels[:-1] == b) | (labels[1:] == b) & (labels[:-1] == a)
    return bool(h.any() or v.any())


def _inside(mask: np.ndarray) -> bool:
    """True when a non-empty mask does not touch the frame border."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return len(xs) > 0 and xs.min() > 0 and ys.min() > 0 and xs.max() < w - 1 and ys.max() < h - 1


def test_frames_are_uint8_rgb_of_the_configured_size():
    config = SyntheticConfig(n_videos=1, n_frames=3, height=96, width=128, size_range=(16.0, 40.0))
    frames, volume = generate_video(config, 2)
    assert frames.shape == (3, 96, 128, 3) and frames.dtype == np.uint8
    assert volume.labels.shape == (3, 96, 128) and volume.labels.dtype == np.int32
    assert volume.video["id"] == 3
    assert volume.video["name"] == "synth_0002"
    assert volume.video["file_names"] == [f"synth_0002/{t:05d}.jpg" for t in range(3)]


def test_same_seed_gives_identical_frames_and_files(default_set, tmp_path):
    paths, _, videos = default_set
    frames, volume = generate_video(CONFIG, 1)
    np.testing.assert_array_equal(frames, videos[1][0])
    np.testing.assert_array_equal(volume.labels, videos[1][1].labels)
    again = generate_dataset(tmp_path, CONFIG)
    for key in ("gt", "tags", "config"):
        assert again[key].read_bytes() == paths[key].read_bytes(), key
    first = sorted(paths["frames"].rglob("*.jpg"))
    assert len(first) == CONFIG.n_videos * CONFIG.n_frames
    for p in first:
        assert (again["frames"] / p.relative_to(paths["frames"])).read_bytes() == p.read_bytes(), p


def test_a_different_seed_gives_different_frames_and_masks(default_set):
    _, _, videos = default_set
    frames, volume = generate_video(SyntheticConfig(seed=1), 0)
    assert np.abs(frames.astype(int) - videos[0][0]).mean() > 10
    assert not np.array_equal(volume.labels, videos[0][1].labels)


def test_gt_json_loads_as_youtube_vis_with_every_frame_on_disk(default_set):
    paths, _, videos = default_set
    gt = load_ytvis(paths["gt"])
    assert gt["categories"] == CATEGORIES
    assert [v["id"] for v in gt["videos"]] == [1, 2, 3, 4]
    root = frames_root(paths["gt"])
    for (frames, volume), video in zip(videos, gt["videos"], strict=True):
        files = frame_paths(root, video)  # raises if a frame is missing
        assert len(files) == CONFIG.n_frames
        # The masks in gt.json are exactly the rendered ones, and the JPEG is the rendered frame.
        np.testing.assert_array_equal(gt_volume(gt, video["id"]).labels, volume.labels)
        assert np.abs(iio.imread(files[5]).astype(int) - frames[5]).mean() < 3


def test_tags_list_exactly_the_categories_present_in_each_frame(default_set):
    paths, _, videos = default_set
    tags = load_tags(paths["tags"])
    got = {(t["video_id"], t["frame"]): t["category_ids"] for t in tags["frame_tags"]}
    assert len(got) == CONFIG.n_videos * CONFIG.n_frames
    for _, volume in videos:
        for t, frame in enumerate(volume.labels):
            present = sorted({volume.categories[k] for k in np.unique(frame).tolist() if k})
            assert got[(volume.video["id"], t)] == present


def test_tags_differ_between_frames_and_videos_so_every_class_has_negatives(default_set):
    paths, _, _ = default_set
    tags = load_tags(paths["tags"])["frame_tags"]
    for c in CATEGORIES:
        tagged = [c["id"] in t["category_ids"] for t in tags]
        assert 0 < sum(tagged) < len(tagged), c["name"]
    counts = [len(t["category_ids"]) for t in tags]
    assert min(counts) >= 1 and max(counts) >= 2


def test_every_video_has_an_object_entering_and_one_leaving(default_set):
    _, _, videos = default_set
    for _, volume in videos:
        present = np.array([[np.any(f == k) for f in volume.labels] for k in volume.instance_ids])
        entering = ~present[:, 0] & present.any(axis=1)
        leaving = present[:, 0] & ~present[:, -1]
        assert entering.any() and leaving.any(), volume.video["name"]


def test_the_number_of_visible_objects_changes_from_frame_to_frame(default_set):
    _, _, videos = default_set
    counts = {len(np.unique(f)) - 1 for _, volume in videos for f in volume.labels}
    assert min(counts) >= 1 and len(counts) >= 3


def test_hidden_parts_of_objects_are_covered_by_nearer_objects(default_set):
    _, scenes, videos = default_set
    biggest_loss = 0.0
    for scene, (_, volume) in zip(scenes, videos, strict=True):
        depth = {tr.instance_id: tr.depth for tr in scene.tracks}
        for tr in scene.tracks:
            for t in range(CONFIG.n_frames):
                whole = object_mask(tr, t, CONFIG.height, CONFIG.width)
                visible = volume.labels[t] == tr.instance_id
                assert not (visible & ~whole).any()
                hidden_by = volume.labels[t][whole & ~visible]
                assert all(depth[k] > tr.depth for k in np.unique(hidden_by).tolist())
                if visible.any():
                    biggest_loss = max(biggest_loss, 1.0 - visible.sum() / whole.sum())
    # An occlusion a user sees: some object loses more than half of its area behind another.
    assert biggest_loss > 0.5


def test_crossing_objects_occlude_each_other_in_every_video(default_set):
    _, scenes, videos = default_set
    for scene, (_, volume) in zip(scenes, videos, strict=True):
        back, front = sorted((tr for tr in scene.tracks if tr.role == "cross"), key=lambda tr: tr.depth)
        areas = [(volume.labels[t] == back.instance_id).sum() for t in range(CONFIG.n_frames)]
        wholes = [object_mask(back, t, CONFIG.height, CONFIG.width).sum() for t in range(CONFIG.n_frames)]
        overlaps = [
            (object_mask(back, t, CONFIG.height, CONFIG.width) & (volume.labels[t] == front.instance_id)).sum()
            for t in range(CONFIG.n_frames)
        ]
        t = int(np.argmax(overlaps))
        assert overlaps[t] > 0 and areas[t] <= wholes[t] - overlaps[t], scene.name
        assert areas[t] < max(areas), scene.name  # its visible area drops while it is behind


def test_every_video_has_a_same_class_pair_touching_for_several_frames(default_set):
    _, _, videos = default_set
    for _, volume in videos:
        ids = volume.instance_ids
        best = 0
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if volume.categories[a] == volume.categories[b]:
                    best = max(best, sum(_adjacent(f, a, b) for f in volume.labels))
        assert best >= 3, volume.video["name"]


def test_background_pans_by_the_camera_offsets(default_set):
    _, scenes, videos = default_set
    for scene, (frames, volume) in zip(scenes, videos, strict=True):
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
        for t in (0, 7, 14):
            background = ((volume.labels[t] == 0) & (volume.labels[t + 1] == 0)).astype(np.uint8)
            background = cv2.erode(background, np.ones((7, 7), np.uint8))
            criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
            _, warp = cv2.findTransformECC(
                grey[t + 1], grey[t], np.eye(2, 3, dtype=np.float32), cv2.MOTION_TRANSLATION,
                criteria, background, 5,
            )
            seen = -warp[:, 2]  # ECC maps frame t+1 onto t: the content moved the other way
            step = scene.camera[t + 1] - scene.camera[t]
            assert np.linalg.norm(step) > 0.7
            assert np.linalg.norm(seen - step) < 0.3, (scene.name, t, seen, step)


def test_objects_move_relative_to_the_background(default_set):
    _, scenes, videos = default_set
    for scene, (_, volume) in zip(scenes, videos, strict=True):
        for tr in scene.tracks:
            relative = []
            for t in range(CONFIG.n_frames - 1):
                a, b = volume.labels[t] == tr.instance_id, volume.labels[t + 1] == tr.instance_id
                whole = [object_mask(tr, s, CONFIG.height, CONFIG.width).sum() for s in (t, t + 1)]
                # Only frames where the whole object is seen, so the centroid is the object's.
                if _inside(a) and _inside(b) and a.sum() == whole[0] and b.sum() == whole[1]:
                    ca = np.array(np.nonzero(a)[::-1]).mean(axis=1)
                    cb = np.array(np.nonzero(b)[::-1]).mean(axis=1)
                    relative.append(np.linalg.norm(cb - ca - (scene.camera[t + 1] - scene.camera[t])))
            if len(relative) >= 3:
                assert np.median(relative) > 1.0, (scene.name, tr.instance_id, tr.role)


def test_object_edges_stand_out_from_the_background(default_set):
    _, _, videos = default_set
    diffs = []
    for frames, volume in videos:
        frame, labels = frames[0].astype(float), volume.labels[0]
        for k in np.unique(labels)[1:]:
            m = (labels == k).astype(np.uint8)
            inner = (m & (1 - cv2.erode(m, K3, iterations=3))) > 0
            outer = (cv2.dilate(m, K3, iterations=3) > 0) & (labels == 0)
            if inner.sum() >= 30 and outer.sum() >= 30:
                diffs.append(np.abs(frame[inner].mean(0) - frame[outer].mean(0)).mean())
    assert len(diffs) >= 12
    assert np.median(diffs) > 15


def test_no_single_colour_threshold_segments_the_objects(default_set):
    _, _, videos = default_set
    for frames, volume in videos:
        fg = volume.labels[0] > 0
        hsv = cv2.cvtColor(frames[0], cv2.COLOR_RGB2HSV)
        channels = [frames[0][..., c] for c in range(3)] + [hsv[..., c] for c in range(3)]
        best = 0.0
        for ch in channels:
            for th in range(0, 256, 4):
                for m in (ch > th, ch <= th):
                    best = max(best, (m & fg).sum() / (m | fg).sum())
        assert best < 0.8, volume.video["name"]


def test_objects_are_textured_inside(default_set):
    _, _, videos = default_set
    stds = []
    for frames, volume in videos:
        grey = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
        for k in np.unique(volume.labels[0])[1:]:
            core = cv2.erode((volume.labels[0] == k).astype(np.uint8), K3, iterations=3) > 0
            if core.sum() >= 50:
                stds.append(grey[core].std())
    assert np.median(stds) > 12


def test_each_class_has_its_own_shape(default_set):
    _, scenes, _ = default_set
    names = {c["id"]: c["name"] for c in CATEGORIES}
    for scene in scenes:
        for tr in scene.tracks:
            whole = next(
                (m for t in range(CONFIG.n_frames)
                 if _inside(m := object_mask(tr, t, CONFIG.height, CONFIG.width))), None,
            )
            if whole is None:
                continue
            contours, _ = cv2.findContours(whole.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            outline = max(contours, key=cv2.contourArea)
            solidity = whole.sum() / cv2.contourArea(cv2.convexHull(outline))
            w, h = cv2.minAreaRect(outline)[1]
            extent = whole.sum() / (w * h)  # area over the tightest rotated box
            name = names[tr.category_id]
            if name == "star":
                assert solidity < 0.8
            else:
                assert solidity > 0.9
                low, high = {"disc": (0.7, 0.9), "box": (0.9, 1.1), "triangle": (0.4, 0.65)}[name]
                assert low < extent < high, (name, extent)


def test_objects_are_small_with_sizes_mostly_between_20_and_80_px(default_set):
    _, scenes, videos = default_set
    sizes = [tr.size for scene in scenes for tr in scene.tracks]
    assert min(sizes) >= 20 and max(sizes) <= 80
    areas = [(f == k).sum() for _, v in videos for f in v.labels for k in np.unique(f)[1:]]
    assert max(areas) < 128**2
    assert np.percentile(areas, 25) < 1000 < np.percentile(areas, 75)


def test_progress_is_reported_after_each_video(tmp_path):
    calls = []
    config = SyntheticConfig(n_videos=2, n_frames=2, height=64, width=96, size_range=(12.0, 30.0))
    generate_dataset(tmp_path, config, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_config_json_holds_the_whole_config(default_set):
    paths, _, _ = default_set
    data = json.loads(paths["config"].read_text())
    assert SyntheticConfig.from_dict(data) == CONFIG
    assert data["size_range"] == [20.0, 80.0] and data["seed"] == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"n_frames": 1}, "n_frames must be at least 2"),
        ({"min_objects": 5, "max_objects": 3}, "min_objects"),
        ({"max_classes": 9}, "max_classes"),
        ({"size_range": [30, 10]}, "size_range"),
        ({"colour": "red"}, "unknown synthetic config field 'colour'"),
    ],
)
def test_a_bad_config_is_refused_in_one_line_naming_the_field(change, words):
    with pytest.raises(InputError, match=words) as err:
        SyntheticConfig.from_dict({**CONFIG.to_dict(), **change})
    assert "\n" not in str(err.value)


def test_generating_into_a_file_path_is_refused(tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        generate_dataset(target, SyntheticConfig(n_videos=1, n_frames=2))


def test_committed_sample_is_reproduced_exactly_by_the_generator(tmp_path):
    config = SyntheticConfig.from_dict(json.loads((SAMPLE / "config.json").read_text()))
    paths = generate_dataset(tmp_path, config)
    for key, name in (("gt", "gt.json"), ("tags", "tags.json"), ("config", "config.json")):
        assert paths[key].read_bytes() == (SAMPLE / name).read_bytes(), f"sample_data/{name} drifted"
    # Frames: compare pixels, not bytes, so another JPEG library version does not fail the test.
    for committed in sorted((SAMPLE / "JPEGImages").rglob("*.jpg")):
        fresh = paths["frames"] / committed.relative_to(SAMPLE / "JPEGImages")
        diff = np.abs(iio.imread(committed).astype(int) - iio.imread(fresh).astype(int)).mean()
        assert diff < 1.0, committed


def test_committed_sample_is_small_and_complete():
    files = [p for p in SAMPLE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
    gt = load_ytvis(SAMPLE / "gt.json")
    for video in gt["videos"]:
        assert len(frame_paths(SAMPLE / "JPEGImages", video)) == video["length"]
    assert (SAMPLE / "README.md").is_file() and (SAMPLE / "tags.json").is_file()


def test_sample_readme_gives_the_command_that_made_it():
    config = json.loads((SAMPLE / "config.json").read_text())
    text = (SAMPLE / "README.md").read_text()
    command = f"vis-ws sample --out sample_data --videos {config['n_videos']} --frames {config['n_frames']}"
    assert f"{command} --seed {config['seed']}" in text


def test_a_background_pool_makes_videos_share_their_backgrounds() -> None:
    """With a pool of 1, every video is filmed in front of the same scene (its tags then cannot name the video)."""
    config = SyntheticConfig(
        n_videos=3, n_frames=3, height=64, width=96, size_range=(12.0, 30.0), noise_sigma=0.0, background_pool=1
    )
    own = SyntheticConfig(**{**config.to_dict(), "background_pool": 0})  # type: ignore[arg-type]
    scenes = [plan_video(config, i) for i in range(3)]
    assert [s.background for s in scenes] == [0, 0, 0]
    assert all(np.array_equal(s.palette, scenes[0].palette) for s in scenes)
    rendered = [generate_video(config, i) for i in range(3)]
    # Frame 0 has no camera shift: background pixels free in both videos are the same pixels.
    for frames, volume in rendered[1:]:
        free = (volume.labels[0] == 0) & (rendered[0][1].labels[0] == 0)
        assert free.mean() > 0.3
        assert np.array_equal(frames[0][free], rendered[0][0][0][free])
    # Without a pool, the videos' scenes differ.
    a, b = generate_video(own, 0), generate_video(own, 1)
    free = (a[1].labels[0] == 0) & (b[1].labels[0] == 0)
    assert np.abs(a[0][0][free].astype(int) - b[0][0][free].astype(int)).mean() > 10
    with pytest.raises(InputError, match="background_pool"):
        SyntheticConfig(background_pool=-1)
