"""The Training dock's protocol without Qt: the labels a detector trains on, and CLI errors in the dock's words."""

from __future__ import annotations

from napari_vis_ws._training import build_command, dock_error, stage_name


def test_detector_stages_train_on_the_labels_folder_chosen(tmp_path):
    tags, p = tmp_path / "tags.json", tmp_path / "proj"
    for stage in ("maskrcnn", "maskconsist"):
        argv = build_command(stage, tags, p, {"pseudo": str(p / "targets")})
        assert argv[argv.index("--pseudo") + 1] == str(p / "targets")
        argv = build_command(stage, tags, p, {})
        assert argv[argv.index("--pseudo") + 1] == str(p / "pseudo")  # the pseudo-labels by default
    assert "--pseudo" not in build_command("classifier", tags, p, {"pseudo": str(p / "targets")})


def test_cli_errors_name_the_dock_controls_instead_of_flags():
    line = "vis-ws train-cam: error: /p/cam: already holds a trained checkpoint: pass --resume to continue it, "
    line += "or choose another --out"
    assert dock_error(line) == (
        "vis-ws train-cam: error: /p/cam: already holds a trained checkpoint: tick 'resume from the checkpoint' "
        "to continue it, or choose another Output folder"
    )
    assert dock_error("x.json: --epochs and --iterations must be positive") == (
        "x.json: the Epochs box and the Iterations box must be positive"
    )
    assert dock_error("/p/ckpt: no checkpoint to resume from (run without --resume to start)") == (
        "/p/ckpt: no checkpoint to resume from (untick 'resume from the checkpoint' to start)"
    )
    assert dock_error("--weights takes a local file; use --device cpu") == (
        "the Weights box takes a local file; choose cpu in the Device box"
    )
    # flags the dock has no control for are typed in Options: they stay as they are
    assert dock_error("resume with a lower --lr (--out-dir stays)") == "resume with a lower --lr (--out-dir stays)"


def test_stage_names_read_as_in_the_close_dialog():
    assert stage_name("maskconsist") == "MaskConsist, step 2"
    assert stage_name("classifier") == "Classifier"
