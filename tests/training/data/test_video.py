"""Lazy frame readers on a real clip, frame folders and TIFF stacks."""

from __future__ import annotations

import time

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from training.data.video import list_frames, open_frames, to_rgb
from training.errors import InputError


def test_real_clip_opens_lazily_with_exact_frame_access(real_clip):
    t0 = time.perf_counter()
    reader = open_frames(real_clip)
    assert reader.shape == (250, 272, 640, 3)
    assert time.perf_counter() - t0 < 5  # a packet scan, no decoding of 250 frames
    sequential = [reader.read(i) for i in range(12)]
    # seeking back and jumping ahead return the same pixels as sequential decoding
    np.testing.assert_array_equal(reader.read(3), sequential[3])
    far = reader.read(200)
    fresh = open_frames(real_clip)
    np.testing.assert_array_equal(fresh.read(11), sequential[11])
    np.testing.assert_array_equal(fresh.read(200), far)
    assert not np.array_equal(sequential[0], sequential[11])  # the clip moves


def test_dask_array_reads_only_the_requested_frame(real_clip):
    reader = open_frames(real_clip)
    calls = []
    original = reader._read
    reader._read = lambda i: (calls.append(i), original(i))[1]
    arr = reader.to_dask()
    assert arr.shape == (250, 272, 640, 3) and arr.dtype == np.uint8
    frame = arr[42].compute()
    assert calls == [42]
    np.testing.assert_array_equal(frame, open_frames(real_clip).read(42))


def test_frame_folder_is_read_in_natural_order(tmp_path):
    for i in (10, 2, 1):
        iio.imwrite(tmp_path / f"frame{i}.png", np.full((8, 9, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    assert [p.name for p in list_frames(tmp_path)] == ["frame1.png", "frame2.png", "frame10.png"]
    reader = open_frames(tmp_path)
    assert reader.shape == (3, 8, 9, 3)
    assert [int(reader.read(i)[0, 0, 0]) for i in range(3)] == [1, 2, 10]


def test_grayscale_and_rgba_frames_become_rgb(tmp_path):
    iio.imwrite(tmp_path / "0.png", np.full((4, 5), 7, np.uint8))
    iio.imwrite(tmp_path / "1.png", np.full((4, 5, 4), 9, np.uint8))
    reader = open_frames(tmp_path)
    assert reader.read(0).shape == (4, 5, 3) and reader.read(0)[0, 0].tolist() == [7, 7, 7]
    assert reader.read(1)[0, 0].tolist() == [9, 9, 9]
    assert to_rgb(np.full((2, 2), 65535, np.uint16))[0, 0, 0] == 255


def test_frame_of_another_size_names_the_frame(tmp_path):
    iio.imwrite(tmp_path / "0.png", np.zeros((8, 8, 3), np.uint8))
    iio.imwrite(tmp_path / "1.png", np.zeros((9, 8, 3), np.uint8))
    reader = open_frames(tmp_path)
    with pytest.raises(InputError, match=r"1\.png: frame 1 is 8x9, frame 0 is 8x8"):
        reader.read(1)


def test_corrupt_frame_names_the_file(tmp_path):
    iio.imwrite(tmp_path / "0.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "1.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match=r"1\.png: frame 1: cannot decode"):
        open_frames(tmp_path).read(1)


def test_multipage_tiff_is_a_time_axis(tmp_path):
    stack = np.stack([np.full((6, 7), i * 20, np.uint8) for i in range(5)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    reader = open_frames(tmp_path / "s.tif")
    assert reader.shape == (5, 6, 7, 3)
    assert int(reader.read(4)[0, 0, 0]) == 80
    assert int(reader.to_dask()[2].compute()[3, 3, 1]) == 40


def test_truncated_video_gets_a_one_line_error(tmp_path, real_clip):
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(real_clip.read_bytes()[:2000])
    with pytest.raises(InputError) as info:
        reader = open_frames(bad)
        reader.read(reader.n_frames - 1)
    assert "cut.mp4" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name,problem", [("missing.mp4", "no such file"), ("x.xyz", "unknown file type")])
def test_bad_paths_are_refused(tmp_path, name, problem):
    if name.endswith(".xyz"):
        (tmp_path / name).write_text("?")
    with pytest.raises(InputError, match=problem):
        open_frames(tmp_path / name)


def test_empty_folder_has_no_frames(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        open_frames(tmp_path)
