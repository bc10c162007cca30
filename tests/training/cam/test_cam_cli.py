"""``vis-ws train-cam`` and ``vis-ws cams``: a tiny run end to end, per-frame files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.cam.fcam import AMPLIFICATION, THRESHOLD
from training.cam.store import read_frame_cams
from training.cli import main
from training.flow.storage import flow_writer

TRAIN = ["--arch", "resnet18", "--epochs", "1", "--batch-size", "8", "--crop", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A 2-video x 4-frame synthetic set and a 1-epoch run on it: (tags.json, run folder)."""
    from training.synthetic import SyntheticConfig, generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    config = SyntheticConfig(
        n_videos=2, n_frames=4, height=64, width=80, size_range=(12.0, 32.0), object_speed=(1.0, 3.0)
    )
    tags = generate_dataset(root, config)["tags"]
    run = root / "run"
    assert main(["train-cam", str(tags), "--out", str(run), *TRAIN, "--progress", "json"]) == 0
    return tags, run


def _write_flow(flow_dir: Path, key: str) -> None:
    with flow_writer(flow_dir, key, n_frames=4, height=64, width=80, meta={"method": "test"}) as arr:
        arr[:] = 0
        arr[:, 16:32, 20:40, 0] = 4.0  # an object moving 4 px/frame right on a still background


def test_train_cam_streams_json_progress_and_writes_the_run(trained, capsys):
    _, run = trained
    assert {p.name for p in run.iterdir()} >= {"checkpoint.pt", "config.json", "categories.json"}
    assert json.loads((run / "categories.json").read_text())[0] == {"id": 1, "name": "disc"}


def test_cams_writes_one_file_per_frame_with_the_tagged_keys_and_fcams(trained, tmp_path, capsys):
    tags, run = trained
    flow = tmp_path / "flow"
    for key in ("synth_0000", "synth_0001"):
        _write_flow(flow, key)
    out = tmp_path / "cams"
    args = ["cams", str(tags), "--model", str(run), "--out", str(out), "--flow", str(flow), "--device", "cpu"]
    assert main([*args, "--progress", "json"]) == 0
    assert "wrote CAMs and f-CAMs of 8 frames" in capsys.readouterr().out
    frame_tags = json.loads(tags.read_text())["frame_tags"]
    for entry, key in zip(frame_tags, ["synth_0000"] * 4 + ["synth_0001"] * 4, strict=True):
        maps = read_frame_cams(out, key, entry["frame"])
        k = len(entry["category_ids"])
        assert maps.keys.tolist() == entry["category_ids"]
        assert maps.cams.shape == maps.fcams.shape == (k, 16, 20)
        assert maps.high_res.shape == maps.fcams_high_res.shape == (k, 64, 80)
        assert 0 <= maps.cams.min() and maps.cams.max() <= 1 and maps.fcams.max() <= 1
    with np.load(out / "synth_0000" / "00000.npz") as z:
        assert z["cams"].dtype == np.float16 and z["keys"].dtype == np.int32
    record = json.loads((out / "synth_0000" / "cams.json").read_text())
    assert record["fcam"] == {"amplification": AMPLIFICATION, "threshold": THRESHOLD}
    assert len(record["checkpoint_sha256"]) == 64

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert main([*args, "--progress", "json"]) == 0  # same model and parameters: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == before


def test_frames_without_tags_get_empty_maps(trained, tmp_path):
    tags, run = trained
    data = json.loads(tags.read_text())
    data["frame_tags"][0]["category_ids"] = []
    untagged = tags.parent / "tags-untagged-frame.json"
    untagged.write_text(json.dumps(data))
    out = tmp_path / "cams"
    args = ["cams", str(untagged), "--model", str(run), "--out", str(out), "--device", "cpu", "--progress", "json"]
    assert main(args) == 0
    maps = read_frame_cams(out, "synth_0000", 0)
    assert maps.keys.shape == (0,) and maps.cams.shape == (0, 16, 20) and maps.high_res.shape == (0, 64, 80)
    assert maps.fcams is None


def test_tags_naming_an_unknown_category_exit_2_with_one_line(trained, tmp_path, capsys):
    tags, _ = trained
    data = json.loads(tags.read_text())
    data["frame_tags"][5]["category_ids"] = [99]
    bad = tags.parent / "tags-unknown-category.json"
    bad.write_text(json.dumps(data))
    assert main(["train-cam", str(bad), "--out", str(tmp_path / "run"), *TRAIN]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "unknown category id 99" in err
    assert not (tmp_path / "run").exists()


def test_cams_without_flow_for_a_video_exit_2_before_writing(trained, tmp_path, capsys):
    tags, run = trained
    flow = tmp_path / "flow"
    _write_flow(flow, "synth_0000")  # none for synth_0001
    out = tmp_path / "cams"
    code = main(["cams", str(tags), "--model", str(run), "--out", str(out), "--flow", str(flow), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no flow for video 'synth_0001'" in err
    assert not out.exists()


def test_cams_needs_a_run_folder(trained, tmp_path, capsys):
    tags, _ = trained
    assert main(["cams", str(tags), "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "not a train-cam run folder" in capsys.readouterr().err


def test_ctrl_c_finishes_the_step_saves_the_checkpoint_and_exits_as_interrupted(trained, tmp_path):
    import os
    import signal

    from training.cam.train import CAMTrainConfig, train_cam
    from training.checkpoint import load_checkpoint
    from training.progress import stop_on_interrupt

    tags, _ = trained
    config = CAMTrainConfig(arch="resnet18", epochs=1, batch_size=4, crop=64, device="cpu")
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the test run was started in the background
    events = stop_on_interrupt(train_cam(config, tags, tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        for event in events:
            if event.metrics.get("loss") is not None and event.done == 1:
                os.kill(os.getpid(), signal.SIGINT)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 1
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back
