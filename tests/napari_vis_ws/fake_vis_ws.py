"""A stand-in for ``vis-ws train ...`` behind the Training dock's launcher: ``python fake_vis_ws.py vis-ws ARGS``.

It speaks the CLI's protocol without training anything, so GUI tests of what
the dock does around a run (napari's close dialog, closing the dock, resuming)
take a second: one ``--progress json`` line per step (``FAKE_STEP_S`` seconds,
default 0.1) with the loss ``1 / step``, out of ``FAKE_TOTAL`` steps (default
192). SIGINT stops it between two steps like the real CLI: it writes its step
to ``OUT/fake-checkpoint.json`` and exits 130. With ``--resume`` it starts
from that step. Given ``pipeline`` it runs three such stages, announced as
``vis-ws pipeline`` announces them (``==> stages: ...``, ``==> flow``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the fake training; the exit code of ``vis-ws``."""
    out = Path(argv[argv.index("--out") + 1])
    checkpoint = out / "fake-checkpoint.json"
    total = int(os.environ.get("FAKE_TOTAL", "192"))
    pause = float(os.environ.get("FAKE_STEP_S", "0.1"))
    step = json.loads(checkpoint.read_text())["step"] if "--resume" in argv and checkpoint.is_file() else 0
    stopped: list[bool] = []
    signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
    pipeline = "pipeline" in argv  # Run all: three stages, announced as `vis-ws pipeline` does
    stages = ["flow", "train-cam", "cams"] if pipeline else ["train"]
    if pipeline:
        print("==> stages: " + ", ".join(stages), flush=True)
    for stage in stages:

        def emit(done: int, stage: str = stage, **fields: object) -> None:
            print(json.dumps({"event": "progress", "stage": stage, "done": done, "total": total, "unit": "it",
                              **fields}), flush=True)  # fmt: skip

        if pipeline:
            print(f"==> {stage}", flush=True)
        emit(step, message=f"{'resuming at' if step else 'training from'} step {step}/{total}: cpu (1 thread)")
        while step < total:
            if stopped:
                out.mkdir(parents=True, exist_ok=True)
                checkpoint.write_text(json.dumps({"step": step}))
                print(f"stopped at step {step}: wrote {checkpoint}", file=sys.stderr)
                return 130
            time.sleep(pause)
            step += 1
            emit(step, metrics={"loss": 1.0 / step})
        step = 0
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
