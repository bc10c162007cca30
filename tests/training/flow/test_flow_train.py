"""RAFT-small: inference, local weights, unsupervised losses, training with checkpoints, ``vis-ws train-flow``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy import ndimage

from training.checkpoint import load_checkpoint
from training.cli import main
from training.errors import InputError
from training.flow import estimate_flow, read_video_flow
from training.flow.config import FlowTrainConfig
from training.flow.losses import census_distance, photometric_loss, smoothness_loss, unsupervised_flow_loss
from training.flow.raft import build_raft, load_raft, raft_flow, weights_fingerprint
from training.flow.train import LossNotFiniteError, train_flow
from training.flow.warp import warp_tensor

SHIFT = (2.0, 1.0)


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.random((h, w, 3)), (1.5, 1.5, 0))
    return ((tex - tex.min()) / (tex.max() - tex.min()) * 255).astype(np.float32)


def moving_texture(folder: Path, n: int, h: int = 128, w: int = 144, step=SHIFT) -> Path:
    """A folder of PNG frames of a texture moving ``step`` px per frame (frame t+1 at x + step = frame t at x)."""
    folder.mkdir(parents=True, exist_ok=True)
    tex = texture(h + 64, w + 64)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for t in range(n):
        frame = cv2.remap(tex, xs + 32 - step[0] * t, ys + 32 - step[1] * t, cv2.INTER_CUBIC)
        iio.imwrite(folder / f"{t:05d}.png", np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return folder


def tiny_config(video: Path, **changes) -> FlowTrainConfig:
    """A few cheap iterations: one pair per batch, 128x128 crops (RAFT's minimum), one refinement."""
    config = FlowTrainConfig(
        input=str(video),
        iterations=4,
        batch_size=1,
        crop=(128, 128),
        flow_updates=1,
        warmup=1,
        lr=5e-4,
        checkpoint_every=2,
        occlusion_after=2,
        seed=0,
        device="cpu",
    )
    return replace(config, **changes)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return moving_texture(tmp_path_factory.mktemp("video") / "clip", 3)


def state_of(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.pt")["model"]


# --- inference and weights --------------------------------------------------


def test_raft_flow_has_the_frame_size_even_below_its_minimum_input():
    model = load_raft()
    rng = np.random.default_rng(0)
    frame0, frame1 = (rng.integers(0, 255, (50, 70, 3), dtype=np.uint8) for _ in range(2))
    flow = raft_flow(model, frame0, frame1)
    assert flow.shape == (50, 70, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    np.testing.assert_array_equal(estimate_flow(frame0, frame1, "raft", model=model), flow)


@pytest.mark.parametrize("layout", ["state_dict", "checkpoint"])
def test_raft_weights_load_from_a_local_file(tmp_path, layout):
    source = build_raft(seed=7)
    path = tmp_path / "raft_small.pth"
    state = source.state_dict()
    torch.save(state if layout == "state_dict" else {"model": state, "config": {"flow_updates": 3}}, path)
    model = load_raft(path)
    assert weights_fingerprint(model) == weights_fingerprint(source) != weights_fingerprint(build_raft(seed=0))
    assert model.flow_updates == (12 if layout == "state_dict" else 3)


def test_weights_of_another_network_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), path)
    with pytest.raises(InputError, match="not RAFT-small weights") as info:
        load_raft(path)
    assert str(path) in str(info.value)


# --- losses -----------------------------------------------------------------


def test_photometric_losses_are_lowest_at_the_true_flow(tmp_path):
    frames = sorted(moving_texture(tmp_path / "v", 2, 64, 64).iterdir())
    image0, image1 = (torch.from_numpy(iio.imread(f)).permute(2, 0, 1)[None].float() / 255 for f in frames)
    visible = torch.ones(1, 1, 64, 64)
    for kind in ("census", "ssim"):
        losses = {}
        for name, shift in {"true": SHIFT, "zero": (0.0, 0.0), "wrong": (-2.0, 1.0)}.items():
            flow = torch.tensor(shift).view(1, 2, 1, 1).expand(1, 2, 64, 64)
            losses[name] = float(photometric_loss(image0, warp_tensor(image1, flow), visible, kind))
        assert losses["true"] < 0.5 * min(losses["zero"], losses["wrong"]), (kind, losses)


def test_census_distance_ignores_a_brightness_offset():
    image = torch.from_numpy(texture(32, 32)).permute(2, 0, 1)[None] / 255
    brighter = census_distance(image, image + 0.1)
    other = census_distance(image, image.flip(-1))
    assert brighter.max() < 0.16 < 0.5 < other.mean()  # 0.01 ** 0.4 = 0.158: the distance of identical images


def test_smoothness_is_zero_for_constant_flow_and_cheaper_across_image_edges():
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8:] = 1.0  # a vertical edge
    constant = torch.full((1, 2, 16, 16), 3.0)
    assert float(smoothness_loss(constant, image)) == 0.0
    step_at_edge = torch.zeros(1, 2, 16, 16)
    step_at_edge[..., 8:] = 4.0
    step_elsewhere = torch.zeros(1, 2, 16, 16)
    step_elsewhere[..., 4:] = 4.0
    assert float(smoothness_loss(step_at_edge, image)) < 0.01 * float(smoothness_loss(step_elsewhere, image))


