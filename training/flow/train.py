"""Unsupervised training of RAFT-small on the user's videos (``vis-ws train-flow``).

Random consecutive frame pairs, random crops, both flow directions in one
batch, the losses of :mod:`training.flow.losses`, AdamW. The run folder is
the house's (:class:`training.loop.TrainingRun`): ``config.json`` (the
:class:`FlowTrainConfig`) and ``checkpoint.pt`` (model, optimizer, loss
scaler, ``step`` = iterations done, the pair sampler's RNG state as
``sampler``, config), rewritten atomically every ``checkpoint_every``
iterations, at the end and when the run is stopped between iterations.
Resuming continues exactly where the checkpoint left off: on CPU with one
seed, an interrupted and resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.config import config_to_dict
from training.data.sources import VideoSource, iter_videos
from training.device import describe_device, resolve_device
from training.errors import InputError, TrainingStopped
from training.flow.config import CHECKPOINT_NAME, CONFIG_NAME, PHOTOMETRIC, FlowTrainConfig
from training.flow.losses import unsupervised_flow_loss
from training.flow.raft import RAFT_MIN_SIZE, RAFT_STRIDE, build_raft, load_raft_weights
from training.loop import MixedPrecision, TrainingRun, prepare_run
from training.progress import Progress

STAGE = "train-flow"
# fields that may change when a run is resumed: where it runs, how long, how often it saves
RESUMABLE_CHANGES = ("iterations", "device", "checkpoint_every", "amp")


class LossNotFiniteError(TrainingStopped):
    """The training loss became NaN or infinite (the message is one line naming the run)."""


def check_config(config: FlowTrainConfig) -> None:
    """Raise InputError (one line, naming the option) for settings that cannot train."""
    for name in ("iterations", "batch_size", "flow_updates", "checkpoint_every"):
        if getattr(config, name) < 1:
            raise InputError(None, f"--{name.replace('_', '-')} must be at least 1")
    h, w = config.crop
    if h < RAFT_MIN_SIZE or w < RAFT_MIN_SIZE or h % RAFT_STRIDE or w % RAFT_STRIDE:
        raise InputError(
            None, f"--crop {h} {w}: height and width must be multiples of {RAFT_STRIDE} and at least {RAFT_MIN_SIZE}"
        )
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise InputError(None, f"--lr {config.lr}: must be a positive number")
    if config.photometric not in PHOTOMETRIC:
        raise InputError(None, f"photometric loss {config.photometric!r}: expected one of {', '.join(PHOTOMETRIC)}")


def training_pairs(sources: list[VideoSource], crop: tuple[int, int]) -> list[tuple[int, int]]:
    """Every (video index, frame t) with a frame t+1, checking the frames fit the crop.

    Raises
    ------
    InputError
        A video smaller than the crop, or no video with two frames.
    """
    pairs: list[tuple[int, int]] = []
    for i, source in enumerate(sources):
        h, w = source.reader.frame_shape
        if len(source.reader) < 2:
            continue
        if h < crop[0] or w < crop[1]:
            raise InputError(
                source.reader.path,
                f"video {source.key!r} is {w}x{h}, smaller than the crop {crop[1]}x{crop[0]} (pass a smaller --crop)",
            )
        pairs.extend((i, t) for t in range(len(source.reader) - 1))
    if not pairs:
        raise InputError(None, "no video with at least two frames to learn flow from")
    return pairs


def sample_batch(
    sources: list[VideoSource],
    pairs: list[tuple[int, int]],
    crop: tuple[int, int],
    batch_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of random consecutive frame pairs.

    Returns
    -------
    image0, image1 : (batch_size, 3, crop_h, crop_w) float32 in [0, 1]
    """
    ch, cw = crop
    first: list[torch.Tensor] = []
    second: list[torch.Tensor] = []
    for _ in range(batch_size):
        v, t = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
        source = sources[v]
        h, w = source.reader.frame_shape
        y = int(torch.randint(h - ch + 1, (1,), generator=generator))
        x = int(torch.randint(w - cw + 1, (1,), generator=generator))
        for frames, index in ((first, t), (second, t + 1)):
            frame = source.reader.read(index)[y : y + ch, x : x + cw]
            frames.append(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1))
    return torch.stack(first).float() / 255.0, torch.stack(second).float() / 255.0


def learning_rate(config: FlowTrainConfig, iteration: int) -> float:
    """Learning rate of step ``iteration`` (0-based): linear warm-up, then constant."""
    return config.lr * min(1.0, (iteration + 1) / max(config.warmup, 1))


