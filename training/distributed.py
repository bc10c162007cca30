"""Several processes under ``torchrun`` (one per GPU, or several on a CPU): DDP training, work sharded by video.

``vis-ws train-cam|train-irn|train|pseudo-labels|predict ... --nproc N`` re-runs
itself under ``python -m torch.distributed.run --standalone --nproc_per_node N``
(:mod:`training.cli.relaunch`); a command started by ``torchrun``
directly finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment
and joins the process group (:func:`init_from_env`): NCCL when it runs on
CUDA, gloo on the CPU.

Training (:func:`training.loop.epoch_loop`): every rank builds the same seeded
model and the same global batches (a pure function of (seed, epoch)); each
takes its slice of every global batch (:func:`shard`), DistributedDataParallel
averages the gradients (:func:`wrap_ddp`), so the global batch is the one of a
single-process run, and trained BatchNorm statistics are averaged after each
step (:func:`average_buffers`). Only rank 0 writes files and reports progress
(:func:`is_main`, :func:`drive_ranks`); checkpoints hold the unwrapped
module's weights, the same layout as a single-process run.

Inference (pseudo-labels, predict): rank ``r`` of ``N`` processes the videos
``videos[r::N]`` and writes their files; after a :func:`barrier` rank 0
writes what covers the whole set, as a single process would.

Testing hook: when the environment variable ``VIS_WS_DEBUG_RANK_DIR`` is set,
:func:`dump_rank_state` (called at the end of training) makes every rank write
its final weights to ``$VIS_WS_DEBUG_RANK_DIR/rank{r}.pt`` so a test can check
that all ranks ended with identical weights. It is not meant for normal use.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from training.errors import InputError
from training.progress import Progress

DEBUG_RANK_DIR = "VIS_WS_DEBUG_RANK_DIR"

T = TypeVar("T")


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by ``torchrun``)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init_from_env(device: str = "auto") -> tuple[int, int, int]:
    """Join the process group that ``torchrun`` set up through the environment.

    Parameters
    ----------
    device : str
        The command's ``--device``: NCCL is used when it trains on CUDA
        (``auto`` with a GPU, ``cuda``, ``cuda:N``), gloo otherwise.

    Returns
    -------
    rank, world_size, local_rank : int
        ``(0, 1, 0)`` without ``torchrun`` (nothing is initialised).

    Raises
    ------
    InputError
        The torchrun variables are not integers.
    """
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError(None, "RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        spec = (device or "auto").strip().lower()
        cuda = torch.cuda.is_available() and spec != "cpu"
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world)
    return rank, world, local


def rank_world() -> tuple[int, int]:
    """(rank, world_size) of the current process group; (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the process that writes files and logs."""
    return rank_world()[0] == 0


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This rank's slice of a global batch: every ``world``-th item starting at ``rank``.

    The slices of all ranks together are ``items``; their sizes differ by at
    most one.
    """
    return list(items[rank::world])


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over all ranks (a copy; ``tensor`` itself when not distributed)."""
    rank, world = rank_world()
    if world == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world


def average_buffers(model: torch.nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) of modules in training mode over all ranks.

    Called after every step of a DDP run: each rank updates its statistics
    from its slice of the global batch, their mean is the statistics of the
    whole batch (exactly for the mean), and every rank keeps the same weights.
    Buffers of modules in eval mode are left alone; the sums are taken in
    float64, so statistics that no step changes (torchvision's
    FrozenBatchNorm2d) come back bit for bit. One all-reduce per device; in
    place; no-op when not distributed.
    """
    world = rank_world()[1]
    if world == 1:
        return
    groups: dict[torch.device, list[torch.Tensor]] = {}
    for module in model.modules():
        if module.training:
            for buf in module.buffers(recurse=False):
                if buf.is_floating_point():
                    groups.setdefault(buf.device, []).append(buf)
    for bufs in groups.values():
        flat = torch.cat([b.detach().reshape(-1).double() for b in bufs])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        for b, part in zip(bufs, flat.split([b.numel() for b in bufs]), strict=True):
            b.copy_(part.view_as(b))


def rank_device(device: torch.device) -> torch.device:
    """The device this rank computes on: under ``torchrun`` on CUDA its own GPU (``LOCAL_RANK``), else ``device``."""
    if rank_world()[1] > 1 and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())  # set by init_from_env
    return device


def wrap_ddp(model: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when distributed (``model`` itself otherwise).

    Parameters
    ----------
    model : torch.nn.Module, already on ``device``
    device : torch.device, this rank's (:func:`rank_device`)
    find_unused_parameters : bool
        True when some trained parameters get no gradient in a step (frozen
        stages behind a detach; Mask R-CNN heads).

    Returns
    -------
    torch.nn.Module
        Call it for the forward pass; save ``model``'s weights. Buffers are
        not broadcast from rank 0 at every forward: :func:`average_buffers`
        averages the trained statistics after each step instead.
    """
    if rank_world()[1] == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
        broadcast_buffers=False,
    )


def check_split(stage: str, batch_size: int, unit: str = "frames") -> None:
    """Refuse a global batch too small to give every rank at least one item.

    Raises
    ------
    InputError
        ``batch_size`` (the smallest global batch) below the number of processes.
    """
    world = rank_world()[1]
    if batch_size < world:
        raise InputError(
            None,
            f"{stage}: a batch of {batch_size} {unit} cannot be split over {world} processes; "
            "use a larger --batch-size or fewer processes",
        )


def describe_world() -> str:
    """``", N processes (DDP)"`` for a start message, or "" in a single-process run."""
    world = rank_world()[1]
    return f", {world} processes (DDP)" if world > 1 else ""


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` when not distributed); every rank gets the list."""
    world = rank_world()[1]
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if rank_world()[1] > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def dump_rank_state(model: torch.nn.Module) -> None:
    """Testing hook: write this rank's weights to ``$VIS_WS_DEBUG_RANK_DIR/rank{r}.pt`` if the variable is set."""
    folder = os.environ.get(DEBUG_RANK_DIR)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, Path(folder) / f"rank{rank_world()[0]}.pt")


def drive_ranks(events: Iterable[Progress], json_lines: bool = False) -> Progress | None:
    """Drive a progress generator on every rank: rank 0 shows it (bar or JSON lines), the others run it silently.

    Ctrl+C stops it between two steps on every rank (the generator is closed,
    a training loop saves its checkpoint) and is re-raised.

    Returns
    -------
    The last event on rank 0, None elsewhere.
    """
    from training.progress import drive_training, stop_on_interrupt

    gen = events if isinstance(events, Generator) else (e for e in events)
    if is_main():
        return drive_training(gen, json_lines)
    try:
        for _ in stop_on_interrupt(gen):
            pass
    finally:
        gen.close()
    return None
