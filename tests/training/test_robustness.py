"""Bad input never gives a traceback: readers either work or raise one-line InputErrors.

Property-based: a valid dataset / tags / results file is mutated at a random
place (a key deleted, a value replaced by a value of another type or range)
and every reader must either accept it or refuse it with an InputError whose
message is one line naming the file. And atomic writes survive SIGKILL.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_volume
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.data.tags import load_tags, tags_from_ytvis
from training.data.ytvis import gt_volume, load_ytvis
from training.errors import InputError
from training.evaluation import evaluate_frames, evaluate_ytvis
from training.export import labels_to_ytvis

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 50), max_size=4),
    st.dictionaries(st.sampled_from(["size", "counts", "id"]), st.integers(-2, 30), max_size=2),
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON value (dict keys and list indices)."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(obj: Any, path: tuple, action: str, junk: Any) -> Any:
    obj = copy.deepcopy(obj)
    if not path:
        return junk
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if action == "delete":
        del parent[last]
    else:
        parent[last] = junk
    return obj


def _dataset() -> dict:
    vols = []
    for vid in (1, 2):
        v = make_volume(t=2, h=6, w=7, seed=vid)
        v.labels[:, 4:, :] = 0
        v.video.update(id=vid, file_names=[f"v{vid}/{i}.jpg" for i in range(2)])
        vols.append(v)
    anns = []
    for v in vols:
        anns += labels_to_ytvis(v, "gt", first_id=len(anns) + 1)
    cats = [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}]
    return {"videos": [v.video for v in vols], "categories": cats, "annotations": anns}


DATASET = _dataset()
RESULTS = [dict(a, score=0.5) for a in DATASET["annotations"]]


def _assert_one_line(exc: InputError, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg, msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_dataset_is_loaded_or_refused_in_one_line(tmp_path, data):
    path = data.draw(st.sampled_from(_paths(DATASET)))
    action = data.draw(st.sampled_from(["delete", "replace"]) if path else st.just("replace"))
    mutated = _mutate(DATASET, path, action, data.draw(JUNK))
    f = tmp_path / "gt.json"
    f.write_text(json.dumps(mutated))
    try:
        ds = load_ytvis(f)
        for v in ds["videos"]:
            gt_volume(ds, v["id"], f)
        evaluate_ytvis(ds, RESULTS, gt_path=str(f), results_path="res.json")
    except InputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_results_are_scored_or_refused_in_one_line(tmp_path, data):
    path = data.draw(st.sampled_from(_paths(RESULTS)))
    action = data.draw(st.sampled_from(["delete", "replace"]) if path else st.just("replace"))
    mutated = _mutate(RESULTS, path, action, data.draw(JUNK))
    for evaluate in (evaluate_ytvis, evaluate_frames):
        try:
            if not isinstance(mutated, list):
                raise InputError("res.json", "not a list")  # what `vis-ws eval` checks first
            stats = evaluate(DATASET, mutated, gt_path="gt.json", results_path="res.json")
            assert all(-1.0 <= v <= 1.0 for v in stats.values())
        except InputError as exc:
            assert "\n" not in str(exc) and "res.json" in str(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_tags_are_loaded_or_refused_in_one_line(tmp_path, data):
    tags = tags_from_ytvis(DATASET)
    path = data.draw(st.sampled_from(_paths(tags)))
    action = data.draw(st.sampled_from(["delete", "replace"]) if path else st.just("replace"))
    f = tmp_path / "tags.json"
    f.write_text(json.dumps(_mutate(tags, path, action, data.draw(JUNK))))
    try:
        load_tags(f)
    except InputError as exc:
        _assert_one_line(exc, f)


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe\x00garbage", b"[" * 100000, b"{\"videos\": [}", b"null"])
def test_garbage_files_are_refused_in_one_line(tmp_path, raw):
    f = tmp_path / "gt.json"
    f.write_bytes(raw)
    with pytest.raises(InputError) as info:
        load_ytvis(f)
    _assert_one_line(info.value, f)


WRITER = """
import sys, numpy as np
from training.atomic import write_json
path, n = sys.argv[1], 0
while True:
    n += 1
    write_json(path, {"version": n, "payload": np.full(200000, n % 7).tolist()})
"""


@pytest.mark.slow
def test_sigkill_during_writes_leaves_the_old_or_the_new_file(tmp_path):
    """Kill a process that keeps rewriting a 600 KB JSON, many times at random moments."""
    target = tmp_path / "out.json"
    rng = np.random.default_rng(0)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    versions = []
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=env)
        time.sleep(0.4 + float(rng.random()) * 0.6)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if target.exists():
            data = json.loads(target.read_text())  # never half a file
            assert set(data["payload"]) == {data["version"] % 7}
            versions.append(data["version"])
    assert versions, "the writer never finished a file; the test proves nothing"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "out.json"]
    assert all(p.startswith(".out.json.") for p in leftovers)  # only temp files of killed writes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 40000), flip=st.lists(st.integers(0, 39999), max_size=20))
def test_damaged_video_files_open_or_are_refused_in_one_line(tmp_path, real_clip, cut, flip):
    """A truncated or bit-flipped real mp4: frames decode, or one InputError naming the file."""
    from training.data.video import open_frames

    raw = bytearray(real_clip.read_bytes()[:40000])  # the first ~40 frames' worth of the real clip
    for i in flip:
        if i < len(raw):
            raw[i] ^= 0xFF
    path = tmp_path / "clip.mp4"
    path.write_bytes(bytes(raw[:cut]))
    try:
        reader = open_frames(path)
        for t in (0, len(reader) // 2, len(reader) - 1):
            frame = reader.read(t)
            assert frame.dtype == np.uint8 and frame.shape == (*reader.frame_shape, 3)
    except InputError as exc:
        _assert_one_line(exc, path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), cut=st.integers(0, 400))
def test_damaged_frame_images_are_refused_in_one_line(tmp_path, data, cut):
    """A folder whose second frame is garbage or a truncated PNG: frame 0 reads, frame 1 is refused by name."""
    import imageio.v3 as iio

    from training.data.video import open_frames

    iio.imwrite(tmp_path / "0.png", np.full((8, 10, 3), 7, np.uint8))
    good = (tmp_path / "0.png").read_bytes()
    (tmp_path / "1.png").write_bytes(good[:cut] + data if data else good[:cut])
    reader = open_frames(tmp_path)
    assert reader.read(0)[0, 0].tolist() == [7, 7, 7]
    try:
        frame = reader.read(1)
        assert frame.shape == (8, 10, 3)  # the bytes happened to form a valid frame of the same size
    except InputError as exc:
        _assert_one_line(exc, tmp_path / "1.png")