def train_flow(config: FlowTrainConfig, out_dir: str | os.PathLike, resume: bool = False) -> Iterator[Progress]:
    """Train RAFT-small on INPUT's videos without flow ground truth.

    The run folder, resume, loss scaling and checkpoint are the house's
    :class:`~training.loop.TrainingRun`; the loop is per iteration (random
    pairs, no epochs) and clips the gradient norm.

    Parameters
    ----------
    config : FlowTrainConfig
    out_dir : path
        The run folder (``config.json``, ``checkpoint.pt``).
    resume : bool
        Continue the run in ``out_dir`` from its checkpoint; only
        ``iterations``, ``device``, ``checkpoint_every`` and ``amp`` may differ.

    Yields
    ------
    Progress
        One per iteration (stage ``"train-flow"``) with ``loss``,
        ``photometric``, ``smoothness``, ``occluded`` and ``lr``; a message
        when a checkpoint is written. Closing the generator saves a
        checkpoint of the last completed iteration.

    Raises
    ------
    InputError
        Bad settings or input videos; an existing run without ``resume``; a
        run whose settings differ.
    LossNotFiniteError
        (a RuntimeError) The loss became NaN or infinite; the last good checkpoint is kept.
    """
    check_config(config)
    out = Path(out_dir)
    resumed = prepare_run(out, resume)
    if resume and not resumed:
        raise InputError(out / CHECKPOINT_NAME, "no checkpoint to resume from (run without --resume to start)")
    sources = list(iter_videos(config.input, config.frames))
    pairs = training_pairs(sources, config.crop)
    device = resolve_device(config.device)
    model = build_raft(config.seed)
    if config.weights and not resumed:
        load_raft_weights(model, config.weights)
    optimizer = torch.optim.AdamW(model.train().parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = TrainingRun(STAGE, out, config, model, optimizer, device)
    start, _, state = run.open(resumed, RESUMABLE_CHANGES, {CONFIG_NAME: config_to_dict(config)})
    generator = torch.Generator().manual_seed(config.seed)
    if resumed:
        generator.set_state(sampler_state(state, run.checkpoint))
    if start >= config.iterations:
        yield Progress(STAGE, start, config.iterations, "it", message=f"already trained for {start} iterations")
        return
    where = f"{len(pairs)} frame pairs of {len(sources)} videos on {describe_device(device)}"
    saved = start

    def save(done: int) -> None:
        nonlocal saved
        run.save(done, [], sampler=generator.get_state())
        saved = done

    for it in range(start, config.iterations):
        image0, image1 = sample_batch(sources, pairs, config.crop, config.batch_size, generator)
        lr = learning_rate(config, it)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, parts = training_step(run.net, image0.to(device), image1.to(device), config, it, run.precision)
        clipped_step(run, loss, config.grad_clip, it + 1, saved)
        done = it + 1
        message = f"training RAFT-small on {where}" if it == start else ""
        if done % config.checkpoint_every == 0 or done == config.iterations:
            save(done)
            message = f"iteration {done}: saved {run.checkpoint}"
        metrics = {"loss": float(loss.detach()), **parts, "lr": lr}
        try:
            yield Progress(STAGE, done, config.iterations, "it", metrics, message)
        except GeneratorExit:
            # stopped between iterations (GUI cancel): the state is consistent, keep it
            if saved != done:
                save(done)
            raise


def sampler_state(state: dict[str, Any], path: Path) -> torch.Tensor:
    """The pair sampler's RNG state saved in a flow checkpoint (InputError naming ``path`` if absent)."""
    sampler = state.get("sampler")
    if not isinstance(sampler, torch.Tensor):
        raise InputError(path, f"not a {STAGE} checkpoint of this run (no sampler state)")
    return sampler.cpu()


def clipped_step(run: TrainingRun, loss: torch.Tensor, clip: float, iteration: int, saved: int) -> None:
    """Back-propagate ``loss``, clip the gradient norm to ``clip`` and step ``run``'s optimizer.

    Raises
    ------
    LossNotFiniteError
        The loss, or without loss scaling the gradient norm, is not finite at
        ``iteration`` (1-based); the message names the last good checkpoint
        (``saved`` iterations).
    """

    def kept() -> str:
        if saved == 0:
            return "no checkpoint was written yet; lower --lr"
        return f"the last good checkpoint {run.checkpoint.name} (iteration {saved}) is kept; resume with a lower --lr"

    if not torch.isfinite(loss):
        raise LossNotFiniteError(f"{run.run}: the flow loss became {loss.item()} at iteration {iteration}; {kept()}")
    scaler = run.precision.scaler
    run.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(run.optimizer)
    norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
    # with loss scaling the scaler skips steps with overflowing gradients; without, they would poison the weights
    if not run.precision.enabled and not torch.isfinite(norm):
        raise LossNotFiniteError(f"{run.run}: the gradients became {norm.item()} at iteration {iteration}; {kept()}")
    scaler.step(run.optimizer)
    scaler.update()


def training_step(
    model: torch.nn.Module,
    image0: torch.Tensor,
    image1: torch.Tensor,
    config: FlowTrainConfig,
    iteration: int,
    precision: MixedPrecision | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward pass and loss of one batch (both directions in one RAFT call).

    The forward pass runs under ``precision``'s autocast (fp16 on CUDA when
    enabled); the loss is computed in float32.

    Parameters
    ----------
    image0, image1 : (N, 3, H, W) float32 in [0, 1], on the model's device

    Returns
    -------
    loss : () float32 tensor
    parts : dict of floats (see :func:`unsupervised_flow_loss`)
    """
    n = image0.shape[0]
    x0 = torch.cat([image0, image1]) * 2 - 1  # RAFT's input range [-1, 1]
    x1 = torch.cat([image1, image0]) * 2 - 1
    with precision.autocast() if precision is not None else contextlib.nullcontext():
        flows = model(x0, x1, num_flow_updates=config.flow_updates)
    flows = [f.float() for f in flows]
    return unsupervised_flow_loss(
        image0,
        image1,
        [f[:n] for f in flows],
        [f[n:] for f in flows],
        photometric=config.photometric,
        smoothness_weight=config.smoothness_weight,
        edge_weight=config.edge_weight,
        gamma=config.gamma,
        use_occlusion=iteration >= config.occlusion_after,
        max_occluded=config.max_occluded,
    )
