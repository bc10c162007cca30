"""What every training loop of the pipeline shares (classifier, IRN, Mask R-CNN, RAFT flow).

A run folder holds ``config.json`` (the stage's config dataclass) and
``checkpoint.pt``; :func:`epoch_loop` drives the epochs as a generator of
:class:`~training.progress.Progress` events, saves the checkpoint after every
epoch and when the generator is closed (the GUI's cancel), and stops with a
one-line error on a NaN/inf loss or when a batch does not fit in memory,
keeping the last good checkpoint. Batches must be a pure function of (seed,
epoch) so that a resumed run repeats the uninterrupted one exactly.

Distributed data-parallel runs (see :mod:`training.distributed`) go through
the same loop: every rank builds the same global batches and :func:`epoch_loop`
hands each rank its slice; :func:`backward_step` makes the NaN check agree on
every rank; trained BatchNorm statistics are averaged after each step; only
rank 0 writes (:func:`write_run_files`, the checkpoint).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from training.atomic import remove_stale_temp_files, write_json
from training.checkpoint import save_checkpoint
from training.config import absent_values, config_to_dict
from training.distributed import (
    all_reduce_mean,
    average_buffers,
    dump_rank_state,
    is_main,
    rank_world,
    shard,
    wrap_ddp,
)
from training.errors import InputError, TrainingStopped
from training.json_io import read_json
from training.progress import Progress
from training.run_folder import CHECKPOINT, CONFIG

C = TypeVar("C")


def prepare_run(run: Path, resume: bool) -> bool:
    """Check a run folder before training; True when there is a checkpoint to resume.

    The temporary files of writes killed long ago (a 64 MiB
    ``.checkpoint.pt.<random>.tmp`` of a run killed while saving) are removed
    (:func:`training.atomic.remove_stale_temp_files`; rank 0 only).

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
    if is_main():
        remove_stale_temp_files(run, recursive=True)
    return resume and (run / CHECKPOINT).exists()


def write_run_files(run: Path, files: dict[str, Any]) -> None:
    """Write the JSON files of a new run (``{name: object}``, e.g. config and categories); rank 0 only."""
    if is_main():
        for name, obj in files.items():
            write_json(run / name, obj, indent=1)


def check_resumable(run: Path, config: Any, free: Sequence[str], what: str) -> None:
    """Refuse to resume with options that would change the result (``free`` ones may differ)."""
    saved = read_json(run / CONFIG)
    now = config_to_dict(config)
    # a field the saved config lacks was added later: the run used its default
    defaults = {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
                for f in fields(config) if f.default is not MISSING}  # fmt: skip
    defaults.update(absent_values(type(config)))
    for k, v in now.items():
        was = saved.get(k, defaults.get(k)) if isinstance(saved, dict) else v
        if k not in free and was != v:
            raise InputError(
                run / CONFIG,
                f"cannot resume: the run was started with {k}={was!r}, now {k}={v!r}; "
                f"resume with the same options or train into a new --out ({what})",
            )


class MixedPrecision:
    """fp16 autocast with loss scaling on CUDA, plain fp32 elsewhere: one object per training loop.

    Every trainer uses it the same way, so none autocasts without a scaler (fp16
    gradients underflow) and every checkpoint keeps the scaler's state
    (:func:`training_state`, :func:`resume_state`): a resumed run goes on with
    the loss scale it had reached instead of re-learning it with skipped steps.

    Parameters
    ----------
    enabled : bool
        The config's ``amp``; it only takes effect on a CUDA device.
    device : torch.device
    """

    def __init__(self, enabled: bool, device: torch.device) -> None:
        self.enabled = bool(enabled) and device.type == "cuda"
        # a disabled scaler passes the loss through and steps plainly
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled)

    def autocast(self) -> torch.autocast:
        """The forward pass's context: float16 autocast on CUDA when enabled, else a no-op."""
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.enabled)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
        """:func:`backward_step` with this loop's loss scaling; returns the loss (mean over the ranks)."""
        return backward_step(loss, optimizer, self.scaler)

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state ({} when disabled)."""
        return self.scaler.state_dict() if self.enabled else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore a saved scaler state; a run saved without one (fp32, or older) keeps the fresh scaler."""
        if self.enabled and state:
            self.scaler.load_state_dict(state)


