"""Shared backend pieces: devices, checkpoints, progress, video sources, flow storage."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch

from training.checkpoint import load_checkpoint, save_checkpoint
from training.data.sources import iter_videos, video_key
from training.device import resolve_device
from training.errors import InputError
from training.flow.motion import camera_motion, remove_camera_motion
from training.flow.storage import flow_done, flow_writer, read_video_flow
from training.progress import Progress, drive


def test_auto_device_is_cpu_here_and_bad_specs_are_refused():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_checkpoint_round_trip_and_no_code_execution(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "iteration": 7, "config": {"lr": 0.1}}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["iteration"] == 7 and torch.equal(back["model"]["w"], torch.arange(3.0))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(InputError, match=r"evil\.pt: not a loadable weights-only checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")


def test_progress_json_lines_carry_stage_counts_and_metrics():
    out = io.StringIO()
    events = (Progress("train", i, 3, metrics={"loss": 1.0 / i}) for i in (1, 2, 3))
    last = drive(events, json_lines=True, stream=out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["done"] for x in lines] == [1, 2, 3] and lines[-1]["metrics"]["loss"] == pytest.approx(1 / 3)
    assert lines[0]["event"] == "progress" and last.done == 3


def test_video_sources_cover_datasets_and_plain_videos(tiny_dataset, real_clip):
    sources = list(iter_videos(tiny_dataset))
    assert [s.key for s in sources] == ["v1", "v2"] and sources[1].reader.shape == (2, 20, 30, 3)
    assert [s.video["id"] for s in iter_videos(tiny_dataset, video_ids=[2])] == [2]
    (clip,) = iter_videos(real_clip)
    assert clip.key == "bikes" and clip.video["length"] == 250
    assert video_key({"id": 3, "name": "../a b"}) == "_a_b"


def test_flow_storage_is_lazy_and_records_its_method(tmp_path):
    with flow_writer(tmp_path, "v", 3, 4, 5, {"method": "dis"}) as arr:
        arr[0, ..., 0] = 1.5
        arr[1, ..., 2] = -2.0
        arr[1, 0, 0, 4] = 1
    flow = read_video_flow(tmp_path, "v")
    assert isinstance(flow.data, np.memmap) and flow.meta["method"] == "dis"
    assert flow.forward(0)[0, 0].tolist() == [1.5, 0.0]
    assert flow.motion(2)[0, 0].tolist() == [2.0, 0.0]  # last frame: negated backward flow
    assert flow.occlusion(1)[0, 0] and not flow.occlusion(1)[1, 1]
    assert flow_done(tmp_path, "v", {"method": "dis", "n_frames": 3})
    assert not flow_done(tmp_path, "v", {"method": "raft"})


def test_interrupted_flow_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), flow_writer(tmp_path, "v", 3, 4, 5, {"method": "dis"}):
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="run 'vis-ws flow' first"):
        read_video_flow(tmp_path, "v")


def test_camera_motion_is_the_median_flow():
    flow = np.zeros((10, 10, 2), np.float32)
    flow[...] = (3.0, -1.0)
    flow[:3, :3] = (10.0, 10.0)  # a moving object on a panning background
    assert camera_motion(flow).tolist() == [3.0, -1.0]
    rel = remove_camera_motion(flow)
    assert np.abs(rel[5:, 5:]).max() == 0 and rel[0, 0].tolist() == [7.0, 11.0]


def test_progress_bar_mode_works_when_stderr_is_not_a_terminal(capsys):
    events = [Progress("flow", 1, 2, message="first"), Progress("flow", 2, 2), Progress("cams", 1, 1)]
    last = drive(iter(events))
    assert last.stage == "cams" and "first" in capsys.readouterr().out + capsys.readouterr().err
