"""The shared training loop: batches, loading, NaN and out-of-memory stops, cancel, config round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import config_from_dict, config_to_dict
from training.errors import TrainingStopped
from training.loop import (
    MemoryHint,
    backward_step,
    epoch_loop,
    is_out_of_memory,
    poly_lr,
)

# 2 epochs of 2 global batches of 8 frames
PLAN = [[list(range(8 * (2 * e + b), 8 * (2 * e + b) + 8)) for b in range(2)] for e in range(2)]


def _loop(tmp_path: Path, step_fn, saves: list, **kw):
    ckpt = tmp_path / "checkpoint.pt"

    def save(step: int, losses: list[float]) -> None:
        saves.append((step, list(losses)))
        ckpt.write_bytes(b"ok")

    return epoch_loop("train-x", 2, lambda e: PLAN[e], step_fn, save, ckpt, **kw)


def _failing_at(step_no: int, exc: BaseException):
    def step_fn(batch, step, total):
        if step + 1 == step_no:
            raise exc
        return {"loss": 1.0}

    return step_fn


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 2147483648 bytes"),
        RuntimeError("CUDA error: out of memory"),
    ],
    ids=["cuda", "cpu-allocator", "cuda-runtime"],
)
def test_out_of_memory_on_a_batch_stops_with_the_batch_size_to_try(tmp_path, exc):
    saves: list = []
    gen = _loop(tmp_path, _failing_at(3, exc), saves, device=torch.device("cpu"))
    with pytest.raises(TrainingStopped) as info:
        list(gen)
    ckpt = tmp_path / "checkpoint.pt"
    assert str(info.value) == (
        "train-x: out of memory on a batch of 8 frames at step 3 (cpu); try --batch-size 4 (or a smaller --crop); "
        f"the last good checkpoint is kept: {ckpt} (epoch 1)"
    )
    assert saves == [(2, [1.0])]  # the epoch-1 checkpoint, nothing saved at the failure


def test_out_of_memory_with_one_item_per_batch_suggests_smaller_items_or_a_lighter_model(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"

    def step_fn(batch, step, total):
        raise torch.OutOfMemoryError("CUDA out of memory")

    hint = MemoryHint("frame pair", "a smaller --min-size/--max-size", "a lighter --backbone")
    gen = epoch_loop("train", 1, lambda e: [[(0, 1)]], step_fn, lambda step, losses: None, ckpt, memory=hint)
    with pytest.raises(TrainingStopped) as info:
        list(gen)
    assert str(info.value) == (
        "train: out of memory on a batch of 1 frame pair at step 1; "
        "try a smaller --min-size/--max-size or a lighter --backbone; no checkpoint was saved yet"
    )


def test_other_runtime_errors_are_not_taken_for_out_of_memory(tmp_path):
    gen = _loop(tmp_path, _failing_at(1, RuntimeError("shapes do not match")), [])
    with pytest.raises(RuntimeError, match="shapes do not match") as info:
        list(gen)
    assert not isinstance(info.value, TrainingStopped)
    assert not is_out_of_memory(ValueError("out of memory"))


def test_a_nan_loss_stops_and_names_the_last_good_checkpoint(tmp_path):
    saves: list = []

    def step_fn(batch, step, total):
        return {"loss": float("nan") if step == 2 else 0.5}

    with pytest.raises(TrainingStopped) as info:
        list(_loop(tmp_path, step_fn, saves))
    message = str(info.value)
    assert message.startswith("train-x: loss became nan at epoch 2 step 3; training stopped")
    assert message.endswith(
        f"the last good checkpoint is kept: {tmp_path / 'checkpoint.pt'} (epoch 1); try a lower --lr"
    )
    assert saves == [(2, [0.5])]


def test_the_loader_gets_the_remaining_batches_of_each_epoch_and_steps_get_what_it_loads(tmp_path):
    loads, seen = [], []

    def load(epoch, slices):
        loads.append((epoch, [b[0] for b in slices]))
        return (("loaded", epoch, b[0]) for b in slices)

    def step_fn(batch, step, total):
        seen.append((step, batch))
        return {"loss": 1.0}

    events = list(_loop(tmp_path, step_fn, [], start_step=1, epoch_losses=[], load=load))
    assert loads == [(0, [8]), (1, [16, 24])]  # resumed at step 1: epoch 0 starts at its second batch
    assert seen == [(1, ("loaded", 0, 8)), (2, ("loaded", 1, 16)), (3, ("loaded", 1, 24))]
    assert [e.done for e in events if "loss" in e.metrics] == [2, 3, 4]
    assert events[-1].message.startswith("epoch 2/2: mean loss 1.0000")


def test_closing_the_generator_saves_the_steps_done(tmp_path):
    saves: list = []
    gen = _loop(tmp_path, lambda b, s, t: {"loss": 2.0}, saves)
    for event in gen:
        if event.done == 3 and "loss" in event.metrics:
            break
    gen.close()
    assert saves == [(2, [2.0]), (3, [2.0, 2.0])]  # mid-epoch: the epoch's loss sum so far comes last


def test_a_run_cancelled_mid_epoch_resumes_to_the_epoch_losses_of_an_uncut_run(tmp_path):
    def step_fn(batch, step, total):
        return {"loss": float(step + 1)}

    for name in ("whole", "cut"):
        (tmp_path / name).mkdir()
    whole: list = []
    list(_loop(tmp_path / "whole", step_fn, whole))
    cut: list = []
    gen = _loop(tmp_path / "cut", step_fn, cut)
    for event in gen:
        if event.done == 3 and "loss" in event.metrics:
            break
    gen.close()
    step, losses = cut[-1]
    resumed: list = []
    list(_loop(tmp_path / "cut", step_fn, resumed, start_step=step, epoch_losses=losses))
    assert resumed[-1] == whole[-1] == (4, [1.5, 3.5])


def test_backward_step_skips_a_non_finite_loss_and_steps_on_a_finite_one():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    assert backward_step((w * float("inf")).sum(), opt) == float("inf")
    assert w.grad is None and w.item() == 1.0
    assert backward_step((w * 2).sum(), opt) == 2.0
    assert w.item() == 0.0  # 1 - 0.5 * 2


def test_poly_lr_decays_to_zero():
    assert poly_lr(0.1, 0, 10) == 0.1
    assert poly_lr(0.1, 10, 10) == 0.0
    assert poly_lr(0.1, 5, 10) == pytest.approx(0.1 * 0.5**0.9)


def test_a_config_survives_json_with_its_tuples():
    from training.cam.train import CAMTrainConfig

    config = CAMTrainConfig(arch="resnet18", scale_range=(0.5, 1.5), crop=64)
    data = config_to_dict(config)
    assert data["scale_range"] == [0.5, 1.5]
    assert config_from_dict(CAMTrainConfig, data, "run/config.json", "train-cam") == config
    assert CAMTrainConfig.from_dict(config.to_dict()) == config


def test_a_run_saved_before_a_config_field_existed_resumes_with_its_default_and_refuses_another(tmp_path):
    """A step-2 run started before `maskcon_first` existed has no such key: it ran with the default."""
    import json

    from training.detection.train import DetectionTrainConfig
    from training.errors import InputError
    from training.loop import check_resumable

    config = DetectionTrainConfig(step=2)
    saved = config_to_dict(config)
    del saved["maskcon_first"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_resumable(tmp_path, config, (), "train")
    with pytest.raises(InputError, match="started with maskcon_first=False, now maskcon_first=True"):
        check_resumable(tmp_path, DetectionTrainConfig(step=2, maskcon_first=True), (), "train")
