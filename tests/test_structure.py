"""Packaging contracts: headless backend, valid npe2 manifest, README commands."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

import training


def test_training_imports_neither_qt_nor_napari():
    modules = [m.name for m in pkgutil.walk_packages(training.__path__, "training.") if not m.name.endswith("__main__")]
    assert len(modules) > 10
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'vispy'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_manifest_validates_with_npe2():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "npe2"), "validate", "napari-vis-ws"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_installed_plugin_uses_the_root_manifest():
    from npe2 import PluginManifest

    installed = PluginManifest.from_distribution("napari-vis-ws")
    root = PluginManifest.from_file(REPO / "napari.yaml")
    assert installed.model_dump() == root.model_dump()
    assert {w.display_name for w in installed.contributions.widgets} >= {"Dataset"}


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    readme = (REPO / "README.md").read_text()
    commands = [ln.strip() for ln in readme.split("```")[1].splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == ["bash scripts/run.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    assert "torch==2.14.1" in (REPO / "scripts" / "env.sh").read_text()
