"""The one exception type for bad user input."""

from __future__ import annotations

import errno
import os


class InputError(ValueError):
    """Bad user input: a file that is missing, malformed or inconsistent.

    The message is one line: ``"<path>: <problem>"`` so the CLI can print it as
    is (exit code 2) and the GUI can show it as a notification.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file (or folder) at fault; ``None`` when the input is not a file.
    problem : str
        What is wrong, and where useful what to do about it.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        msg = self.problem if self.path is None else f"{self.path}: {self.problem}"
        super().__init__(msg)

    @classmethod
    def from_os_error(cls, exc: OSError, path: str | os.PathLike | None = None) -> InputError:
        """The one line for an OSError about a path (too long, not allowed, not a folder ...).

        ``path`` defaults to the file the error names.
        """
        where = path if path is not None else exc.filename
        if exc.errno == errno.ENAMETOOLONG:
            problem = "path too long for the file system (a name over 255 bytes or a path over 4096); use a shorter one"
        else:
            problem = exc.strerror or type(exc).__name__
        return cls(where, problem)


class TrainingStopped(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message is one line.

    The last good checkpoint is kept; the CLI prints the message and exits
    with code 1.
    """
