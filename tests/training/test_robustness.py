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
import re
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


@pytest.mark.parametrize(("height", "problem"), [(454412377, "larger than 32768 px"), (9, "RLE size [6, 7]")])
def test_a_frame_size_that_does_not_fit_its_masks_is_refused_before_any_volume_is_allocated(tmp_path, height, problem):
    """Found by the property below: a huge 'height' made decoding allocate 23.7 GiB before the RLE was checked."""
    mutated = json.loads(json.dumps(DATASET))
    mutated["videos"][0]["height"] = height
    f = tmp_path / "gt.json"
    f.write_text(json.dumps(mutated))
    with pytest.raises(InputError, match=re.escape(problem)) as info:
        ds = load_ytvis(f)
        gt_volume(ds, 1, f)
    _assert_one_line(info.value, f)


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


def _coco() -> tuple[dict, list]:
    """DATASET's volumes as COCO, as `vis-ws export --format coco` writes them: (gt, results)."""
    from training.export import labels_to_coco

    images, anns, results = [], [], []
    for vid in (1, 2):
        v = make_volume(t=2, h=6, w=7, seed=vid)
        v.video.update(id=vid)
        im, an = labels_to_coco(v, "gt", first_image_id=len(images) + 1, first_ann_id=len(anns) + 1)
        results += labels_to_coco(v, "results", first_image_id=len(images) + 1)[1]
        images, anns = images + im, anns + an
    gt = {"images": images, "annotations": anns, "categories": DATASET["categories"], "videos": DATASET["videos"]}
    return gt, results


COCO_GT, COCO_RESULTS = _coco()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_coco_json_where_youtube_vis_is_read_is_refused_in_one_line(tmp_path, data):
    """Nothing reads COCO files (only `export` writes them): one given as a dataset or as results, intact or
    mutated, is refused in one line naming it by `info`, `tags`/`eval --gt` and `eval --results`."""
    from training.data.sources import load_dataset_json

    doc = data.draw(st.sampled_from([COCO_GT, COCO_RESULTS]))
    path = data.draw(st.sampled_from(_paths(doc)))
    action = data.draw(st.sampled_from(["keep", "delete", "replace"]) if path else st.just("keep"))
    mutated = doc if action == "keep" else _mutate(doc, path, action, data.draw(JUNK))
    f = tmp_path / "coco.json"
    f.write_text(json.dumps(mutated))
    before = f.read_bytes()
    for read in (load_dataset_json, load_ytvis):
        with pytest.raises(InputError) as info:
            read(f)
        _assert_one_line(info.value, f)
    for evaluate in (evaluate_ytvis, evaluate_frames):
        try:
            if not isinstance(mutated, list):
                raise InputError(f, "not a list")  # what `vis-ws eval` checks first
            evaluate(DATASET, mutated, gt_path="gt.json", results_path=str(f))
        except InputError as exc:
            _assert_one_line(exc, f)
        else:
            assert mutated == [], mutated  # junk that replaced the whole file: no results, scored as such
    assert f.read_bytes() == before


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe\x00garbage", b"[" * 100000, b'{"videos": [}', b"null"])
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


# -- paths: bytes that are not UTF-8 and names longer than the OS allows ------------------------------------
NOT_UTF8 = os.fsdecode(b"vid\xff")  # 'vid\udcff': how Python spells a file name that is not UTF-8


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from training.cli import main

    code = main(argv)
    out, err = capsys.readouterr()  # pytest's capture encodes strictly, as a UTF-8 terminal does
    return code, out, err


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (bytes names, so nothing is lost) and its content."""
    broot = os.fsencode(root)
    files = {}
    for folder, _, names in os.walk(broot):
        for name in names:
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                files[os.fsdecode(os.path.relpath(full, broot))] = f.read()
    return files


def _assert_one_line_exit_2(code: int, err: str, named: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert named in err, err


@pytest.mark.parametrize("command", ["tags", "info", "eval", "train-cam", "cams"])
def test_a_json_input_that_is_not_utf8_exits_2_naming_it_and_is_left_untouched(tmp_path, capsys, command):
    bad = tmp_path / ("gt.json" if command in ("tags", "eval") else "tags.json")
    bad.write_bytes('{"videos": [{"id": 1, "name": "café"}], "categories": []}'.encode("latin-1"))
    argv = {
        "tags": ["tags", str(bad), "--out", str(tmp_path / "out.json")],
        "info": ["info", str(bad)],
        "eval": ["eval", "--gt", str(bad), "--results", str(tmp_path / "res.json")],
        "train-cam": ["train-cam", str(bad), "--out", str(tmp_path / "run"), "--device", "cpu"],
        "cams": ["cams", str(bad), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "cams")],
    }[command]
    before = _tree(tmp_path)
    code, out, err = _cli(argv, capsys)
    _assert_one_line_exit_2(code, err, f"{bad}: not UTF-8 text (byte 34)")
    assert _tree(tmp_path) == before and not out


def _undecodable_dataset(tiny_dataset: Path) -> Path:
    """``tiny_dataset`` copied under a name that is not UTF-8, beside its frames."""
    path = tiny_dataset.with_name(f"{NOT_UTF8}.json")
    path.write_bytes(tiny_dataset.read_bytes())
    assert os.fsencode(path).endswith(b"vid\xff.json")
    return path


def test_files_named_in_bytes_that_are_not_utf8_are_read_and_written(tiny_dataset, tmp_path, capsys):
    gt = _undecodable_dataset(tiny_dataset)
    out = tmp_path / os.fsdecode(b"tags\xfe.json")
    code, stdout, err = _cli(["tags", str(gt), "--out", str(out)], capsys)
    assert code == 0 and not err
    assert json.loads(out.read_bytes())["frame_tags"][1]["category_ids"] == [3, 7]
    assert stdout.count("\n") == 1 and "tags\\udcfe.json: 5 frames of 2 videos" in stdout

    code, stdout, err = _cli(["info", str(gt)], capsys)
    assert code == 0 and not err
    assert "path: " + str(gt).replace("\udcff", "\\udcff") in stdout and "videos: 2" in stdout

    results = tmp_path / os.fsdecode(b"res\xfe.json")
    results.write_text(json.dumps([dict(a, score=0.9) for a in json.loads(gt.read_bytes())["annotations"]]))
    code, stdout, err = _cli(["eval", "--gt", str(gt), "--results", str(results), "--json"], capsys)
    assert code == 0 and json.loads(stdout)["AP"] == 1.0


def test_a_missing_file_named_in_bytes_that_are_not_utf8_exits_2_in_one_line(tmp_path, capsys):
    missing = tmp_path / f"{NOT_UTF8}.json"
    code, out, err = _cli(["tags", str(missing), "--out", str(tmp_path / "t.json")], capsys)
    _assert_one_line_exit_2(code, err, f"{tmp_path}/vid\\udcff.json: no such file")
    assert not out and not list(tmp_path.iterdir())


def test_a_utf8_terminal_gets_undecodable_names_escaped_not_a_traceback(tiny_dataset, tmp_path):
    """In a subprocess whose stdout encodes strictly (a UTF-8 locale), as a user's shell runs it."""
    gt = _undecodable_dataset(tiny_dataset)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "training.cli", "tags", os.fsencode(gt), "--out", os.fsencode(tmp_path / "t.json")]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")
    cmd = [sys.executable, "-m", "training.cli", "info", os.fsencode(gt)]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")
    assert b"vid\\udcff.json" in done.stdout


