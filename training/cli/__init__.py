"""``vis-ws``: the command-line interface of the backend.

Every subcommand lives in a module of this package that defines
``register(subparsers)``; each parser sets ``func(args) -> int``. Bad input
(:class:`training.errors.InputError`) prints one line and exits with code 2.
"""

from __future__ import annotations

import os

# PyTorch's OpenMP threads spin-wait; on a shared 2-core machine that slows
# everything down up to 8x. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import TypeVar  # noqa: E402

from training import __version__  # noqa: E402
from training.errors import InputError, TrainingStopped  # noqa: E402

C = TypeVar("C")

EXIT_TRAINING_STOPPED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``vis-ws`` parser with every subcommand registered."""
    from training.cli import (
        cam_commands,
        data_commands,
        detection_commands,
        eval_commands,
        flow_commands,
        irn_commands,
        pipeline_commands,
        project_commands,
    )

    parser = argparse.ArgumentParser(
        prog="vis-ws",
        description="Weakly supervised video instance segmentation (flowIRN + MaskConsist).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    modules = [  # in pipeline order, as `vis-ws --help` lists them
        project_commands,
        data_commands,
        flow_commands,
        cam_commands,
        irn_commands,
        detection_commands,
        pipeline_commands,
        eval_commands,
    ]
    for module in modules:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vis-ws`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: what --nproc relaunches (cli.relaunch)
    _escape_undecodable_names()
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"vis-ws {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        if exc.filename is None:
            raise
        # a path the OS refuses (too long, no permission, a file where a folder should be): one line too
        print(f"vis-ws {args.command}: error: {InputError.from_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingStopped as exc:
        print(f"vis-ws {args.command}: stopped: {exc}", file=sys.stderr)
        return EXIT_TRAINING_STOPPED
    except KeyboardInterrupt:
        print(f"vis-ws {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _escape_undecodable_names() -> None:
    """Print file names that are not UTF-8 as ``\\udcff`` escapes instead of failing.

    Python decodes such names with surrogate escapes; a stream that encodes
    strictly (stdout in a UTF-8 locale, pytest's capture) cannot write them.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def formatter(prog: str) -> argparse.HelpFormatter:
    """Help formatter that shows defaults (every subcommand uses it)."""
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=32)


if __name__ == "__main__":
    sys.exit(main())


def config_from_options(cls: type[C], args: argparse.Namespace, dests: dict[str, str]) -> C:
    """A config dataclass from a command's options; its errors name the flags this command has.

    A config's checks name its fields as flags of the command that owns them
    (``--crop``); ``pseudo-labels`` and ``train-irn`` spell IRN's crop
    ``--irn-crop``, so the message is rewritten with the flag the user typed.

    Parameters
    ----------
    cls : the config dataclass
    args : the parsed options
    dests : dict, config field → ``args`` attribute (``{"crop": "irn_crop"}``)

    Raises
    ------
    InputError
        The config's own, with this command's flag names.
    """
    import re

    try:
        return cls(**{field: getattr(args, dest) for field, dest in dests.items()})
    except InputError as exc:
        problem = exc.problem
        for field, dest in dests.items():
            own, typed = "--" + field.replace("_", "-"), "--" + dest.replace("_", "-")
            problem = re.sub(rf"(?<![\w-]){re.escape(own)}(?![\w-])", typed, problem)
        raise InputError(exc.path, problem) from None
