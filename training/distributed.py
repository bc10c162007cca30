"""Distributed data-parallel training under ``torchrun`` (one process per GPU, or several on a CPU).

``vis-ws train-cam ... --nproc N`` re-runs itself under
``python -m torch.distributed.run --standalone --nproc_per_node N`` (:func:`launch`);
a command started by ``torchrun`` directly finds ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment and joins the process group
(:func:`init_from_env`): NCCL when it trains on CUDA, gloo on the CPU.

Every rank builds the same seeded model and the same global batches (a pure
function of (seed, epoch)); each takes its slice of every global batch
(:func:`shard`), and DistributedDataParallel averages the gradients, so the
global batch is the one of a single-process run. Only rank 0 writes files and
reports progress (:func:`is_main`); checkpoints hold the unwrapped module's
weights, the same layout as a single-process run.

Testing hook: when the environment variable ``VIS_WS_DEBUG_RANK_DIR`` is set,
:func:`dump_rank_state` (called at the end of training) makes every rank write
its final weights to ``$VIS_WS_DEBUG_RANK_DIR/rank{r}.pt`` so a test can check
that all ranks ended with identical weights. It is not meant for normal use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from training.errors import InputError

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
    """Average the floating-point buffers (BatchNorm running statistics) over all ranks, in place.

    Called after every step of a DDP run: each rank updates its statistics
    from its slice of the global batch, their mean is the statistics of the
    whole batch (exactly for the mean), and every rank keeps the same weights.
    No-op when not distributed.
    """
    if rank_world()[1] == 1:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            buf.copy_(all_reduce_mean(buf))


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


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``vis-ws *argv`` in ``nproc`` processes under ``torchrun --standalone``; its exit code.

    Parameters
    ----------
    argv : sequence of str
        The subcommand and its options, without ``--nproc``.
    nproc : int
        Processes on this machine (one per GPU on CUDA).

    Raises
    ------
    InputError
        ``nproc`` below 1.
    """
    if nproc < 1:
        raise InputError(None, f"--nproc must be at least 1, got {nproc}")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "training.cli",
        *argv,
    ]
    return subprocess.call(cmd)