LONG_NAME = "n" * 256 + ".json"  # one component over NAME_MAX (255 bytes)


def _long_path(tmp_path: Path) -> Path:
    """A path of more than PATH_MAX (4096 bytes) whose components are each short enough."""
    return tmp_path.joinpath(*["d" * 200] * 21, "gt.json")


@pytest.mark.parametrize("which", ["name", "path"])
@pytest.mark.parametrize(
    "command", ["tags-in", "tags-out", "info", "eval", "export", "train-cam", "train-cam-out", "flow"]
)
def test_a_path_longer_than_the_os_allows_exits_2_in_one_line_naming_it(tiny_dataset, tmp_path, capsys, which, command):
    long = tmp_path / LONG_NAME if which == "name" else _long_path(tmp_path)
    assert len(os.fsencode(long.name)) > 255 or len(os.fsencode(long)) > 4096
    gt, out = str(tiny_dataset), str(tmp_path / "out.json")
    argv = {
        "tags-in": ["tags", str(long), "--out", out],
        "tags-out": ["tags", gt, "--out", str(long)],
        "info": ["info", str(long)],
        "eval": ["eval", "--gt", gt, "--results", str(long)],
        "export": ["export", gt, "--out", str(long)],
        "train-cam": ["train-cam", str(long), "--out", str(tmp_path / "run"), "--device", "cpu"],
        "train-cam-out": ["train-cam", gt, "--out", str(long.with_suffix("")), "--device", "cpu", "--epochs", "1"],
        "flow": ["flow", str(long), "--out", str(tmp_path / "flow")],
    }[command]
    before = _tree(tmp_path)
    code, stdout, err = _cli(argv, capsys)
    _assert_one_line_exit_2(code, err, "too long")
    assert str(long.with_suffix("") if command == "train-cam-out" else long) in err
    assert _tree(tmp_path) == before and not stdout


def test_coco_json_without_annotations_is_refused_as_coco_not_read_as_videos(tmp_path):
    """Found by the property test above on a fresh clone: COCO gt minus 'annotations' looked like a videos list."""
    from training.data.sources import load_dataset_json

    f = tmp_path / "coco.json"
    f.write_text(json.dumps({k: v for k, v in COCO_GT.items() if k != "annotations"}))
    for read in (load_dataset_json, load_ytvis, load_tags):
        with pytest.raises(InputError, match="COCO JSON") as info:
            read(f)
        _assert_one_line(info.value, f)
