"""``--nproc N``: a ``vis-ws`` command re-run under ``torchrun`` with the arguments the user typed.

:func:`run_command` runs a command's body in this process, or (``--nproc`` above
1 and not already under torchrun) re-runs ``vis-ws`` with the same arguments
minus ``--nproc`` in ``N`` processes (:func:`launch`). The ranks then join the
process group from their environment (:mod:`training.distributed`).

The arguments relaunched are the ones typed (``args.argv``, kept by
:func:`training.cli.main`), with only ``--nproc`` taken out: nothing is
rebuilt from the parsed options, so every option reaches the ranks as written.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence

from training.errors import InputError

NPROC = "--nproc"


def add_nproc_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--nproc N`` option of a command that runs on several processes (``what`` they share)."""
    parser.add_argument(
        NPROC,
        type=int,
        default=1,
        help=f"processes under torchrun ({what}; one per GPU with NCCL, gloo on CPU); rank 0 writes the outputs",
    )


def _is_nproc(token: str) -> bool:
    """``--nproc``, or an abbreviation argparse accepts for it (``--npr``)."""
    name = token.split("=", 1)[0]
    return len(name) > 3 and NPROC.startswith(name)


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--nproc N`` (or ``--nproc=N``, or an abbreviation of it) taken out, the rest as typed.

    Tokens after a lone ``--`` are positional and kept.
    """
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            out += [token, *tokens]
            break
        if _is_nproc(token):
            if "=" not in token:
                next(tokens, None)  # its value
            continue
        out.append(token)
    return out


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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return subprocess.call([*cmd, "-m", "training.cli", *argv])


def run_command(args: argparse.Namespace, device: str, body: Callable[[], int]) -> int:
    """Run a command's ``body`` here, or in ``args.nproc`` processes under torchrun; its exit code.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command, with ``nproc`` and ``argv`` (the arguments typed). Above 1
        (and not already under torchrun) the command is re-run by :func:`launch`
        with the same arguments but ``--nproc``; otherwise this process joins the
        process group torchrun set up (if any) and runs ``body()``.
    device : str
        The command's ``--device`` (NCCL on CUDA, gloo otherwise).
    body : callable
        The command itself; the process group is left when it returns or raises.

    Raises
    ------
    InputError
        ``--nproc`` below 1.
    """
    from training import distributed

    if args.nproc < 1:
        raise InputError(None, f"--nproc must be at least 1, got {args.nproc}")
    if args.nproc > 1 and distributed.env_world_size() == 1:
        return launch(without_nproc(args.argv), args.nproc)
    distributed.init_from_env(device)
    try:
        return body()
    finally:
        distributed.cleanup()
