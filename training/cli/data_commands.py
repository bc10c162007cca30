"""Data subcommands: ``sample``, ``tags``, ``info``, ``export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data subcommands to ``vis-ws``."""
    from training.cli import formatter

    p = sub.add_parser(
        "sample",
        help="generate the synthetic benchmark (YouTube-VIS layout, gt.json + tags.json)",
        description="Generate a deterministic synthetic video instance segmentation set: "
        "ROOT/JPEGImages/<video>/*.jpg, gt.json (ground truth), tags.json (frame tags), config.json.",
        formatter_class=formatter,
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--videos", type=int, default=4, help="number of videos")
    p.add_argument("--frames", type=int, default=16, help="frames per video")
    p.add_argument("--height", type=int, default=240, help="frame height")
    p.add_argument("--width", type=int, default=320, help="frame width")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.set_defaults(func=run_sample)

    p = sub.add_parser(
        "tags",
        help="frame tags (the weak labels): derive them from a ground truth, export or import a project's",
        description="Write frame-level class tags. SOURCE is a YouTube-VIS ground truth (a category is tagged "
        "in a frame where one of its instances is present), a frame-tags JSON, or a project folder (its "
        "tags.json). --out is a JSON file to write, or a project folder to import into: the videos SOURCE "
        "lists (matched by name, same frame count) get SOURCE's tags, classes matched by name (new ones "
        "added); the project's other videos keep theirs. Written atomically.",
        formatter_class=formatter,
    )
    p.add_argument("source", type=Path, help="ground-truth JSON, frame-tags JSON or project folder")
    p.add_argument("--out", required=True, type=Path, help="frame-tags JSON to write, or a project to import into")
    p.set_defaults(func=run_tags)

    p = sub.add_parser(
        "info",
        help="describe a video, a frame folder, a TIFF stack or a dataset JSON",
        formatter_class=formatter,
    )
    p.add_argument("input", type=Path, help="video file, folder of frames, TIFF stack, or JSON")
    p.add_argument(
        "--frames", type=Path, default=None, help="frames folder of a dataset JSON (default: JPEGImages/ beside it)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)

    p = sub.add_parser(
        "export",
        help="write instance labels (.npz volumes or a YouTube-VIS file) as YouTube-VIS or COCO JSON",
        description="Convert instance label volumes (.npz written by this tool) or a YouTube-VIS "
        "ground-truth file to YouTube-VIS JSON or COCO JSON (one image per frame), RLE masks. "
        "The output is written atomically.",
        formatter_class=formatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, help="label volumes (.npz) or one YouTube-VIS JSON")
    p.add_argument("--format", choices=("ytvis", "coco"), default="ytvis", help="output format")
    p.add_argument("--form", choices=("gt", "results"), default="gt", help="ground-truth dataset or results list")
    p.add_argument(
        "--categories", type=Path, default=None, help="JSON with a 'categories' list naming the category ids"
    )
    p.add_argument("--out", required=True, type=Path, help="JSON file to write")
    p.set_defaults(func=run_export)


def _progress_bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=None, file=sys.stderr)


def run_sample(args: argparse.Namespace) -> int:
    """``vis-ws sample``."""
    from training.synthetic import SyntheticConfig, generate_dataset

    for name in ("videos", "frames", "height", "width"):
        if getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be at least 1")
    if args.height < 64 or args.width < 64:
        raise InputError(None, "--height and --width must be at least 64")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "exists and is not a folder")
    # below 240 px objects keep their share of the frame (20-80 px at 240)
    s = min(1.0, min(args.height, args.width) / 240)
    options: dict[str, Any] = {"size_range": (max(4.0, 20.0 * s), 80.0 * s)} if s < 1 else {}
    cfg = SyntheticConfig(
        n_videos=args.videos, n_frames=args.frames, height=args.height, width=args.width, seed=args.seed, **options
    )
    with _progress_bar(args.videos, "sample") as bar:
        paths = generate_dataset(args.out, cfg, progress=lambda done, total: bar.update(done - bar.n))
    print(f"wrote {args.videos} videos of {args.frames} frames to {args.out}")
    for key in sorted(paths):
        print(f"  {key}: {paths[key]}")
    return 0


def run_tags(args: argparse.Namespace) -> int:
    """``vis-ws tags SOURCE --out FILE|PROJECT``: derive, export, or import into a project."""
    from training.atomic import write_json
    from training.data.new_project import import_tags
    from training.data.tags import load_tags, load_tags_or_derive
    from training.run_folder import Project

    source = Project(args.source).tags if args.source.is_dir() else args.source
    if args.source.is_dir() and not source.is_file():
        raise InputError(args.source, "is not a project (no tags.json): make one with 'vis-ws project new'")
    out = Project(args.out).tags if args.out.is_dir() else args.out
    if args.out.is_dir() and not out.is_file():
        raise InputError(args.out, "is a folder but not a project (no tags.json): --out takes a JSON file or a project")
    _refuse_overwriting_input(out, [source])
    tags = incoming = load_tags_or_derive(source)
    if args.out.is_dir():
        before = load_tags(out)
        tags = import_tags(before, incoming, source)
        added = [c["name"] for c in tags["categories"][len(before["categories"]) :]]
        names = ", ".join(str(v.get("name", v["id"])) for v in incoming["videos"])
        print(f"imported the tags of {names}" + (f"; classes added: {', '.join(added)}" if added else ""))
    write_json(out, tags, indent=1 if args.out.is_dir() else None)
    n_tagged = sum(1 for t in tags["frame_tags"] if t["category_ids"])
    frames, videos = len(tags["frame_tags"]), len(tags["videos"])
    print(f"wrote {out}: {frames} frames of {videos} videos tagged, {n_tagged} with a class")
    return 0


