"""Memory of a long video in the plugin: peak RSS while it opens and runs the Flow and CAM stages.

Writes a synthetic video (default 2000 frames of 480x640, a panning texture
with a disc and a box moving over it) to a temp folder twice: as an H.264
``.mp4`` and as a frame-tags dataset (``tags.json`` + ``JPEGImages/long/``,
what the Pipeline dock takes). Then runs each stage in a fresh process and
samples ``/proc/self/status`` every ``--every`` frames:

``open``
    The plugin's reader (``napari_get_reader``) opens the ``.mp4`` lazily and
    every frame is read through its dask array, as napari does when one
    scrubs through the video.
``flow``
    What the Pipeline dock runs for Run Flow: ``_stages.flow_stage`` (DIS,
    forward + backward + occlusion into ``project/flow``) wrapped in
    ``with_layers``, which builds the ``flow`` and ``flow vectors`` layers at
    the end; one frame of the lazy ``flow`` layer is then computed.
``cams``
    What Run CAMs runs (``with_layers`` around ``write_cams`` with the flow, so
    f-CAMs too, the CAM layers rebuilt every 0.5 s) with a random-init
    ResNet-18 classifier saved in ``project/cam``, but at one scale without
    flip (``--cam-scales``): the dock's 4 scales + flip cost 15x, hours for
    2000 frames on a CPU. ``--cam-frames`` stops it after a prefix.

Per stage it prints RSS, peak RSS (VmHWM) and its anonymous / file-backed
parts against frames done, and the peak growth from the sample nearest
``--early`` frames to the end. ``--json FILE`` writes every sample.

    OMP_WAIT_POLICY=PASSIVE nice .venv/bin/python benchmarks/bench_long_video.py \
        [--frames 2000 --height 480 --width 640 --cam-frames 2000 --every 100]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KEY = "long"  # the video's folder in JPEGImages/ and its output name
CATEGORIES = [{"id": 1, "name": "disc"}, {"id": 2, "name": "box"}]
STAGES = ("open", "flow", "cams")
FIELDS = {"VmRSS": "rss", "VmHWM": "peak", "RssAnon": "anon", "RssFile": "file"}


def memory() -> dict[str, float]:
    """This process's RSS, peak RSS and the anonymous / file-backed parts of RSS, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in FIELDS:
            out[FIELDS[name]] = int(value.split()[0]) / 1024
    return out


# -- the video ----------------------------------------------------------------
def background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 smooth random texture, rolled each frame to pan the camera."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 215, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    fine = rng.integers(-20, 21, (height, width, 3))
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int64)
    return np.clip(smooth + fine, 0, 255).astype(np.uint8)


