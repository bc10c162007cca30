"""The Pipeline dock's stages make what `vis-ws` makes: one stage sequence, one set of recorded settings (issue 18)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_vis_ws._stages import STAGE_WORK, missing_before, predictions_stage
from training.cli import main
from training.errors import InputError
from training.irn.pseudo_labels import SETTINGS
from training.run_folder import Project

KEY = "synth_0000"  # video 1


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """2 videos x 3 frames through `vis-ws pseudo-labels`, at non-default instance settings."""
    root = tmp_path_factory.mktemp("stages")
    size = ["--videos", "2", "--frames", "3", "--height", "64", "--width", "80", "--seed", "3"]
    assert main(["sample", "--out", str(root / "data"), *size]) == 0
    run = ["--arch", "resnet18", "--cam-epochs", "1", "--cam-batch-size", "4", "--cam-crop", "64", "--irn-epochs", "1",
           "--irn-batch-size", "4", "--irn-crop", "64", "--irn-radius", "5", "--progress", "json",
           "--instance-bg", "0.6", "--instance-norm", "class", "--instance-split", "0.3"]  # fmt: skip
    assert main(["pseudo-labels", str(root / "data/tags.json"), "--out", str(root / "run"), *run]) == 0
    return root


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _redo_from_the_dock(cli_run: Path, tmp_path: Path, stage: str, folder: str) -> Path:
    """A copy of the CLI's run without video 1's output of ``stage``, then the dock's stage for video 1."""
    run = tmp_path / "run"
    shutil.copytree(cli_run / "run", run)
    for path in (run / folder).glob(f"{KEY}*"):  # flow/<video>.flow.*, cams/<video>/, pseudo/<video>/
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    events = list(STAGE_WORK[stage](cli_run / "data/tags.json", run, 1))
    assert events and not any("already done" in (e.message or "") for e in events)
    return run


@pytest.mark.parametrize(("stage", "folder"), [("flow", "flow"), ("cams", "cams"), ("pseudo-labels", "pseudo")])
def test_a_stage_run_from_the_dock_writes_what_the_cli_wrote(cli_run, tmp_path, stage, folder):
    # The dock and `vis-ws pseudo-labels` drive the same training.pipeline stages with the run's recorded
    # settings: the dock's pseudo-labels dropped `--instance-bg` before (issue 17 §3, issue 18).
    run = _redo_from_the_dock(cli_run, tmp_path, stage, folder)
    made = sorted(p.relative_to(run) for p in (run / folder).rglob("*") if p.is_file() and KEY in str(p))
    assert made and made == sorted(
        p.relative_to(cli_run / "run") for p in (cli_run / "run" / folder).rglob("*") if p.is_file() and KEY in str(p)
    )
    for rel in made:
        ours, theirs = run / rel, cli_run / "run" / rel
        if rel.suffix == ".npz":
            a, b = _arrays(ours), _arrays(theirs)
            assert a.keys() == b.keys(), rel
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{rel}:{k}")
        elif rel.suffix == ".json":  # records name the run's folders: the same up to where the run lies
            same_place = ours.read_text().replace(str(run), str(cli_run / "run"))
            assert json.loads(same_place) == json.loads(theirs.read_text()), rel
    if stage == "pseudo-labels":
        record = json.loads((run / folder / KEY / "pseudo.json").read_text())
        assert record["instance_bg"] == 0.6 and record["instance_norm"] == "class" and record["instance_split"] == 0.3


def test_the_cli_run_again_without_options_keeps_the_recorded_instance_settings(cli_run, tmp_path, capsys):
    # Resuming must not relabel every video at the default background score because the flag was not retyped.
    run = tmp_path / "run"
    shutil.copytree(cli_run / "run", run)
    stamp = (run / "pseudo" / KEY / "pseudo.npz").stat().st_mtime_ns
    again = ["--arch", "resnet18", "--cam-epochs", "1", "--cam-batch-size", "4", "--cam-crop", "64", "--irn-epochs",
             "1", "--irn-batch-size", "4", "--irn-crop", "64", "--irn-radius", "5", "--progress", "json"]  # fmt: skip
    capsys.readouterr()
    assert main(["pseudo-labels", str(cli_run / "data/tags.json"), "--out", str(run), *again]) == 0
    assert "already done, skipped" in capsys.readouterr().out
    assert (run / "pseudo" / KEY / "pseudo.npz").stat().st_mtime_ns == stamp
    settings = json.loads((Project(run).pseudo / SETTINGS).read_text())
    assert settings == {"instance_bg": 0.6, "instance_norm": "class", "instance_split": 0.3}


def test_a_dock_stage_on_a_video_the_tags_do_not_hold_names_it(cli_run):
    with pytest.raises(InputError, match="no video with id 7"):
        list(STAGE_WORK["cams"](cli_run / "data/tags.json", cli_run / "run", 7))


def test_a_dock_stage_without_its_model_says_what_to_train(cli_run, tmp_path):
    run = tmp_path / "run"
    (run / "cams").mkdir(parents=True)
    with pytest.raises(InputError, match=r"no trained classifier in .*cam: Run all trains what is missing"):
        list(STAGE_WORK["cams"](cli_run / "data/tags.json", run, 1))
    with pytest.raises(InputError, match=r"no trained IRN in .*irn: Run all trains what is missing"):
        list(STAGE_WORK["pseudo-labels"](cli_run / "data/tags.json", run, 1))
    with pytest.raises(InputError, match=r"no trained detector in .*maskconsist or .*maskrcnn: Run all trains one"):
        list(predictions_stage(cli_run / "data/tags.json", run, 1, []))
    assert missing_before("predictions", run, "x") == (
        f"no trained detector in {run / 'maskconsist'} or {run / 'maskrcnn'}", "detector")  # fmt: skip


def test_what_a_stage_needs_first_is_planned_back_to_what_can_run(cli_run, tmp_path):
    run = tmp_path / "run"
    for model in ("cam", "irn"):
        shutil.copytree(cli_run / "run" / model, run / model)
    key = "synth_0000"
    assert missing_before("flow", run, key) is None
    assert missing_before("cams", run, key) == (f"no optical flow of video {key} in {run / 'flow'}", ["flow", "cams"])
    assert missing_before("pseudo-labels", run, key) == (
        f"no CAMs of video {key} in {run / 'cams'}", ["flow", "cams", "pseudo-labels"])  # fmt: skip
    shutil.copytree(cli_run / "run" / "flow", run / "flow")
    assert missing_before("pseudo-labels", run, key)[1] == ["cams", "pseudo-labels"]
    assert missing_before("pseudo-labels", cli_run / "run", key) is None
