"""How long the napari event loop stalls while the Pipeline dock works (issue 16: every stall under 100 ms).

A real viewer (run it under Xvfb) with the Pipeline and Corrections docks on a
project of 2 synthetic videos (``--frames`` x 240x320, 1-epoch models made
with ``vis-ws pseudo-labels``, cached in ``--root``). A 10 ms QTimer on the main
thread measures the gaps between its ticks while a person would: wait for the
dock to open, open the project, switch videos back and forth, step through
frames, open a copy of the project without CAMs and pseudo-labels, and run CAMs
there. Prints, per phase,
the longest gap and how many gaps exceeded 100 ms; with ``--why``, also what
the main thread was doing during each gap over 200 ms (a sampling thread reads
its stack every 10 ms).

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/bench_gui_stalls.py [--frames 16]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def make_project(root: Path, frames: int) -> Path:
    """2 videos x ``frames`` of 240x320 through `vis-ws pseudo-labels` (1-epoch ResNet-18 models) into root/run."""
    from training.cli import main

    if (root / "run" / "pseudo" / "pseudo_labels.json").is_file():
        return root
    size = ["--videos", "2", "--frames", str(frames), "--height", "240", "--width", "320", "--seed", "2"]
    assert main(["sample", "--out", str(root / "data"), *size]) == 0
    run = ["--arch", "resnet18", "--cam-epochs", "1", "--cam-batch-size", "4", "--cam-crop", "64", "--irn-epochs",
           "1", "--irn-batch-size", "4", "--irn-crop", "64", "--irn-radius", "5", "--progress", "json"]  # fmt: skip
    assert main(["pseudo-labels", str(root / "data/tags.json"), "--out", str(root / "run"), *run]) == 0
    return root


def parse_tracebacks(text: str) -> dict[int, list[tuple[str, str, int]]]:
    """Stacks of a :func:`faulthandler.dump_traceback` text: thread id → [(function, file, line)], innermost first."""
    stacks: dict[int, list[tuple[str, str, int]]] = {}
    current: list[tuple[str, str, int]] | None = None
    for line in text.splitlines():
        head = re.match(r"(?:Current thread|Thread) (0x[0-9a-f]+)", line)
        frame = re.match(r'\s+File "(.*)", line (\d+) in (\S+)', line)
        if head:
            current = stacks.setdefault(int(head.group(1), 16), [])
        elif frame and current is not None:
            current.append((frame.group(3), Path(frame.group(1)).name, int(frame.group(2))))
    return stacks


def start_sampler(samples: list[tuple[float, str]]) -> None:
    """Record the innermost frames of the main thread every 10 ms (a daemon thread).

    When the main thread sits in the benchmark's own loop (Qt's C++ work, or
    waiting for the GIL), the busiest other thread's stack is recorded too,
    marked ``[thread id]``: a worker holding the GIL stalls the event loop.

    The stacks are read with :func:`faulthandler.dump_traceback`, which walks
    them in C. Reading them with ``sys._current_frames()`` (frame objects of
    the running main thread, made in this thread) crashed napari in 7 of 10
    runs, in mesa's ``glDrawArrays``; a thread as busy without it, in none of 5.
    """
    import faulthandler
    import tempfile
    import threading

    main_id = threading.main_thread().ident
    idle = {"wait", "sleep", "select", "_wait_for_tstate_lock", "get", "run", "poll", "_recv", "accept"}

    def text_of(stack: list[tuple[str, str, int]]) -> str:
        return " <- ".join(f"{name}@{file}:{line}" for name, file, line in stack[:8])

    def run() -> None:
        me = threading.get_ident()
        with tempfile.TemporaryFile("w+") as dump:
            while True:
                dump.seek(0)
                dump.truncate()
                faulthandler.dump_traceback(dump, all_threads=True)
                dump.seek(0)
                stacks = parse_tracebacks(dump.read())
                stack = stacks.get(main_id or 0)
                if stack:
                    text = text_of(stack)
                    if text.startswith("serve@"):
                        busy = [
                            f"[{ident:#x}] {text_of(st)}"
                            for ident, st in stacks.items()
                            if ident not in (main_id, me) and st and st[0][0] not in idle
                        ]
                        text = busy[0] if busy else text
                    samples.append((time.monotonic(), text))
                time.sleep(0.01)

    threading.Thread(target=run, daemon=True, name="stack sampler").start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--root", type=Path, default=Path("/tmp/vis-ws-bench-gui"))
    parser.add_argument("--why", action="store_true", help="print the main thread's stacks during long gaps")
    parser.add_argument("--profile", metavar="PHASE", help="print a cProfile of the main thread during PHASE")
    parser.add_argument("--why-ms", type=float, default=200.0, help="with --why: the gaps to explain (default 200 ms)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import subprocess

    # the project is made in a child, so this process starts as napari does: without torch
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from benchmarks.bench_gui_stalls import make_project; "
    code += f"make_project(__import__('pathlib').Path({str(args.root)!r}), {args.frames})"
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)

    fresh = args.root / "fresh"  # a copy of the project without CAMs and pseudo-labels (copied before timing)
    shutil.rmtree(fresh, ignore_errors=True)
    for stage in ("cam", "irn", "flow"):
        shutil.copytree(args.root / "run" / stage, fresh / stage)

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_vis_ws._widgets.corrections import CorrectionsWidget
    from napari_vis_ws._widgets.pipeline import PipelineWidget

    viewer = napari.Viewer()
    dock = PipelineWidget(viewer)
    viewer.window.add_dock_widget(dock)
    viewer.window.add_dock_widget(CorrectionsWidget(viewer))
    gaps: dict[str, list[float]] = defaultdict(list)
    phase, last = ["dock opening"], [time.monotonic()]
    samples: list[tuple[float, str]] = []
    if args.why:
        start_sampler(samples)

    def tick() -> None:
        now = time.monotonic()
        gaps[phase[0]].append(now - last[0])
        if args.why and now - last[0] > args.why_ms / 1000:
            print(f"-- {phase[0]}: {now - last[0]:.3f} s, main thread:")
            for stack, n in Counter(st for t, st in samples if last[0] <= t <= now).most_common(4):
                print(f"   {n:3d}x {stack}")
        last[0] = now

    profiler: list[Any] = []

    def enter(name: str) -> None:
        """Start the phase ``name`` (and stop the profile of the previous one)."""
        import cProfile
        import pstats

        if profiler:
            profiler[0].disable()
            pstats.Stats(profiler.pop()).sort_stats("cumulative").print_stats(40)
        phase[0] = name
        if args.profile == name:
            profiler.append(cProfile.Profile())
            profiler[0].enable()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)

    def serve(seconds: float = 0.0, until: Callable[[], bool] | None = None, timeout: float = 300.0) -> None:
        end, stop = time.monotonic() + (seconds or timeout), time.monotonic() + timeout
        while time.monotonic() < min(end, stop) and not (until is not None and until()):
            QApplication.processEvents()
            time.sleep(0.005)

    serve(3.0)  # the dock is open; the user reads it
    enter("open project")
    dock.set_tags(args.root / "data/tags.json")
    dock.set_project(args.root / "run")
    serve(until=lambda: dock.show_button.isEnabled() and "pseudo-labels" in viewer.layers)
    serve(0.3)
    enter("switch video")
    for _ in range(4):
        dock.video_combo.setCurrentIndex(1 - dock.video_combo.currentIndex())
        serve(until=dock.show_button.isEnabled)
        serve(0.3)
    enter("step frames")
    for t in range(args.frames):
        viewer.dims.set_current_step(0, t)
        serve(0.05)
    enter("other project")  # without CAMs or pseudo-labels: their layers go
    dock.set_project(fresh)
    serve(until=dock.show_button.isEnabled)
    serve(0.3)
    enter("run CAMs")
    dock.run_stage("cams")
    serve(until=lambda: dock.running is None)
    serve(0.3)
    enter("end")
    timer.stop()
    print(f"{'phase':<14} {'longest stall':>14} {'stalls > 100 ms':>16} {'ticks':>6}")
    for name, values in gaps.items():
        over = sum(v > 0.1 for v in values)
        print(f"{name:<14} {max(values) * 1000:>11.0f} ms {over:>16d} {len(values):>6d}")
    viewer.close()


if __name__ == "__main__":
    main()
