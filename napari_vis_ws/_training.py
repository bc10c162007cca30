"""The Training dock's protocol with the ``vis-ws`` CLI, without Qt.

The dock runs training as a subprocess of our own command line, so the same
run works headless: :func:`build_command` makes its argv (locally
``python -m training.cli ...``; behind a launcher such as ``srun --gres=gpu:1``
or ``ssh gpu-host``, ``LAUNCHER... vis-ws ...``), and every ``--progress json``
line it prints on stdout is read back with :func:`parse_progress_line`. A
failed run's error speaks CLI (``pass --resume``); :func:`dock_error` says it
with the dock's controls.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.progress import Progress
from training.run_folder import Project

if TYPE_CHECKING:
    from training.cli.options import OptionSpec

# stage → (title, its run folder in the project: a training.run_folder.Project attribute)
STAGES: dict[str, tuple[str, str]] = {
    "classifier": ("Classifier (train-cam)", "cam"),
    "flowirn": ("flowIRN (train-irn)", "irn"),
    "maskrcnn": ("Mask R-CNN, step 1 (train --step 1)", "maskrcnn"),
    "maskconsist": ("MaskConsist, step 2 (train --step 2)", "maskconsist"),
    "pipeline": ("Run all: every stage this machine's preset runs (pipeline)", "root"),
}
WEIGHTS_STAGES = ("classifier", "maskrcnn", "pipeline")  # the stages that take --weights (the others start from a run)
EPOCH_STAGES = ("classifier", "flowirn", "maskrcnn", "maskconsist")  # the stages the Epochs box and resume apply to
DEVICES = ("auto", "cpu", "cuda")
EXIT_INTERRUPTED = 130  # training.cli: stopped by SIGINT, checkpoint saved
PROJECT_DIR = "project"  # default project folder, beside the tags file (as the Pipeline dock)
DETECTOR_STAGES = ("maskrcnn", "maskconsist")
LABELS = {"pseudo": "pseudo-labels", "corrected": "pseudo-labels with my corrections"}
UNITS = {"it": "iteration"}
# stage → the `vis-ws` command it runs, whose options its "More options" form shows
STAGE_COMMANDS = {
    "classifier": "train-cam",
    "flowirn": "train-irn",
    "maskrcnn": "train",
    "maskconsist": "train",
    "pipeline": "pipeline",
}
# options the dock sets with its own controls, or that a dock run must not change
DOCK_FLAGS = frozenset(
    {"--out", "--epochs", "--irn-epochs", "--iterations", "--weights", "--resume", "--device", "--pseudo", "--progress",
     "--cam-model", "--cams", "--flow", "--init", "--step", "--frames", "--gt", "--supervision", "--nproc"}
)  # fmt: skip
MASKCONSIST_FLAGS = frozenset(
    {"--delta-max", "--score-threshold", "--no-intra", "--no-inter", "--no-iom", "--iom-rank", "--maskcon-first"}
)
# CLI flag → the dock's control for it, as an error message should name it
DOCK_CONTROLS: dict[str, str] = {
    "--resume": "'resume from the checkpoint'",
    "--out": "the Output folder",
    "--epochs": "the Epochs box",
    "--irn-epochs": "the Epochs box",
    "--iterations": "the Iterations box",
    "--weights": "the Weights box",
    "--device": "the Device box",
    "--pseudo": "the Labels choice",
}
# whole phrases first, so the sentence still reads ("choose another --out" is not "another the Output folder")
_DOCK_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:pass|use|add) --resume\b"), "tick 'resume from the checkpoint'"),
    (re.compile(r"\b(?:run )?without --resume\b"), "untick 'resume from the checkpoint'"),
    (re.compile(r"\bkeep it for --resume\b"), "keep it to resume (tick 'resume from the checkpoint')"),
    (re.compile(r"\b(another|a new|a different) --out\b"), r"\1 Output folder"),
    (re.compile(r"\b(?:use|pass) --device ([\w:]+)"), r"choose \1 in the Device box"),
)
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*\b(?!-)")
_DEVICE = re.compile(r"\b(cuda(?::\d+)? \([^)]*\)|cpu \(\d+ threads?\))")


def stage_name(stage: str) -> str:
    """The stage's title without its command: ``MaskConsist, step 2``."""
    return STAGES[stage][0].split(" (")[0]


