"""The run folder's names are spelled in training/run_folder.py only (issue 18): a renamed folder cannot drift."""

from __future__ import annotations

import ast
from pathlib import Path

from training import run_folder
from training.run_folder import Project

REPO = Path(__file__).resolve().parents[2]
SUB_FOLDERS = {"flow", "cam", "cams", "irn", "pseudo", "maskrcnn", "maskconsist", "full", "predictions"}
SUB_FOLDERS |= {"corrections", "targets", "matches"}
FILE_NAMES = {"checkpoint.pt", "config.json", "categories.json", "results.json", "eval.json"}
# a data folder, not a run: `vis-ws sample` writes DATA/config.json beside its frames
OTHER_FOLDERS = {("training/synthetic/dataset.py", "config.json")}


def spelled_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every run sub-folder joined with ``/`` and every run file name written in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and right.value in SUB_FOLDERS | FILE_NAMES:
                found.add((node.lineno, str(right.value)))
        elif isinstance(node, ast.Constant) and node.value in FILE_NAMES:
            found.add((node.lineno, str(node.value)))
    return sorted(found)


def test_no_module_but_run_folder_spells_a_run_folder_name() -> None:
    offenders = []
    for package in ("training", "napari_vis_ws"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "training/run_folder.py":
                continue
            names = [(line, n) for line, n in spelled_names(path) if (rel, n) not in OTHER_FOLDERS]
            offenders += [f"{rel}:{line}: {n!r}" for line, n in names]
    assert not offenders, "spell these with training.run_folder:\n" + "\n".join(offenders)


def test_the_scan_finds_a_spelled_name(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('from pathlib import Path\nrun = Path("r")\nckpt = run / "cam" / "checkpoint.pt"\n')
    assert sorted(spelled_names(module)) == [(3, "cam"), (3, "checkpoint.pt")]


def test_project_paths_follow_the_documented_layout(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert project.cams == tmp_path / "cams" and project.pseudo == tmp_path / "pseudo"
    assert project.detectors == (tmp_path / "maskconsist", tmp_path / "maskrcnn")  # MaskConsist preferred
    assert project.matches("v1") == [tmp_path / "matches/v1.json", tmp_path / "maskconsist/matches/v1.json"]
    assert run_folder.checkpoint(project.irn) == tmp_path / "irn/checkpoint.pt"
    for name in ("flow", "cam", "cams", "irn", "pseudo", "maskrcnn", "maskconsist", "full", "corrections"):
        assert f"{name}/" in (run_folder.__doc__ or ""), f"{name}/ is missing from the layout in the docstring"
