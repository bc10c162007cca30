"""Training the CAM classifier: finite loss, exact resume, NaN guard, refused inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SCALER_STATE, synthetic_tags

from training.cam import train as cam_train
from training.cam.data import TagFrames
from training.cam.train import CAMTrainConfig, average_precision, classification_map, load_run, train_cam
from training.checkpoint import load_checkpoint
from training.errors import InputError
from training.sampling import epoch_batches

TINY = CAMTrainConfig(arch="resnet18", epochs=2, batch_size=4, crop=64, seed=3, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """2 synthetic videos x 4 frames of 64x80; returns tags.json."""
    return synthetic_tags(tmp_path_factory.mktemp("synthetic"))


def _run(config, tags, out, **kw):
    return list(train_cam(config, tags, out, **kw))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_few_iterations_give_finite_losses_and_a_loadable_run(dataset, tmp_path):
    events = _run(TINY, dataset, tmp_path / "run")
    losses = [e.metrics["loss"] for e in events if "loss" in e.metrics]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert events[-1].done == events[-1].total == 4 and "epoch 2/2" in events[-1].message
    model, categories, ckpt = load_run(tmp_path / "run")
    assert [c["id"] for c in categories] == [1, 2, 3, 4] and model.n_classes == 4
    assert json.loads((tmp_path / "run" / "config.json").read_text())["arch"] == "resnet18"
    assert load_checkpoint(ckpt)["step"] == 4


def test_resume_after_an_interruption_gives_the_same_weights_bit_for_bit(dataset, tmp_path, loss_scaling):
    _run(TINY, dataset, tmp_path / "straight")
    gen = train_cam(TINY, dataset, tmp_path / "interrupted")
    for event in gen:
        if event.done == 3:  # in the middle of epoch 2
            break
    gen.close()  # what the GUI's cancel does: the checkpoint is saved
    assert load_checkpoint(tmp_path / "interrupted" / "checkpoint.pt")["step"] == 3
    resumed = _run(TINY, dataset, tmp_path / "interrupted", resume=True)
    assert [e.done for e in resumed if "loss" in e.metrics] == [4]
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "interrupted" / "checkpoint.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert b["scaler"] == SCALER_STATE and loss_scaling == [SCALER_STATE]  # AMP's loss scale goes on where it was


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    real = cam_train.cam_loss
    calls = []

    def loss_going_nan(logits, targets):
        calls.append(1)
        value = real(logits, targets)
        return value * float("nan") if len(calls) == 3 else value

    monkeypatch.setattr(cam_train, "cam_loss", loss_going_nan)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    saved = None
    with pytest.raises(RuntimeError) as info:
        for event in train_cam(TINY, dataset, tmp_path / "run"):
            if "epoch 1/2" in event.message:
                saved = _sha(ckpt)
    message = str(info.value)
    assert "loss became nan" in message and "epoch 2 step 3" in message and str(ckpt) in message
    assert "\n" not in message
    assert saved is not None and _sha(ckpt) == saved
    assert load_checkpoint(ckpt)["step"] == 2


def test_a_video_without_tags_is_refused_naming_it_and_nothing_is_written(dataset, tmp_path):
    tags = json.loads(dataset.read_text())
    tags["frame_tags"] = [t for t in tags["frame_tags"] if t["video_id"] != 2]
    bad = dataset.parent / "tags-without-video-2.json"
    bad.write_text(json.dumps(tags))
    with pytest.raises(InputError, match=r"video 2 \(synth_0001\) has no frame_tags entries"):
        _run(TINY, bad, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_corrupt_frame_is_named_and_no_checkpoint_is_written(dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset.parent / "JPEGImages", root / "JPEGImages")
    shutil.copy(dataset, root / "tags.json")
    frame = root / "JPEGImages" / "synth_0001" / "00002.jpg"
    frame.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(InputError) as info:
        _run(TINY, root / "tags.json", tmp_path / "run")
    assert str(frame) in str(info.value) and "frame 2" in str(info.value)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_an_existing_run_is_not_overwritten_without_resume(dataset, tmp_path):
    one_epoch = CAMTrainConfig(arch="resnet18", epochs=1, batch_size=8, crop=64, device="cpu")
    _run(one_epoch, dataset, tmp_path / "run")
    with pytest.raises(InputError, match="pass --resume"):
        _run(one_epoch, dataset, tmp_path / "run")
    with pytest.raises(InputError, match="started with crop=64, now crop=96"):
        _run(CAMTrainConfig(arch="resnet18", epochs=1, batch_size=8, crop=96), dataset, tmp_path / "run", resume=True)


def test_batches_and_augmentation_depend_only_on_seed_epoch_and_frame(dataset):
    assert epoch_batches(10, 4, seed=1, epoch=2) == epoch_batches(10, 4, seed=1, epoch=2)
    assert epoch_batches(10, 4, seed=1, epoch=2) != epoch_batches(10, 4, seed=1, epoch=3)
    assert [len(b) for b in epoch_batches(10, 4, 0, 0)] == [4, 4]  # the last partial batch is dropped
    frames = TagFrames(dataset, crop=48, seed=5)
    frames.set_epoch(1)
    x, y = frames[6]
    assert x.shape == (3, 48, 48) and y.tolist() == frames.items[6].target.tolist()
    frames.set_epoch(0)
    _ = frames[0]
    frames.set_epoch(1)
    assert torch.equal(frames[6][0], x)


def test_average_precision_and_map():
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, False, True])) == pytest.approx(5 / 6)
    scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.5, 0.3]])
    targets = np.array([[1, 0], [0, 1], [1, 0]])
    assert classification_map(scores, targets) == 1.0
    assert np.isnan(classification_map(scores, np.zeros((3, 2))))


def test_channel_shuffle_permutes_colours_and_keeps_the_layout():
    from training.cam.data import augment
    from training.sampling import seeded_generator

    image = np.zeros((32, 32, 3), np.uint8)
    image[8:16, 8:16] = (255, 128, 0)
    changed = 0
    for seed in range(12):
        plain = augment(image, 32, (1.0, 1.0), seeded_generator(seed))
        shuffled = augment(image, 32, (1.0, 1.0), seeded_generator(seed), channel_shuffle=1.0)
        changed += not torch.equal(plain, shuffled)
        assert torch.equal(plain.std(0) > 0.5, shuffled.std(0) > 0.5)  # the orange square is where it was
    assert changed >= 6  # 5 of the 6 channel orders change the colours


def test_out_of_memory_on_a_batch_exits_1_with_the_batch_size_to_try(dataset, tmp_path, monkeypatch, capsys):
    from training.cam.network import CAMNet
    from training.cli import main

    real, calls = CAMNet.forward, []

    def forward_running_out_of_memory(self, x):
        calls.append(1)
        if len(calls) == 3:  # the first batch of epoch 2
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x)

    monkeypatch.setattr(CAMNet, "forward", forward_running_out_of_memory)
    run = tmp_path / "run"
    args = ["--arch", "resnet18", "--epochs", "2", "--batch-size", "4", "--crop", "64", "--device", "cpu"]
    assert main(["train-cam", str(dataset), "--out", str(run), *args, "--progress", "json"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "vis-ws train-cam: stopped: train-cam: out of memory on a batch of 4 frames at step 3 (cpu); "
        f"try --batch-size 2 (or a smaller --crop); the last good checkpoint is kept: {run / 'checkpoint.pt'} "
        "(epoch 1)\n"
    )
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2


def test_a_run_trained_with_lse_pooling_loads_back_with_it(dataset, tmp_path):
    import dataclasses

    config = dataclasses.replace(TINY, epochs=1, pooling="lse")
    _run(config, dataset, tmp_path / "run")
    model, _, _ = load_run(tmp_path / "run")
    assert model.pooling == "lse"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["pooling"] == "lse"
    with pytest.raises(InputError, match="--pooling"):
        dataclasses.replace(TINY, pooling="max")
