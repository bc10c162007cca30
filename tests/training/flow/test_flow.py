"""Optical flow: estimation, warping, occlusion, colour coding, camera motion, storage and ``vis-ws flow``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy import ndimage

from training.cli import main
from training.flow import (
    camera_motion,
    compute_video_flow,
    estimate_flow,
    flow_to_color,
    occlusion_mask,
    read_video_flow,
    remove_camera_motion,
    warp,
    warp_tensor,
)
from training.flow.color import color_wheel
from training.flow.occlusion import occlusion_mask_tensor

CLASSICAL = ("dis", "farneback", "tvl1")
TRUE_SHIFT = (2.3, -1.6)


def smooth_texture(h: int, w: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """(h, w, 3) float32 in [0, 255]: blurred noise, textured at the scales flow methods look at."""
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.random((h, w, 3)), (sigma, sigma, 0))
    return ((tex - tex.min()) / (tex.max() - tex.min()) * 255).astype(np.float32)


def shifted_pair(h: int, w: int, shift: tuple[float, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 frames where frame1(x + shift) = frame0(x): a known, sub-pixel flow."""
    margin = 16
    tex = smooth_texture(h + 2 * margin, w + 2 * margin, seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = shift
    frames = []
    for ox, oy in ((0.0, 0.0), (dx, dy)):
        frame = cv2.remap(tex, xs + margin - ox, ys + margin - oy, cv2.INTER_CUBIC)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames[0], frames[1]


def translating_video(folder: Path, n: int, h: int = 48, w: int = 64, step=(1.5, 0.5)) -> Path:
    """A folder of PNG frames of a texture moving by ``step`` px per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        if t == 0:
            frame, _ = shifted_pair(h, w, (0.0, 0.0))
        else:
            _, frame = shifted_pair(h, w, (step[0] * t, step[1] * t))
        iio.imwrite(folder / f"{t:05d}.png", frame)
    return folder


def end_point_error(flow: np.ndarray, shift: tuple[float, float], border: int = 16) -> float:
    err = np.hypot(flow[..., 0] - shift[0], flow[..., 1] - shift[1])
    return float(err[border:-border, border:-border].mean())


# --- estimation -------------------------------------------------------------


@pytest.mark.parametrize("method", CLASSICAL)
def test_flow_of_a_subpixel_translation_is_accurate_on_textured_frames(method):
    frame0, frame1 = shifted_pair(96, 128, TRUE_SHIFT)
    flow = estimate_flow(frame0, frame1, method)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    assert end_point_error(flow, TRUE_SHIFT) < 0.5


def test_grayscale_frames_give_the_flow_of_their_rgb_frames():
    frame0, frame1 = shifted_pair(64, 80, TRUE_SHIFT)
    gray0, gray1 = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (frame0, frame1))
    np.testing.assert_array_equal(estimate_flow(gray0, gray1), estimate_flow(frame0, frame1))


@pytest.fixture(scope="module")
def real_pair(real_clip):
    """Frames 10 and 11 of a real video (bikes.mp4), downscaled to 320x136."""
    from training.data.video import open_frames

    reader = open_frames(real_clip)
    return tuple(cv2.resize(reader.read(i), (320, 136), interpolation=cv2.INTER_AREA) for i in (10, 11))


@pytest.mark.parametrize("method", CLASSICAL)
def test_warping_the_next_real_frame_by_the_flow_reconstructs_the_first(real_pair, method):
    frame0, frame1 = real_pair
    if method == "tvl1":  # slow: a crop around the passing cyclist
        frame0, frame1 = frame0[40:104, 96:192], frame1[40:104, 96:192]
    flow = estimate_flow(frame0, frame1, method)
    no_warp = np.abs(frame1.astype(np.float32) - frame0).mean()
    warped = np.abs(warp(frame1, flow).astype(np.float32) - frame0).mean()
    assert warped < 0.7 * no_warp


@pytest.mark.parametrize(
    "frame0,frame1,problem",
    [
        (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 40, 3), np.uint8), "same shape"),
        (np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 4), np.uint8), "(H, W, 3)"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "too small"),
    ],
)
def test_bad_frames_are_refused_with_a_clear_message(frame0, frame1, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        estimate_flow(frame0, frame1)


def test_unknown_method_and_raft_without_a_model_are_refused():
    frame = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="expected one of dis, farneback, tvl1, raft"):
        estimate_flow(frame, frame, "lucas-kanade")
    with pytest.raises(ValueError, match="needs a model"):
        estimate_flow(frame, frame, "raft")


# --- warping ----------------------------------------------------------------


def test_warp_by_an_integer_flow_samples_the_neighbour():
    image = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    flow = np.zeros((4, 6, 2), np.float32)
    flow[..., 0] = 1.0  # each pixel takes its right neighbour
    out = warp(image, flow)
    np.testing.assert_array_equal(out[:, :-1], image[:, 1:])
    np.testing.assert_array_equal(out[:, -1], image[:, -1])  # border replicated


def test_bilinear_warp_keeps_shape_and_dtype_for_every_layout():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 2, (10, 12, 2)).astype(np.float32)
    for image in (rng.random((10, 12)), rng.integers(0, 255, (10, 12, 3), dtype=np.uint8), rng.random((10, 12, 7))):
        out = warp(image, flow, fill=0)
        assert out.shape == image.shape and out.dtype == image.dtype


def test_nearest_warp_keeps_the_labels_of_a_mask():
    rng = np.random.default_rng(1)
    labels = np.zeros((20, 30), np.int32)
    labels[5:12, 4:14] = 3
    labels[8:18, 16:28] = 70000  # beyond uint16: no trip through a narrower type
    flow = rng.normal(0, 1.5, (20, 30, 2)).astype(np.float32)
    out = warp(labels, flow, mode="nearest")
    assert out.dtype == np.int32 and set(np.unique(out)) <= {0, 3, 70000}
    shifted = warp(labels, np.full((20, 30, 2), (2.4, 0.0), np.float32), mode="nearest")
    np.testing.assert_array_equal(shifted[:, :-2], labels[:, 2:])


def test_nearest_warp_with_fill_lets_a_mask_leave_the_frame():
    labels = np.ones((6, 8), np.uint8)
    flow = np.zeros((6, 8, 2), np.float32)
    flow[..., 0] = -3.0
    out = warp(labels, flow, mode="nearest", fill=0)
    assert (out[:, :3] == 0).all() and (out[:, 3:] == 1).all()


def test_numpy_and_torch_warps_agree():
    rng = np.random.default_rng(2)
    image = rng.random((17, 23, 3)).astype(np.float32)
    flow = rng.normal(0, 4, (17, 23, 2)).astype(np.float32)  # some samples fall outside the frame
    expected = warp(image, flow)
    got = warp_tensor(torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(flow).permute(2, 0, 1)[None])
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), expected, atol=1e-4)


# --- occlusion --------------------------------------------------------------


def moving_square_flows(h: int = 40, w: int = 60, x0: int = 20, size: int = 12, step: int = 6):
    """Exact flows of a square moving right by ``step`` over a static background.

    Returns forward (at frame 0), backward (at frame 1), the columns of the
    square's leading-edge band in frame 0 (background covered in frame 1)
    and of its trailing-edge band in frame 1 (background uncovered).
    """
    rows = slice(10, 10 + size)
    forward = np.zeros((h, w, 2), np.float32)
    forward[rows, x0 : x0 + size, 0] = step
    backward = np.zeros((h, w, 2), np.float32)
    backward[rows, x0 + step : x0 + size + step, 0] = -step
    covered = (rows, slice(x0 + size, x0 + size + step))
    uncovered = (rows, slice(x0, x0 + step))
    return forward, backward, covered, uncovered


def test_occlusion_marks_background_the_moving_square_covers_and_uncovers():
    forward, backward, covered, uncovered = moving_square_flows()
    occluded0 = occlusion_mask(forward, backward)  # frame 0 pixels with no match in frame 1
    expected0 = np.zeros(occluded0.shape, bool)
    expected0[covered] = True
    np.testing.assert_array_equal(occluded0, expected0)
    occluded1 = occlusion_mask(backward, forward)  # frame 1 pixels with no match in frame 0
    expected1 = np.zeros(occluded1.shape, bool)
    expected1[uncovered] = True  # the trailing edge uncovers background
    np.testing.assert_array_equal(occluded1, expected1)


def test_pixels_moving_out_of_the_frame_are_occluded():
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = 3.0
    occluded = occlusion_mask(flow, -flow)
    assert occluded[:, 7:].all() and not occluded[:, :7].any()


def test_occlusion_of_estimated_flow_finds_the_covered_and_uncovered_bands():
    background = smooth_texture(64, 96, seed=1, sigma=1.5)
    square = smooth_texture(24, 24, seed=11, sigma=1.5)
    frames = []
    for x in (30, 36):  # the square moves 6 px right
        frame = background.copy()
        frame[20:44, x : x + 24] = square
        frames.append(frame.astype(np.uint8))
    forward = estimate_flow(frames[0], frames[1])
    backward = estimate_flow(frames[1], frames[0])
    occluded0, occluded1 = occlusion_mask(forward, backward), occlusion_mask(backward, forward)
    assert occluded0[22:42, 54:60].mean() > 0.5  # background ahead of the square, covered in frame 1
    assert occluded1[22:42, 30:36].mean() > 0.5  # background behind it, uncovered in frame 1
    far = np.ones(occluded0.shape, bool)
    far[12:52, 22:68] = False  # away from the square
    far[:, -2:] = False  # and from the right edge
    assert occluded0[far].mean() < 0.1 and occluded1[far].mean() < 0.1


def test_numpy_and_torch_occlusion_agree():
    forward, backward, _, _ = moving_square_flows()
    expected = occlusion_mask(forward, backward)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    got = occlusion_mask_tensor(to_t(forward), to_t(backward))[0, 0].numpy()
    np.testing.assert_array_equal(got, expected)


# --- colour, camera motion --------------------------------------------------


def test_color_wheel_has_the_middlebury_segments():
    wheel = color_wheel()
    assert wheel.shape == (55, 3)
    # red, yellow, green, cyan, blue, magenta start the RY, YG, GC, CB, BM, MR segments
    starts = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255), 49: (255, 0, 255)}
    for index, rgb in starts.items():
        assert tuple(wheel[index]) == rgb


def test_flow_to_color_draws_still_pixels_white_and_rightward_motion_red():
    flow = np.array([[[0, 0], [1, 0], [0.5, 0], [2, 0], [np.nan, 0]]], np.float32)
    image = flow_to_color(flow, max_magnitude=1.0)
    assert image.dtype == np.uint8 and image.shape == (1, 5, 3)
    assert image[0].tolist() == [[255, 255, 255], [255, 0, 0], [255, 127, 127], [191, 0, 0], [0, 0, 0]]


def test_flow_to_color_gives_opposite_directions_opposite_hues():
    flow = np.array([[[0, -3], [0, 3], [-3, 0]]], np.float32)
    up, down, left = flow_to_color(flow)[0].tolist()
    assert up[2] == 255 and up[1] == 0  # blue-magenta
    assert down[0] == 255 and down[2] == 0  # orange-yellow
    assert left[2] == 255 and left[0] == 0  # cyan-blue


def test_camera_motion_is_removed_and_the_object_motion_kept():
    flow = np.zeros((40, 50, 2), np.float32)
    flow[...] = (3.0, -1.0)  # the camera pans
    flow[10:20, 10:20] = (11.0, -1.0)  # an object moves 8 px right relative to the background
    assert camera_motion(flow).tolist() == [3.0, -1.0]
    relative = remove_camera_motion(flow)
    assert np.abs(relative[:5]).max() == 0 and relative[15, 15].tolist() == [8.0, 0.0]


def test_camera_motion_of_an_estimated_pan_is_the_pan():
    frame0, frame1 = shifted_pair(64, 96, TRUE_SHIFT)
    np.testing.assert_allclose(camera_motion(estimate_flow(frame0, frame1)), TRUE_SHIFT, atol=0.2)


# --- video flow on disk -----------------------------------------------------


def test_video_flow_stores_forward_backward_and_occlusion(tmp_path):
    from training.data.sources import iter_videos

    (source,) = iter_videos(translating_video(tmp_path / "clip", 3, step=(1.5, 0.5)))
    events = list(compute_video_flow(source, tmp_path / "flow"))
    assert [e.done for e in events] == [1, 2, 2] and events[-1].metrics["skipped"] == 0.0
    flow = read_video_flow(tmp_path / "flow", "clip")
    assert flow.data.shape == (2, 48, 64, 5) and flow.data.dtype == np.float16
    assert flow.meta["method"] == "dis" and flow.meta["config"] == {"preset": "medium"}
    inner = (slice(12, -12), slice(12, -12))
    np.testing.assert_allclose(np.median(flow.forward(1)[inner].reshape(-1, 2), 0), (1.5, 0.5), atol=0.2)
    np.testing.assert_allclose(np.median(flow.backward(1)[inner].reshape(-1, 2), 0), (-1.5, -0.5), atol=0.2)
    assert flow.occlusion(0)[inner].mean() < 0.05 and flow.occlusion(0)[:, -1].all()  # right edge leaves the frame


def test_a_one_frame_video_gets_an_empty_flow(tmp_path):
    from training.data.sources import iter_videos

    (source,) = iter_videos(translating_video(tmp_path / "still", 1))
    list(compute_video_flow(source, tmp_path / "flow"))
    flow = read_video_flow(tmp_path / "flow", "still")
    assert flow.data.shape == (0, 48, 64, 5) and flow.n_frames == 1


# --- vis-ws flow ------------------------------------------------------------


def flow_messages(out: str) -> list[str]:
    """The log messages among ``--progress json`` lines."""
    return [e["message"] for e in map(json.loads, out.splitlines()) if e["message"]]


def test_flow_command_writes_one_array_per_video_and_skips_it_on_rerun(tmp_path, capsys):
    clip = translating_video(tmp_path / "clip", 5)
    out = tmp_path / "flow"
    command = ["flow", str(clip), "--out", str(out), "--progress", "json"]
    assert main(command) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.flow.json", "clip.flow.npy"]
    record = json.loads((out / "clip.flow.json").read_text())
    assert (record["method"], record["height"], record["width"], record["n_frames"]) == ("dis", 48, 64, 5)
    assert np.load(out / "clip.flow.npy").shape == (4, 48, 64, 5)
    assert flow_messages(capsys.readouterr().out)[0].startswith("clip: wrote 4 flow pairs of 64x48 (dis)")
    before = (out / "clip.flow.npy").stat().st_mtime_ns
    assert main(command) == 0
    assert flow_messages(capsys.readouterr().out) == [f"clip: skipped, its dis flow is already in {out}"]
    assert (out / "clip.flow.npy").stat().st_mtime_ns == before
    assert main([*command, "--method", "farneback"]) == 0  # another method recomputes
    assert json.loads((out / "clip.flow.json").read_text())["method"] == "farneback"


def test_flow_command_covers_every_video_of_a_dataset(tiny_dataset, tmp_path):
    out = tmp_path / "flow"
    assert main(["flow", str(tiny_dataset), "--out", str(out), "--progress", "json"]) == 0
    assert read_video_flow(out, "v1").data.shape == (2, 20, 30, 5)
    assert read_video_flow(out, "v2").data.shape == (1, 20, 30, 5)


def test_flow_command_reports_progress_as_json_lines(tmp_path, capsys):
    clip = translating_video(tmp_path / "clip", 3)
    assert main(["flow", str(clip), "--out", str(tmp_path / "flow"), "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["stage"], e["done"], e["total"]) for e in events] == [("flow", 1, 2), ("flow", 2, 2), ("flow", 2, 2)]


@pytest.mark.parametrize("defect", ["another size", "corrupt"])
def test_a_bad_frame_exits_2_naming_it_and_leaves_no_file(tmp_path, capsys, defect):
    clip = translating_video(tmp_path / "clip", 5)
    bad = clip / "00003.png"
    if defect == "another size":
        iio.imwrite(bad, np.zeros((40, 64, 3), np.uint8))
    else:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "flow"
    assert main(["flow", str(clip), "--out", str(out), "--progress", "json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "frame 3" in err and "'clip'" in err
    assert not out.exists() or list(out.iterdir()) == []  # no array, no record, no temp file


def test_flow_command_with_raft_needs_a_model(tmp_path, capsys):
    clip = translating_video(tmp_path / "clip", 2)
    assert main(["flow", str(clip), "--out", str(tmp_path / "flow"), "--method", "raft"]) == 2
    assert "--method raft needs --model" in capsys.readouterr().err


def test_flow_commands_are_registered_with_help():
    from training.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert "optical flow" in helps["flow"] and "RAFT" in helps["train-flow"]