def test_occlusion_masks_that_flag_most_pixels_are_dropped():
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    wild = [torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(1)) * 20]
    _, parts = unsupervised_flow_loss(image, image, wild, wild, use_occlusion=True)
    assert parts["occluded"] == 0.0 and parts["photometric"] > 0


# --- training ---------------------------------------------------------------


def test_training_lowers_the_loss_on_a_moving_texture(video, tmp_path):
    config = tiny_config(video, iterations=12, checkpoint_every=100, occlusion_after=100)
    losses = [event.metrics["loss"] for event in train_flow(config, tmp_path / "run")]
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])


def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_run(video, tmp_path):
    events = list(train_flow(tiny_config(video), tmp_path / "whole"))
    assert [e.done for e in events] == [1, 2, 3, 4] and "saved" in events[1].message
    list(train_flow(tiny_config(video, iterations=2), tmp_path / "split"))
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 2
    resumed = list(train_flow(tiny_config(video), tmp_path / "split", resume=True))
    assert [e.done for e in resumed] == [3, 4]
    whole, split = state_of(tmp_path / "whole"), state_of(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    # config.json keeps the settings the run started with; the checkpoint, those it ended with
    saved = json.loads((tmp_path / "split" / "config.json").read_text())
    assert FlowTrainConfig.from_dict(saved) == tiny_config(video, iterations=2)
    ended = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["config"]
    assert FlowTrainConfig.from_dict(ended) == tiny_config(video)


def test_stopping_training_between_iterations_saves_a_checkpoint(video, tmp_path):
    events = train_flow(tiny_config(video, iterations=5, checkpoint_every=100), tmp_path / "run")
    assert next(events).done == 1
    events.close()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 1


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(video, tmp_path, monkeypatch):
    import training.flow.train as train_module

    calls = []

    def poisoned(*args, **kwargs):
        loss, parts = unsupervised_flow_loss(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 3 else loss), parts

    monkeypatch.setattr(train_module, "unsupervised_flow_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(LossNotFiniteError, match="became nan at iteration 3") as info:
        list(train_flow(tiny_config(video), run))
    assert str(run) in str(info.value) and "\n" not in str(info.value)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2


def test_an_existing_run_is_not_overwritten_and_a_changed_one_not_resumed(video, tmp_path):
    run = tmp_path / "run"
    list(train_flow(tiny_config(video, iterations=2), run))
    with pytest.raises(InputError, match="pass --resume"):
        list(train_flow(tiny_config(video), run))
    with pytest.raises(InputError, match="started with lr=0.0005, now lr=0.001"):
        list(train_flow(tiny_config(video, lr=1e-3), run, resume=True))


@pytest.mark.parametrize("crop", [(64, 64), (128, 132)])
def test_crops_raft_cannot_take_are_refused(video, tmp_path, crop):
    with pytest.raises(InputError, match="--crop"):
        list(train_flow(tiny_config(video, crop=crop), tmp_path / "run"))


def test_videos_smaller_than_the_crop_are_refused_naming_them(video, tmp_path):
    with pytest.raises(InputError, match="'clip' is 144x128, smaller than the crop 160x128"):
        list(train_flow(tiny_config(video, crop=(128, 160)), tmp_path / "run"))


# --- vis-ws train-flow, then vis-ws flow --method raft ----------------------


def test_a_trained_run_computes_flow_from_the_command_line(video, tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train-flow", str(video), "--out", str(run), "--iterations", "2", "--batch-size", "1"]
    train += ["--crop", "128", "128", "--flow-updates", "1", "--device", "cpu", "--progress", "json"]
    assert main(train) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["stage"], e["done"]) for e in events] == [("train-flow", 1), ("train-flow", 2)]
    assert json.loads((run / "config.json").read_text())["input"] == str(video.resolve())
    flow_dir = tmp_path / "flow"
    flow = ["flow", str(video), "--out", str(flow_dir), "--method", "raft", "--model", str(run), "--progress", "json"]
    assert main(flow) == 0
    flow = read_video_flow(flow_dir, "clip")
    assert flow.data.shape == (2, 128, 144, 5) and flow.meta["method"] == "raft"
    assert flow.meta["config"]["flow_updates"] == 1 and len(flow.meta["config"]["weights"]) == 16