def read_command_options(commands: Sequence[str]) -> dict[str, list[OptionSpec]]:
    """Every option of each ``vis-ws`` command (:func:`training.cli.options.command_options`): ``{command: [...]}``.

    Read in a child process (``python -m training.cli.options``, about 3 s),
    so torch stays out of napari's; call it in a worker.

    Raises
    ------
    InputError
        The child failed (its last line of error).
    """
    import subprocess

    from training.cli.options import OptionSpec
    from training.errors import InputError

    done = subprocess.run(
        [sys.executable, "-m", "training.cli.options", *commands], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(None, f"could not read the options of {', '.join(commands)}: {last}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {command: [OptionSpec.from_dict(d) for d in found[command]] for command in commands}


def form_options() -> dict[str, list[OptionSpec]]:
    """What each stage's "More options" form sets: ``{stage: [OptionSpec, ...]}``.

    Every option of the stage's command (:func:`read_command_options`, in a
    child process: call it in a worker) except those the dock's own controls
    set (:data:`DOCK_FLAGS`) and, for Mask R-CNN step 1, MaskConsist's.
    """
    found = read_command_options(sorted(set(STAGE_COMMANDS.values())))
    forms = {}
    for stage, command in STAGE_COMMANDS.items():
        hidden = DOCK_FLAGS | (MASKCONSIST_FLAGS if stage == "maskrcnn" else frozenset())
        forms[stage] = [spec for spec in found[command] if spec.flag not in hidden]
    return forms


def output_folder(stage: str, project: str | Path) -> Path:
    """Default run folder of ``stage`` in a project."""
    return Path(getattr(Project(project), STAGES[stage][1]))


def build_command(
    stage: str,
    tags: str | Path,
    project: str | Path,
    options: Mapping[str, Any],
    launcher: str = "",
) -> list[str]:
    """The argv that trains ``stage`` on the frame tags ``tags`` in the project folder ``project``.

    Parameters
    ----------
    stage : one of :data:`STAGES`
        ``classifier`` (``train-cam``), ``flowirn`` (``train-irn`` on ``cam/``,
        ``cams/``, ``flow/``), ``maskrcnn`` (``train --step 1`` on ``pseudo/``),
        ``maskconsist`` (``train --step 2`` from the step-1 run) or ``pipeline``
        (``vis-ws pipeline`` into the project: every stage, what is done kept;
        no epochs or resume, its preset's settings and the "More options").
    tags, project : paths
        The frame-tags JSON and the run folder (``flow/ cam/ cams/ irn/ pseudo/ ...``).
    options : mapping
        ``out`` (run folder; default :func:`output_folder`), ``device``
        (default ``auto``), ``epochs`` (0 or absent: the command's default),
        ``iterations`` (Mask R-CNN stages only, overrides epochs), ``pseudo``
        (Mask R-CNN stages: the folder of the labels to train on, default
        ``PROJECT/pseudo``; ``PROJECT/targets`` with the corrections), ``weights``
        (classifier and Mask R-CNN step 1: a local ImageNet or checkpoint file
        to start from; empty: random init), ``resume`` (bool), ``extra`` (more
        arguments, a string split like a shell does or a list), ``more`` (the
        "More options" form's arguments, a list, before ``extra``).
    launcher : str
        Empty: run on this machine with this Python. Otherwise a command
        prefix (``srun --gres=gpu:1``, ``ssh gpu-host``) followed by ``vis-ws``.

    Returns
    -------
    argv : list of str
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    project = Path(project)
    out = Path(options.get("out") or output_folder(stage, project))
    epochs = int(options.get("epochs") or 0) if stage in EPOCH_STAGES else 0
    args: list[str]
    if stage == "pipeline":  # every stage, each resuming or skipping what the project holds
        args = ["pipeline", str(tags), "--out", str(out)]
    elif stage == "classifier":
        args = ["train-cam", str(tags), "--out", str(out)]
        if epochs:
            args += ["--epochs", str(epochs)]
    elif stage == "flowirn":
        folders = Project(project)
        args = ["train-irn", str(tags), "--cam-model", str(folders.cam), "--cams", str(folders.cams)]
        args += ["--flow", str(folders.flow), "--out", str(out)]
        if epochs:
            args += ["--irn-epochs", str(epochs)]
    else:
        step = 1 if stage == "maskrcnn" else 2
        pseudo = options.get("pseudo") or Project(project).pseudo
        args = ["train", str(tags), "--pseudo", str(pseudo), "--flow", str(Project(project).flow)]
        args += ["--out", str(out), "--step", str(step)]
        if step == 2:
            args += ["--init", str(options.get("init") or output_folder("maskrcnn", project))]
        if epochs:
            args += ["--epochs", str(epochs)]
        if int(options.get("iterations") or 0):
            args += ["--iterations", str(int(options["iterations"]))]
    if options.get("weights") and stage in WEIGHTS_STAGES:
        args += ["--weights", str(options["weights"])]
    args += ["--device", str(options.get("device") or "auto")]
    if options.get("resume") and stage in EPOCH_STAGES:
        args.append("--resume")
    args += [str(a) for a in options.get("more") or []]
    extra = options.get("extra") or []
    args += shlex.split(extra) if isinstance(extra, str) else [str(a) for a in extra]
    args += ["--progress", "json"]
    if launcher.strip():
        return [*shlex.split(launcher), "vis-ws", *args]
    return [sys.executable, "-m", "training.cli", *args]


def parse_progress_line(line: str) -> Progress | None:
    """The :class:`Progress` of one ``--progress json`` line, or None for any other line (it goes to the log)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("event") != "progress":
        return None
    try:
        metrics = data.get("metrics") or {}
        return Progress(
            stage=str(data["stage"]),
            done=int(data["done"]),
            total=int(data["total"]),
            unit=str(data.get("unit", "it")),
            metrics={str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            message=str(data.get("message") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def stage_announcement(line: str) -> tuple[str, list[str]] | None:
    """A ``vis-ws pipeline`` line announcing its stages (:func:`training.pipeline.drive_stages`).

    Returns
    -------
    ("plan", names) for ``==> stages: flow, train-cam, ...``; ("stage", [name]) for ``==> flow``; None for
    any other line (``==> `` lines that name no stage, such as the preset's reason, included: the caller
    checks ``name`` against the plan).
    """
    from training.pipeline import ANNOUNCE, PLAN

    if not line.startswith(ANNOUNCE):
        return None
    text = line[len(ANNOUNCE) :].strip()
    if text.startswith(PLAN):
        return "plan", [n.strip() for n in text[len(PLAN) :].split(",") if n.strip()]
    return "stage", [text]


def eta_seconds(events: Sequence[tuple[float, Progress]]) -> float | None:
    """Seconds left, from ``(time, event)`` pairs of one stage (the rate since the first of them).

    Returns None while it cannot be told (fewer than two steps, no progress, no total).
    """
    if len(events) < 2:
        return None
    (t0, first), (t1, last) = events[0], events[-1]
    steps = last.done - first.done
    if steps <= 0 or t1 <= t0 or last.total <= 0 or last.stage != first.stage:
        return None
    return max(last.total - last.done, 0) * (t1 - t0) / steps


def format_eta(seconds: float | None) -> str:
    """``ETA 1:05`` / ``ETA 2:03:04``, or "" when unknown."""
    if seconds is None:
        return ""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"ETA {h}:{m:02d}:{s:02d}" if h else f"ETA {m}:{s:02d}"


def device_used(message: str) -> str | None:
    """The device a run reports in its first message (``... cpu (2 threads)``, ``cuda:0 (NVIDIA H100)``)."""
    match = _DEVICE.search(message)
    return match.group(1) if match else None


def error_line(stderr: str) -> str:
    """The one-line error of a failed run: the last line that says ``error:``/``stopped:``, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if ": error: " in line or ": stopped: " in line or line.startswith("vis-ws"):
            return line
    return lines[-1] if lines else ""


def dock_error(line: str) -> str:
    """A CLI error line said with the Training dock's controls where it has one for a flag.

    ``... already holds a trained checkpoint: pass --resume to continue it, or
    choose another --out`` becomes ``... tick 'resume from the checkpoint' to
    continue it, or choose another Output folder``; ``--epochs`` becomes ``the
    Epochs box``. Flags the dock has no control for (they go in Options) stay.
    """
    for pattern, text in _DOCK_PHRASES:
        line = pattern.sub(text, line)
    return _FLAG.sub(lambda m: DOCK_CONTROLS.get(m.group(0), m.group(0)), line)