def render_frame(bg: np.ndarray, t: int) -> tuple[np.ndarray, list[int]]:
    """Frame ``t``: the background panned by (t/2, t) px, a disc always, a box in 2 of every 3 stretches of 240 frames.

    Returns
    -------
    frame : (H, W, 3) uint8 RGB
    tags : category ids present (1 disc, 2 box)
    """
    import cv2

    h, w = bg.shape[:2]
    frame = np.roll(bg, (t // 2, t), axis=(0, 1))
    r = max(h // 12, 3)
    cy = int(h / 2 + 0.3 * h * np.sin(2 * np.pi * t / 173))
    cx = int(w / 2 + 0.35 * w * np.sin(2 * np.pi * t / 211))
    cv2.circle(frame, (cx, cy), r, (230, 60, 40), -1)
    tags = [1]
    if (t // 240) % 3 != 2:
        side = max(h // 7, 4)
        x = int((w - side) * abs(((t * 3) % (2 * w)) / w - 1))
        y = int((h - side) * (0.2 + 0.1 * np.cos(2 * np.pi * t / 97)))
        cv2.rectangle(frame, (x, y), (x + side, y + side), (40, 70, 220), -1)
        frame[y : y + side : 4, x : x + side] = 250  # stripes: texture for the flow to follow
        tags.append(2)
    return frame, tags


def write_data(root: Path, n_frames: int, height: int, width: int) -> dict[str, Any]:
    """The video as ``root/long.mp4`` and as ``root/tags.json`` + ``root/JPEGImages/long/*.jpg``."""
    import av

    from training.atomic import write_bytes, write_json
    from training.synthetic import encode_jpeg

    bg = background(height, width)
    names, frame_tags = [], []
    with av.open(str(root / f"{KEY}.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "50"}
        for t in range(n_frames):
            frame, tags = render_frame(bg, t)
            names.append(f"{KEY}/{t:05d}.jpg")
            write_bytes(root / "JPEGImages" / names[-1], encode_jpeg(frame, 90))
            frame_tags.append({"video_id": 1, "frame": t, "category_ids": tags})
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    video = {"id": 1, "name": KEY, "file_names": names, "height": height, "width": width, "length": n_frames}
    write_json(root / "tags.json", {"videos": [video], "categories": CATEGORIES, "frame_tags": frame_tags})
    return {"mp4": str(root / f"{KEY}.mp4"), "tags": str(root / "tags.json")}


def save_random_classifier(run: Path) -> None:
    """A ``train-cam`` run folder holding a random-init ResNet-18 (seed 0) for the 2 classes."""
    import torch

    from training.atomic import write_json
    from training.cam.network import CAMNet
    from training.cam.train import CATEGORIES as CATEGORIES_JSON
    from training.cam.train import CHECKPOINT, CONFIG, CAMTrainConfig
    from training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = CAMNet(len(CATEGORIES), "resnet18")
    write_json(run / CONFIG, CAMTrainConfig(arch="resnet18").to_dict(), indent=1)
    write_json(run / CATEGORIES_JSON, CATEGORIES, indent=1)
    save_checkpoint(run / CHECKPOINT, {"model": model.state_dict()})


# -- the stages (each in its own process) --------------------------------------------
def open_stage(mp4: Path) -> Iterator[tuple[int, int] | str]:
    """The plugin's reader on the video; every frame read through the layer's dask array. Yields (done, total)."""
    from napari_vis_ws._reader import napari_get_reader

    reader = napari_get_reader(str(mp4))
    assert reader is not None, f"the plugin does not open {mp4}"
    [(data, kwargs, kind)] = reader(str(mp4))
    assert kind == "image" and kwargs["name"] == "frames"
    for t in range(data.shape[0]):
        frame = np.asarray(data[t])
        assert frame.shape == data.shape[1:]
        yield t + 1, data.shape[0]


def flow_stage(tags: Path, project: Path) -> Iterator[tuple[int, int] | str]:
    """The Pipeline dock's Run Flow, layers included. Yields (pairs done, total), then "layers" once built."""
    from napari_vis_ws._stage_layers import project_layers
    from napari_vis_ws._stages import flow_stage as dock_flow_stage
    from napari_vis_ws._stages import video_shape, video_source
    from napari_vis_ws._widgets.pipeline import with_layers
    from training.progress import Progress

    shape = video_shape(video_source(tags, 1))
    events = with_layers(dock_flow_stage(tags, project, 1), lambda: project_layers(project, KEY, CATEGORIES, shape))
    for event in events:
        if isinstance(event, Progress):
            yield event.done, event.total
        else:
            names = [kw["name"] for _, kw, _ in event]
            assert names == ["flow", "flow vectors"], names
            colors = event[0][0]
            assert np.asarray(colors[shape[0] // 2]).shape == (*shape[1:], 3)
            yield "layers"


def cams_stage(
    tags: Path, project: Path, scales: list[float], flip: bool, n_frames: int
) -> Iterator[tuple[int, int] | str]:
    """The Pipeline dock's Run CAMs (f-CAMs, layers refreshed) at ``scales``/``flip``. Yields (done, total)."""
    from napari_vis_ws._stage_layers import project_layers
    from napari_vis_ws._stages import video_shape, video_source
    from napari_vis_ws._widgets.pipeline import REFRESH_S, with_layers
    from training.cam.store import write_cams
    from training.progress import Progress

    shape = video_shape(video_source(tags, 1))
    run, out, flow = project / "cam", project / "cams", project / "flow"
    work = write_cams(tags, run, out, flow, scales=scales, flip=flip, video_ids=[1])

    def build() -> list[tuple]:
        return project_layers(project, KEY, CATEGORIES, shape, ("cams",))

    events = with_layers(work, build, REFRESH_S)
    try:
        for event in events:
            if isinstance(event, Progress):
                if event.done:
                    yield event.done, min(event.total, n_frames)
                if event.done >= n_frames:
                    break
    finally:
        events.close()


def worker(args: argparse.Namespace) -> None:
    """Run one stage in this process, printing one JSON sample per line."""
    data, project = Path(args.data), Path(args.data) / "project"
    if args.stage == "open":
        steps = open_stage(data / f"{KEY}.mp4")
    elif args.stage == "flow":
        steps = flow_stage(data / "tags.json", project)
    else:
        steps = cams_stage(data / "tags.json", project, args.cam_scales, args.cam_flip, args.cam_frames)
    start, last = time.perf_counter(), 0

    def sample(done: int, **note: str) -> None:
        print(json.dumps({"done": done, "s": time.perf_counter() - start, **note, **memory()}), flush=True)

    sample(0)
    for step in steps:
        if isinstance(step, str):  # a moment after the frames (layers built): sampled, marked with its name
            sample(last, note=step)
            continue
        done, total = step
        if done != last and (done == 1 or done % args.every == 0 or done in (args.early, total)):
            sample(done)
        last = done
    sample(last, note="end")


# -- the driver -------------------------------------------------------------------
def run_stage(args: argparse.Namespace, stage: str, data: Path) -> list[dict[str, Any]]:
    """Run ``stage`` in a fresh process; its samples."""
    cmd = [sys.executable, __file__, "--worker", stage, "--data", str(data), "--every", str(args.every)]
    cmd += ["--early", str(args.early), "--cam-frames", str(args.cam_frames)]
    cmd += ["--cam-scales", *map(str, args.cam_scales)] + (["--cam-flip"] if args.cam_flip else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def summary(samples: list[dict[str, Any]], early: int) -> dict[str, float]:
    """Peak RSS (and sampled anonymous RSS) after ~``early`` frames and after the last frame, in MiB.

    ``growth`` is the peak's growth from the one to the other; what happens
    after the frames (a sample with a ``note``: layers built) is left out of
    it and reported as ``peak_after``.
    """
    frames = [s for s in samples if "note" not in s]
    first = next((s for s in frames if s["done"] >= early), frames[-1])
    end = frames[-1]
    anon = max(s["anon"] for s in frames)
    return {
        "frames": end["done"],
        "seconds": samples[-1]["s"],
        "early_frames": first["done"],
        "peak_early": first["peak"],
        "peak_end": end["peak"],
        "growth": end["peak"] - first["peak"],
        "anon_early": first["anon"],
        "anon_max": anon,
        "anon_growth": anon - first["anon"],
        "peak_after": samples[-1]["peak"],
    }


def print_table(stage: str, samples: list[dict[str, Any]], early: int) -> None:
    s = summary(samples, early)
    print(f"\n### {stage}: {s['frames']} frames in {s['seconds']:.0f} s")
    print("| frames | s | RSS MiB | peak RSS MiB | anon MiB | file MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for x in samples:
        done = f"{x['done']} ({x['note']})" if "note" in x else x["done"]
        row = [done, f"{x['s']:.0f}", f"{x['rss']:.0f}", f"{x['peak']:.0f}", f"{x['anon']:.0f}", f"{x['file']:.0f}"]
        print("| " + " | ".join(map(str, row)) + " |")
    print(
        f"peak RSS after {s['early_frames']} frames {s['peak_early']:.0f} MiB, after {s['frames']}: "
        f"{s['peak_end']:.0f} MiB (growth {s['growth']:+.0f} MiB; anonymous {s['anon_early']:.0f} -> at most "
        f"{s['anon_max']:.0f} MiB); peak at the end {s['peak_after']:.0f} MiB",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--every", type=int, default=100, help="sample every N frames")
    ap.add_argument("--early", type=int, default=100, help="the growth is measured from this many frames")
    ap.add_argument("--cam-frames", type=int, default=2000, help="stop the CAM stage after this many frames")
    ap.add_argument("--cam-scales", type=float, nargs="+", default=[1.0])
    ap.add_argument("--cam-flip", action="store_true")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--json", help="write every sample and the summaries here")
    ap.add_argument("--keep", help="write the data here and keep it (default: a temp folder)")
    ap.add_argument("--worker", choices=STAGES, dest="stage", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="long-video-") as tmp:
        data = Path(args.keep) if args.keep else Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_data(data, args.frames, args.height, args.width)
        save_random_classifier(data / "project" / "cam")
        mp4 = (data / f"{KEY}.mp4").stat().st_size / 2**20
        print(f"wrote {args.frames} frames of {args.width}x{args.height} (mp4 {mp4:.0f} MiB + JPEGs) "
              f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k not in ("stage", "data")}}
        for stage in args.stages:
            samples = run_stage(args, stage, data)
            print_table(stage, samples, args.early)
            results[stage] = {"samples": samples, "summary": summary(samples, args.early)}
        flow = data / "project" / "flow" / f"{KEY}.flow.npy"
        cams = sum(p.stat().st_size for p in (data / "project" / "cams").rglob("*.npz"))
        results["disk_mib"] = {"flow": flow.stat().st_size / 2**20 if flow.is_file() else 0.0, "cams": cams / 2**20}
        print(f"\non disk: flow {results['disk_mib']['flow']:.0f} MiB, CAMs {results['disk_mib']['cams']:.0f} MiB")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