def _refuse_overwriting_input(out: Path, inputs: list[Path]) -> None:
    for p in inputs:
        if out.exists() and p.exists() and out.resolve() == p.resolve():
            raise InputError(out, "--out is also an input; refusing to overwrite it")


def describe(path: Path, frames: Path | None = None) -> dict[str, Any]:
    """What ``vis-ws info`` reports about ``path`` (a plain dict)."""
    from training.data.sources import load_dataset_json
    from training.data.video import open_frames

    if path.suffix.lower() == ".json":
        data = load_dataset_json(path)
        if "frame_tags" in data:
            kind = "frame tags"
        elif "annotations" in data:
            kind = "YouTube-VIS ground truth"
        else:
            kind = "YouTube-VIS videos"
        info: dict[str, Any] = {
            "path": str(path),
            "kind": kind,
            "videos": len(data["videos"]),
            "frames": sum(len(v["file_names"]) for v in data["videos"]),
            "categories": {c["id"]: c["name"] for c in data["categories"]},
        }
        if "annotations" in data:
            info["instances"] = len(data["annotations"])
        if "frame_tags" in data:
            info["tagged_frames"] = sum(1 for t in data["frame_tags"] if t["category_ids"])
        root = frames if frames is not None else path.parent / "JPEGImages"
        info["frames_folder"] = str(root) if root.is_dir() else None
        if any(v.get("source") for v in data["videos"]):  # a project's videos: read from their files
            info["sources"] = [str(v["source"]) for v in data["videos"] if v.get("source")]
        return info
    reader = open_frames(path)
    t, h, w, _ = reader.shape
    info = {"path": str(path), "kind": type(reader).__name__, "frames": t, "height": h, "width": w}
    fps = getattr(reader, "fps", 0.0)
    if fps:
        info["fps"] = fps
    return info


def run_info(args: argparse.Namespace) -> int:
    """``vis-ws info``."""
    info = describe(args.input, args.frames)
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>14}: {v}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``vis-ws export``."""
    from training.data.ytvis import gt_volume, load_ytvis, validate_categories
    from training.export import load_labels, write_coco, write_ytvis
    from training.json_io import read_json

    _refuse_overwriting_input(args.out, list(args.inputs) + ([args.categories] if args.categories else []))
    jsons = [p for p in args.inputs if p.suffix.lower() == ".json"]
    if jsons and len(args.inputs) > 1:
        raise InputError(jsons[0], "give one YouTube-VIS JSON or any number of .npz volumes, not both")
    categories: list[dict[str, Any]] | None = None
    if jsons:
        data = load_ytvis(jsons[0])
        volumes = [gt_volume(data, v["id"], jsons[0]) for v in data["videos"]]
        categories = data["categories"]
    else:
        volumes = []
        for p in args.inputs:
            if p.suffix.lower() != ".npz":
                raise InputError(p, "expected a .npz label volume or a YouTube-VIS .json")
            volumes.append(load_labels(p))
        ids = [v.video["id"] for v in volumes]
        if len(set(ids)) != len(ids):
            raise InputError(
                args.inputs[ids.index(next(i for i in ids if ids.count(i) > 1))],
                "two label volumes have the same video id",
            )
    if args.categories is not None:
        cat_data = read_json(args.categories)
        if not isinstance(cat_data, dict):
            raise InputError(args.categories, "expected a JSON object with a 'categories' list")
        categories = list(validate_categories(cat_data, args.categories).values())
    if categories is None:
        used = sorted({c for v in volumes for c in v.categories.values()})
        categories = [{"id": c, "name": f"class {c}"} for c in used]
    known = {c["id"] for c in categories}
    for v in volumes:
        unknown = sorted(set(v.categories.values()) - known)
        if unknown:
            raise InputError(args.categories, f"video {v.video['id']} uses category id {unknown[0]} that is not listed")
    writer = write_ytvis if args.format == "ytvis" else write_coco
    obj = writer(args.out, volumes, categories, form=args.form)
    anns = obj if isinstance(obj, list) else obj["annotations"]
    unit = "tubes" if args.format == "ytvis" else "masks"
    print(f"wrote {args.out}: {args.format} {args.form}, {len(volumes)} videos, {len(anns)} {unit}")
    return 0
