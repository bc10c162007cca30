"""What every training loop of the pipeline shares (classifier, IRN, Mask R-CNN).

A run folder holds ``config.json`` (the stage's config dataclass) and
``checkpoint.pt``; :func:`epoch_loop` drives the epochs as a generator of
:class:`~training.progress.Progress` events, saves the checkpoint after every
epoch and when the generator is closed (the GUI's cancel), and stops with a
one-line error on a NaN/inf loss, keeping the last good checkpoint. Batches
must be a pure function of (seed, epoch) so that a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from training.data.json_io import read_json
from training.errors import InputError, TrainingStopped
from training.progress import Progress

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready fields of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(cls: type[C], data: Any, path: str | os.PathLike | None, what: str) -> C:
    """Rebuild a config dataclass from JSON; one-line InputError naming ``path``.

    Lists become tuples where the field's default is a tuple (JSON has no tuples).
    """
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object with the {what} config")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(path, f"unknown {what} config field {unknown[0]!r}")
    kwargs = {
        k: tuple(v) if isinstance(v, list) and isinstance(fields[k].default, tuple) else v for k, v in data.items()
    }
    try:
        return cls(**kwargs)
    except InputError as exc:
        raise InputError(path, exc.problem) from None
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"invalid {what} config ({exc})") from None


def prepare_run(run: Path, resume: bool) -> bool:
    """Check a run folder before training; True when there is a checkpoint to resume.

    Raises
    ------
    InputError
        ``run`` is a file, or holds a checkpoint and ``resume`` is false.
    """
    if run.exists() and not run.is_dir():
        raise InputError(run, "exists and is not a folder")
    if (run / CHECKPOINT).exists() and not resume:
        raise InputError(
            run, "already holds a trained checkpoint: pass --resume to continue it, or choose another --out"
        )
    return resume and (run / CHECKPOINT).exists()


def check_resumable(run: Path, config: Any, free: Sequence[str], what: str) -> None:
    """Refuse to resume with options that would change the result (``free`` ones may differ)."""
    saved = read_json(run / CONFIG)
    now = config_to_dict(config)
    for k, v in now.items():
        if k not in free and isinstance(saved, dict) and saved.get(k) != v:
            raise InputError(
                run / CONFIG,
                f"cannot resume: the run was started with {k}={saved.get(k)!r}, now {k}={v!r}; "
                f"resume with the same options or train into a new --out ({what})",
            )


def resume_state(
    run: Path, config: Any, free: Sequence[str], stage: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, list[float], dict[str, Any]]:
    """Load a run's checkpoint into ``model`` and ``optimizer`` to resume it.

    Returns
    -------
    step : int, steps already done
    epoch_losses : list of float
    state : dict, the whole checkpoint (for what else a stage saved in it)

    Raises
    ------
    InputError
        Options that differ from the run's, or a checkpoint of something else.
    """
    from training.checkpoint import load_checkpoint

    check_resumable(run, config, free, stage)
    state = load_checkpoint(run / CHECKPOINT)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["epoch_losses"])
        restore_rng(state["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise InputError(run / CHECKPOINT, f"not a {stage} checkpoint of this run ({type(exc).__name__})") from None
    return step, losses, state


def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    epoch_losses: list[float],
    config: Any,
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint of a training loop: what :func:`resume_state` reads back, plus ``extra`` fields."""
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": step,
        "epoch_losses": list(epoch_losses),
        "rng": rng_state(),
        "config": config_to_dict(config),
        **extra,
    }


def poly_lr(base: float, step: int, total: int, power: float = 0.9) -> float:
    """IRN's poly schedule: ``base * (1 - step/total)^power``."""
    return base * (1.0 - min(step, total) / total) ** power


def rng_state() -> dict[str, Any]:
    """Torch RNG states to store in a checkpoint."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Put a loaded optimizer's state tensors on the model's device."""
    for st in optimizer.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                st[k] = v.to(device)


def epoch_loop(
    stage: str,
    epochs: int,
    batches: Callable[[int], Sequence[Any]],
    step_fn: Callable[[Any, int, int], dict[str, float]],
    save: Callable[[int, list[float]], None],
    checkpoint: Path,
    start_step: int = 0,
    epoch_losses: list[float] | None = None,
    hint: str = "try a lower --lr",
) -> Iterator[Progress]:
    """Run ``epochs`` epochs from ``start_step``; a generator of progress events.

    Parameters
    ----------
    stage : str
        Name shown in progress and errors ("train-irn").
    epochs : int
    batches : callable
        ``batches(epoch)`` → the epoch's batches, a pure function of the epoch.
    step_fn : callable
        ``step_fn(batch, step, total)`` trains on one batch and returns its
        metrics; ``"loss"`` is required.
    save : callable
        ``save(step, epoch_losses)`` writes the checkpoint.
    checkpoint : Path
        Where ``save`` writes (for messages).
    start_step : int
        Steps already done (resume).
    epoch_losses : list of float, optional
        Mean loss of the epochs already done (resume).

    Yields
    ------
    Progress
        One per step (metrics) and one message per epoch.

    Raises
    ------
    TrainingStopped
        A loss that is NaN or infinite; the checkpoint on disk is the last good one.
    """
    steps_per_epoch = len(batches(0))
    total = epochs * steps_per_epoch
    step = start_step
    losses = list(epoch_losses or [])
    try:
        while step < total:
            epoch, first = divmod(step, steps_per_epoch)
            loss_sum, n, t0 = 0.0, 0, time.perf_counter()
            for batch in batches(epoch)[first:]:
                metrics = step_fn(batch, step, total)
                loss = float(metrics["loss"])
                if not math.isfinite(loss):
                    last = f"{checkpoint} (epoch {epoch})" if checkpoint.exists() else "no checkpoint yet"
                    raise TrainingStopped(
                        f"{stage}: loss became {loss} at epoch {epoch + 1} step {step + 1}; training stopped, "
                        f"the last good checkpoint is kept: {last}; {hint}"
                    )
                step += 1
                loss_sum, n = loss_sum + loss, n + 1
                yield Progress(stage, step, total, "it", {**metrics, "epoch": epoch + 1})
            losses.append(loss_sum / max(n, 1))
            save(step, losses)
            rate = n / max(time.perf_counter() - t0, 1e-9)
            msg = f"epoch {epoch + 1}/{epochs}: mean loss {losses[-1]:.4f}, {rate:.2f} it/s, saved {checkpoint}"
            yield Progress(stage, step, total, "it", message=msg)
    except GeneratorExit:
        save(step, losses)  # cancelled between two steps: the state is consistent, keep it for --resume
        raise