def resume_state(
    run: Path,
    config: Any,
    free: Sequence[str],
    stage: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    precision: MixedPrecision | None = None,
) -> tuple[int, list[float], dict[str, Any]]:
    """Load a run's checkpoint into ``model``, ``optimizer`` (and ``precision``'s scaler) to resume it.

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
        if precision is not None:
            precision.load_state_dict(state.get("scaler"))
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise InputError(run / CHECKPOINT, f"not a {stage} checkpoint of this run ({type(exc).__name__})") from None
    return step, losses, state


def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    epoch_losses: list[float],
    config: Any,
    precision: MixedPrecision | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint of a training loop: what :func:`resume_state` reads back, plus ``extra`` fields.

    With ``precision``, its scaler's state is saved as ``scaler``.
    """
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": step,
        "epoch_losses": list(epoch_losses),
        "rng": rng_state(),
        "config": config_to_dict(config),
        **extra,
    }
    if precision is not None:
        state["scaler"] = precision.state_dict()
    return state


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


def backward_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None
) -> float:
    """Back-propagate ``loss`` and step ``optimizer`` unless the loss is not finite; returns the loss.

    Under DDP the returned loss is its mean over the ranks, taken before the
    backward pass, so every rank takes (or skips) the step and
    :func:`epoch_loop` stops all ranks together on a non-finite loss (a rank
    skipping the backward pass alone would leave the others waiting in the
    gradient all-reduce).

    Parameters
    ----------
    loss : () float tensor, this rank's loss
    optimizer : torch.optim.Optimizer
    scaler : GradScaler, optional
        Mixed-precision loss scaling (a disabled scaler steps plainly).

    Returns
    -------
    float, the loss (mean over the ranks)
    """
    value = float(all_reduce_mean(loss.detach()))
    if not math.isfinite(value):
        return value
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return value


