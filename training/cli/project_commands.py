"""``vis-ws project new|add|remove``: a project from a user's own videos (:mod:`training.data.new_project`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.errors import InputError
from training.run_folder import Project

FRAME_RANGE_HELP = (
    "only these frames of each video, 0-based, STOP excluded (0:250 is the first 250; 100: from frame 100 to the "
    "end): a cut of a long video, still read from its file"
)

EXTRACT_HELP = (
    "copy the frames into PROJECT/JPEGImages/NAME/ (JPEG, quality 95) instead of reading them from the video file: "
    "the project no longer needs the file, and training reads frames without seeking in a video"
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``project`` (with ``new``, ``add``, ``remove``) to ``vis-ws``."""
    from training.cli import formatter

    p = sub.add_parser(
        "project",
        help="a project from your own videos: PROJECT/tags.json, frames read from the files (nothing extracted)",
        description="Make a project of video files or frames folders and a class list. PROJECT/tags.json is a "
        "frame-tags file valid for every vis-ws command (vis-ws pipeline PROJECT/tags.json --out PROJECT); its "
        "videos are read from their files, which must stay where they are. No frame is tagged yet: tag them "
        "in the plugin, or edit frame_tags. Adding or removing videos keeps the others' ids, tags and results.",
        formatter_class=formatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", title="actions")
    actions.required = True
    new = actions.add_parser("new", help="make PROJECT/tags.json from videos and classes", formatter_class=formatter)
    new.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files or frames folders")
    new.add_argument("--classes", nargs="+", required=True, metavar="NAME", help="the class names to tag")
    new.add_argument("--out", required=True, type=Path, metavar="PROJECT", help="project folder (created)")
    new.add_argument("--frame-range", metavar="START:STOP", help=FRAME_RANGE_HELP)
    new.add_argument("--extract", action="store_true", help=EXTRACT_HELP)
    add = actions.add_parser("add", help="add videos to a project", formatter_class=formatter)
    add.add_argument("project", type=Path, help="project folder")
    add.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files or frames folders")
    add.add_argument("--frame-range", metavar="START:STOP", help=FRAME_RANGE_HELP)
    add.add_argument("--extract", action="store_true", help=EXTRACT_HELP)
    remove = actions.add_parser("remove", help="remove videos (by name) and their tags", formatter_class=formatter)
    remove.add_argument("project", type=Path, help="project folder")
    remove.add_argument("names", nargs="+", metavar="NAME", help="the videos' names in the project")
    p.set_defaults(func=run_project)


def run_project(args: argparse.Namespace) -> int:
    """``vis-ws project new|add|remove``: write PROJECT/tags.json atomically, then say what it holds."""
    from training.atomic import write_json
    from training.data.new_project import (
        add_videos,
        extract_frames,
        frame_range,
        new_project_tags,
        remove_videos,
        without_sources,
    )
    from training.data.tags import load_tags
    from training.data.ytvis import frames_root
    from training.progress import drive

    folder = args.out if args.action == "new" else args.project
    path = Project(folder).tags
    before: set[str] = set()  # the videos the project held before this command
    if args.action == "new":
        if path.exists():
            raise InputError(path, "exists: add videos with 'vis-ws project add', or choose another --out")
        if folder.exists() and not folder.is_dir():
            raise InputError(folder, "exists and is not a folder")
        tags = new_project_tags(args.videos, args.classes, frame_range(args.frame_range))
    else:
        if not path.is_file():
            raise InputError(folder, "is not a project (no tags.json): make one with 'vis-ws project new'")
        tags = load_tags(path)
        before = {str(v.get("name")) for v in tags["videos"]}
        if args.action == "add":
            tags = add_videos(tags, args.videos, frame_range(args.frame_range))
        else:
            tags = remove_videos(tags, args.names)
    if getattr(args, "extract", False):
        added = [str(v["name"]) for v in tags["videos"] if v.get("source") and v["name"] not in before]
        drive(extract_frames(tags, path, added))
        tags = without_sources(tags, added)
    write_json(path, tags, indent=1)
    frames = sum(len(v["file_names"]) for v in tags["videos"])
    classes = ", ".join(c["name"] for c in tags["categories"])
    print(f"wrote {path}: {len(tags['videos'])} videos, {frames} frames, classes {classes}")
    for v in tags["videos"]:
        cut = f" (frames {v['source_frames'][0]}:{v['source_frames'][1]})" if v.get("source_frames") else ""
        where = v.get("source") or frames_root(path) / Path(v["file_names"][0]).parent
        print(f"  {v['name']}: {v['length']} frames of {v['width']}x{v['height']} from {where}{cut}")
    return 0