@dataclass(frozen=True)
class MemoryHint:
    """What :func:`epoch_loop` suggests when a batch does not fit in memory.

    Attributes
    ----------
    unit : str
        A batch item, singular ("frame", "frame pair").
    smaller : str
        The option that makes an item smaller ("a smaller --crop").
    lighter : str
        The option for a lighter model ("a lighter --arch"), or "".
    """

    unit: str = "frame"
    smaller: str = "a smaller --crop"
    lighter: str = ""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure: CUDA's ``OutOfMemoryError``, or the CPU allocator's RuntimeError."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def out_of_memory_message(
    stage: str, batch_size: int, step: int, device: torch.device | None, hint: MemoryHint, kept: str
) -> str:
    """The one line that tells what did not fit and what to try.

    Parameters
    ----------
    stage : str
    batch_size : int, items of the (global) batch
    step : int, 1-based step that failed
    device : torch.device or None
    hint : MemoryHint
    kept : str, what is on disk ("the last good checkpoint is kept: ...")
    """
    items = f"{batch_size} {hint.unit}{'' if batch_size == 1 else 's'}"
    where = f" ({device_name(device)})" if device is not None else ""
    if batch_size > 1:
        advice = f"try --batch-size {batch_size // 2} (or {hint.smaller})"
    else:
        advice = f"try {hint.smaller}" + (f" or {hint.lighter}" if hint.lighter else "")
    return f"{stage}: out of memory on a batch of {items} at step {step}{where}; {advice}; {kept}"


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda:N`` with the index of the current device when ``device`` has none."""
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def free_device_memory(device: torch.device | None) -> None:
    """Give cached CUDA blocks back after an out-of-memory error (nothing to do on the CPU)."""
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def epoch_loop(
    stage: str,
    epochs: int,
    batches: Callable[[int], Sequence[Sequence[Any]]],
    step_fn: Callable[[Any, int, int], dict[str, float]],
    save: Callable[[int, list[float]], None],
    checkpoint: Path,
    start_step: int = 0,
    epoch_losses: list[float] | None = None,
    hint: str = "try a lower --lr",
    *,
    load: Callable[[int, list[list[Any]]], Iterable[Any]] | None = None,
    model: torch.nn.Module | None = None,
    device: torch.device | None = None,
    memory: MemoryHint | None = None,
) -> Iterator[Progress]:
    """Run ``epochs`` epochs from ``start_step``; a generator of progress events.

    Parameters
    ----------
    stage : str
        Name shown in progress and errors ("train-irn").
    epochs : int
    batches : callable
        ``batches(epoch)`` → the epoch's global batches (lists of items), a
        pure function of the epoch; every epoch has as many.
    step_fn : callable
        ``step_fn(batch, step, total)`` trains on one batch (this rank's
        slice, loaded by ``load`` if given) and returns its metrics;
        ``"loss"`` is required and must agree on every rank (see
        :func:`backward_step`).
    save : callable
        ``save(step, epoch_losses)`` writes the checkpoint (called on rank 0 only).
    checkpoint : Path
        Where ``save`` writes (for messages).
    start_step : int
        Steps already done (resume).
    epoch_losses : list of float, optional
        Mean loss of the epochs already done (resume). When ``start_step`` is
        inside an epoch, a last extra entry is that epoch's loss sum so far,
        as a cancelled run saves it, so its mean comes out as if never cut.
    hint : str
        What to try after a non-finite loss.
    load : callable, optional
        ``load(epoch, slices)`` → an iterator over the loaded batches of the
        epoch's remaining slices, in order (e.g. a DataLoader decoding ahead
        in worker processes); by default ``step_fn`` gets the slices.
    model : torch.nn.Module, optional
        The trained module (not its DDP wrapper): under DDP its trained
        BatchNorm statistics are averaged after every step, and it is handed
        to :func:`~training.distributed.dump_rank_state` at the end.
    device : torch.device, optional
        Named in the out-of-memory message.
    memory : MemoryHint, optional
        What the out-of-memory message suggests (default: a smaller --crop).

    Yields
    ------
    Progress
        One per step (metrics) and one message per epoch.

    Raises
    ------
    TrainingStopped
        A loss that is NaN or infinite, or a batch that does not fit in
        memory; the checkpoint on disk is the last good one.
    """
    rank, world = rank_world()
    memory = memory or MemoryHint()
    steps_per_epoch = len(batches(0))
    total = epochs * steps_per_epoch
    step = start_step
    losses = list(epoch_losses or [])

    def kept(epoch: int) -> str:
        if checkpoint.exists():
            return f"the last good checkpoint is kept: {checkpoint} (epoch {epoch})"
        return "no checkpoint was saved yet"

    def save_main(step: int, losses: list[float]) -> None:
        if rank == 0:
            save(step, losses)

    # A run cancelled mid-epoch saved, after its finished epochs' means, the sum of
    # the unfinished epoch's losses so far: carry it so the epoch's mean is the same.
    carried = losses.pop() if step % steps_per_epoch and len(losses) > step // steps_per_epoch else 0.0
    loss_sum = 0.0
    try:
        while step < total:
            epoch, first = divmod(step, steps_per_epoch)
            remaining = list(batches(epoch)[first:])
            slices = [shard(b, rank, world) for b in remaining]
            loaded = load(epoch, slices) if load is not None else slices
            loss_sum, n, t0 = carried, 0, time.perf_counter()
            carried = 0.0
            for batch, item in zip(remaining, loaded, strict=True):
                out_of_memory = False
                try:
                    metrics = step_fn(item, step, total)
                except RuntimeError as exc:
                    if not is_out_of_memory(exc):
                        raise
                    out_of_memory = True  # raise outside the except block: its traceback holds the step's tensors
                if out_of_memory:
                    free_device_memory(device)
                    message = out_of_memory_message(stage, len(batch), step + 1, device, memory, kept(epoch))
                    raise TrainingStopped(message)
                if model is not None:
                    average_buffers(model)
                loss = float(metrics["loss"])
                if not math.isfinite(loss):
                    raise TrainingStopped(
                        f"{stage}: loss became {loss} at epoch {epoch + 1} step {step + 1}; training stopped, "
                        f"{kept(epoch)}; {hint}"
                    )
                step += 1
                loss_sum, n = loss_sum + loss, n + 1
                yield Progress(stage, step, total, "it", {**metrics, "epoch": epoch + 1})
            losses.append(loss_sum / max(first + n, 1))
            save_main(step, losses)
            rate = n / max(time.perf_counter() - t0, 1e-9)
            msg = f"epoch {epoch + 1}/{epochs}: mean loss {losses[-1]:.4f}, {rate:.2f} it/s, saved {checkpoint}"
            yield Progress(stage, step, total, "it", message=msg)
        if model is not None:
            dump_rank_state(model)
    except GeneratorExit:
        # Cancelled between two steps: the state is consistent, keep it for --resume
        # (mid-epoch, with the epoch's loss sum so far appended; see ``carried``).
        save_main(step, losses + [loss_sum] if step % steps_per_epoch else losses)
        raise


class TrainingRun:
    """What every trainer does the same way around its own data, model and step: the house's training skeleton.

    :meth:`open` resumes the run folder's checkpoint into the model, optimizer and
    loss scaler (or writes the run's files on a fresh start), moves them to the
    device and wraps the model for DDP; :meth:`set_lr` applies the poly schedule,
    :meth:`backward` back-propagates with loss scaling, :meth:`save` writes the
    checkpoint (the scaler's state included) and :meth:`loop` runs
    :func:`epoch_loop`. The CAM, IRN, detector and flow trainers are built on it
    (flow with its own per-iteration loop instead of :meth:`loop`).

    Parameters
    ----------
    stage : str
        Name in progress and errors ("train-irn").
    run : Path
        The run folder.
    config : config dataclass
        With ``amp``; saved in every checkpoint.
    model : torch.nn.Module
    optimizer : torch.optim.Optimizer
        Each parameter group with its ``initial_lr``.
    device : torch.device

    Attributes
    ----------
    net : torch.nn.Module
        The model as the step trains it (DDP-wrapped under torchrun), after :meth:`open`.
    precision : MixedPrecision
    """

    def __init__(
        self,
        stage: str,
        run: Path,
        config: Any,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
    ) -> None:
        self.stage, self.run, self.config = stage, Path(run), config
        self.model, self.optimizer, self.device = model, optimizer, device
        self.precision = MixedPrecision(getattr(config, "amp", False), device)
        self.net: torch.nn.Module = model

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file."""
        return self.run / CHECKPOINT

    def open(
        self, resumed: bool, free: Sequence[str], files: dict[str, Any], find_unused_parameters: bool = False
    ) -> tuple[int, list[float], dict[str, Any]]:
        """Resume (``resumed``: :func:`resume_state` with ``free`` options) or write ``files``; then to the device.

        Returns
        -------
        step, epoch_losses, state : what :func:`resume_state` returns, or (0, [], {}) on a fresh start
        """
        step, losses, state = 0, list[float](), dict[str, Any]()
        if resumed:
            step, losses, state = resume_state(
                self.run, self.config, free, self.stage, self.model, self.optimizer, self.precision
            )
        else:
            write_run_files(self.run, files)
        self.model.to(self.device)
        move_optimizer_state(self.optimizer, self.device)
        self.net = wrap_ddp(self.model, self.device, find_unused_parameters=find_unused_parameters)
        return step, losses, state

    def set_lr(self, step: int, total: int, factor: float = 1.0) -> None:
        """Set each group's learning rate for ``step`` of ``total``: poly from ``initial_lr``, × ``factor``."""
        for group in self.optimizer.param_groups:
            group["lr"] = poly_lr(group["initial_lr"], step, total) * factor

    def backward(self, loss: torch.Tensor) -> float:
        """Back-propagate ``loss`` and step, with this run's loss scaling; the loss (mean over the ranks)."""
        return self.precision.step(loss, self.optimizer)

    def save(self, step: int, epoch_losses: list[float], **extra: Any) -> None:
        """Write the checkpoint: :func:`training_state` with the scaler, plus ``extra`` fields."""
        state = training_state(self.model, self.optimizer, step, epoch_losses, self.config, self.precision, **extra)
        save_checkpoint(self.checkpoint, state)

    def loop(
        self,
        epochs: int,
        batches: Callable[[int], Sequence[Sequence[Any]]],
        step_fn: Callable[[Any, int, int], dict[str, float]],
        save: Callable[[int, list[float]], None],
        start_step: int,
        epoch_losses: list[float],
        load: Callable[[int, list[list[Any]]], Iterable[Any]] | None = None,
        memory: MemoryHint | None = None,
    ) -> Iterator[Progress]:
        """:func:`epoch_loop` of this run (its checkpoint, model and device)."""
        return epoch_loop(
            self.stage,
            epochs,
            batches,
            step_fn,
            save,
            self.checkpoint,
            start_step,
            epoch_losses,
            load=load,
            model=self.model,
            device=self.device,
            memory=memory,
        )
