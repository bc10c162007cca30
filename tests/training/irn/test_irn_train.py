"""IRN / flowIRN training, pseudo-label generation and `vis-ws pseudo-labels` on a tiny set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SCALER_STATE, irn_inputs
from ddp_checks import json_events, one_thread, torchrun, train_both_ways

from training.checkpoint import load_checkpoint
from training.cli import main
from training.errors import InputError, TrainingStopped
from training.export import load_labels
from training.irn.data import RelationFrames, crop_origin, flow_at_grid, rescale_item
from training.irn.pseudo_labels import (
    default_instance_norm,
    default_instance_split,
    make_pseudo_labels,
    paint_instances,
    recorded_settings,
)
from training.irn.train import IRNTrainConfig, load_irn_run, train_irn

FAST = {"epochs": 2, "batch_size": 4, "crop": 64, "radius": 5, "seed": 3}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Tags, flow, a 1-epoch classifier and its CAMs + f-CAMs for 2 videos x 4 frames of 64x80."""
    return irn_inputs(tmp_path_factory.mktemp("irn"))


def _train(root: Path, out: Path, variant: str = "flowirn", **kw) -> list:
    cfg = IRNTrainConfig(variant=variant, **{**FAST, **kw})
    gen = train_irn(cfg, root / "data/tags.json", root / "cam", root / "cams", out, root / "flow")
    return list(gen)


@pytest.mark.parametrize("variant", ["irn", "irn+fbound", "irn+fcam", "flowirn"])
def test_every_table_4_variant_trains_with_finite_losses(prepared, tmp_path, variant):
    events = _train(prepared, tmp_path / "run", variant)
    losses = [e.metrics["loss"] for e in events if "loss" in e.metrics]
    assert len(losses) == 4 and all(np.isfinite(losses))
    fbound = [e.metrics["fbound"] for e in events if "fbound" in e.metrics]
    assert (max(fbound) > 0) == (variant in ("irn+fbound", "flowirn"))  # the flow loss only where asked
    model, cats = load_irn_run(tmp_path / "run")
    assert [c["name"] for c in cats] == ["disc", "box", "triangle", "star"]
    assert not model.training
    channels_last = [p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4]
    assert channels_last and all(channels_last)  # the fast layout for inference (training.device.fast_layout)


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(prepared, tmp_path, loss_scaling):
    _train(prepared, tmp_path / "full")
    cfg = IRNTrainConfig(**FAST)
    gen = train_irn(cfg, prepared / "data/tags.json", prepared / "cam", prepared / "cams", tmp_path / "cut",
                    prepared / "flow")  # fmt: skip
    for ev in gen:
        if ev.done == 1 and "loss" in ev.metrics:
            break
    gen.close()  # cancelled after one step: the checkpoint is saved
    list(train_irn(cfg, prepared / "data/tags.json", prepared / "cam", prepared / "cams", tmp_path / "cut",
                   prepared / "flow", resume=True))  # fmt: skip
    a = torch.load(tmp_path / "full/checkpoint.pt", weights_only=True)["model"]
    cut = torch.load(tmp_path / "cut/checkpoint.pt", weights_only=True)
    assert all(torch.equal(a[k], cut["model"][k]) for k in a)
    assert cut["scaler"] == SCALER_STATE and loss_scaling == [SCALER_STATE]  # AMP's loss scale is kept (issue 18)


def test_flow_variants_need_the_flow(prepared, tmp_path):
    cfg = IRNTrainConfig(variant="irn+fbound", **FAST)
    with pytest.raises(InputError, match="needs --flow"):
        list(train_irn(cfg, prepared / "data/tags.json", prepared / "cam", prepared / "cams", tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(prepared, tmp_path, monkeypatch):
    cfg = IRNTrainConfig(**FAST)
    gen = train_irn(cfg, prepared / "data/tags.json", prepared / "cam", prepared / "cams", tmp_path / "run",
                    prepared / "flow")  # fmt: skip
    next(ev for ev in gen if ev.message.startswith("epoch 1/2"))
    gen.close()
    before = (tmp_path / "run/checkpoint.pt").read_bytes()
    import training.irn.train as irn_train

    real = irn_train.irn_total_loss
    monkeypatch.setattr(irn_train, "irn_total_loss", lambda *a, **k: real(*a, **k)._replace(total=torch.tensor(np.nan)))
    gen = train_irn(cfg, prepared / "data/tags.json", prepared / "cam", prepared / "cams", tmp_path / "run",
                    prepared / "flow", resume=True)  # fmt: skip
    with pytest.raises(TrainingStopped, match="loss became nan at epoch 2 step 3"):
        list(gen)
    assert (tmp_path / "run/checkpoint.pt").read_bytes() == before


def test_mirrored_crops_mirror_the_labels_and_reverse_horizontal_motion(prepared):
    ds = RelationFrames(
        prepared / "data/tags.json", prepared / "cams", prepared / "flow", use_fcams=True, crop=96, scales=(1, 1)
    )
    labels = ds.labels(0)
    assert labels.shape == (16, 20) and set(np.unique(labels)) <= {0, 1, 2, 3, 4, 255}
    for epoch in range(6):
        ds.set_epoch(epoch)
        x, lab, flow = ds[0]
        assert x.shape == (3, 96, 96) and lab.shape == (24, 24) and flow.shape == (3, 24, 24)
        placed = lab != 255
        grid_flow = torch.from_numpy(ds.flow(0, labels.shape))
        mirrored = torch.equal(lab[placed].reshape(-1), torch.from_numpy(labels).flip(-1).reshape(-1)) and not (
            torch.equal(lab[placed].reshape(-1), torch.from_numpy(labels).reshape(-1))
        )
        if mirrored:
            assert torch.allclose(flow[0][placed].reshape(-1), -grid_flow[0].flip(-1).reshape(-1))


def test_trained_irn_subtracts_the_mean_displacement_of_its_training_frames(prepared, tmp_path):
    # IRN measures the mean of D over the frames once trained; an EMA from 0 with momentum 0.01 left 89 %
    # of the offset after 12 steps
    from training.cam.data import normalize
    from training.working_scale import recorded_working_size

    _train(prepared, tmp_path / "run", epochs=1)
    model, _ = load_irn_run(tmp_path / "run")
    size = recorded_working_size(tmp_path / "run")  # the mean is of the frames as IRN sees them: upsampled
    ds = RelationFrames(prepared / "data/tags.json", prepared / "cams", use_fcams=True, crop=64, working_size=size)
    assert size == 360 and ds.image(0).shape[0] == 360 > ds.frames.image(0).shape[0]
    with torch.no_grad():
        means = [model(normalize(ds.image(i))[None])[1].mean(dim=(0, 2, 3)) for i in range(len(ds))]
    assert model.mean_shift.running_mean.abs().max() > 1e-3
    assert torch.stack(means).mean(0).abs().max() < 1e-4


def test_displacement_branch_trains_at_ten_times_the_boundary_rate_without_momentum(prepared, tmp_path):
    events = _train(prepared, tmp_path / "run", epochs=1)
    state = load_checkpoint(tmp_path / "run/checkpoint.pt")
    groups = state["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == [0.1, pytest.approx(1.0)]  # IRN's effective rates
    assert all(g["momentum"] == 0 for g in groups)
    assert len(groups[0]["params"]) == 5 * 3 + 2  # the boundary branch: 5 conv+GroupNorm units, the 1x1 out
    assert any("mean displacement" in (e.message or "") for e in events)


def test_flow_is_known_only_where_not_occluded_and_never_past_the_frame(prepared):
    # flowIRN's f-Bound must not see the crop's padding (flow 0 next to real motion) as a motion boundary
    ds = RelationFrames(prepared / "data/tags.json", prepared / "cams", prepared / "flow", use_fcams=True,
                        crop=96, margin=4)  # fmt: skip
    flow = ds.flows[0]
    assert flow is not None
    grid = ds.labels(0).shape
    occluded = flow.occlusion(ds.frames.items[0].frame)
    known = ds.flow(0, grid)[2]
    assert set(np.unique(known)) <= {0.0, 1.0}
    assert np.array_equal(known == 0, occluded.reshape(grid[0], 4, grid[1], 4).mean(axis=(1, 3)) > 0.5)
    for epoch in range(8):
        ds.set_epoch(epoch)
        x, _, fl = ds[0]
        padding = (x.abs().sum(0) == 0).reshape(24, 4, 24, 4).all(dim=3).all(dim=1)
        assert padding.any() and not fl[2][padding].any() and not fl[:2][:, padding].any()


@pytest.mark.parametrize("grid", [(30, 40), (16, 20)])
def test_with_a_margin_every_grid_cell_of_the_frame_is_sometimes_a_pair_source(grid):
    # issue 17: at 120x160 (grid 30x40), crop 112 and radius 10, pairs start only in crop rows [0, g - r')
    # and columns [r', g - r'): crops kept on the frame never made 61 % of its cells a pair source
    from training.irn.path_index import path_index

    side, margin = 28, path_index(10).margin
    h, w = grid

    def sources(m: int) -> np.ndarray:
        covered = np.zeros(grid, bool)
        gen = torch.Generator().manual_seed(0)
        for _ in range(3000):
            y0, x0 = crop_origin(grid, side, m, gen)
            rows = np.arange(max(0, y0), min(h, y0 + side - margin))
            cols = np.arange(max(0, x0 + margin), min(w, x0 + side - margin))
            covered[np.ix_(rows, cols)] = True
        return covered

    assert sources(margin).all()
    if grid == (30, 40):
        assert sources(0).mean() < 0.4  # the crops of before: most cells never a source


def test_rescaled_items_keep_classes_grid_alignment_and_scale_the_flow():
    labels = torch.zeros(10, 12, dtype=torch.uint8)
    labels[2:6, 3:9] = 2
    labels[7:, :] = 255
    image = torch.randn(3, 40, 48)
    flow = torch.zeros(2, 10, 12)
    flow[0], flow[1] = 1.5, -0.5
    x, lab, fl = rescale_item(image, labels, flow, 1.5)
    assert x.shape == (3, 60, 72) and lab.shape == (15, 18) and fl.shape == (2, 15, 18)
    assert set(lab.unique().tolist()) == {0, 2, 255} and lab.dtype == torch.uint8
    assert abs(int((lab == 2).sum()) - 24 * 1.5**2) <= 6  # the object grows with the frame
    assert torch.allclose(fl[0], torch.tensor(2.25)) and torch.allclose(fl[1], torch.tensor(-0.75))
    x, lab, fl = rescale_item(image, labels, flow, 0.5)
    assert x.shape == (3, 20, 24) and lab.shape == (5, 6) and torch.allclose(fl[0], torch.tensor(0.75))
    same = rescale_item(image, labels, flow, 1.02)  # rounds to the same grid: untouched
    assert same[0] is image and same[1] is labels


def test_crf_relation_labels_are_refined_at_frame_size_then_sampled_on_the_grid(prepared):
    # IRN's CRF settings (bilateral sxy 50, srgb 5) are in image pixels: refining at the stride-4 grid
    # would smooth over 4x the distance. The grid labels are the frame-size labels at pixels 4i, 4j.
    pytest.importorskip("pydensecrf.densecrf")
    from training.cam.store import read_frame_cams
    from training.irn.ir_labels import ir_labels

    ds = RelationFrames(prepared / "data/tags.json", prepared / "cams", use_fcams=True, crop=64, crf=True)
    item = ds.frames.items[1]
    maps = read_frame_cams(prepared / "cams", ds.frames.keys[item.video], item.frame)
    cols = [ds.column[int(k)] for k in maps.keys]
    full = ir_labels(maps.fcams_high_res, cols, ds.frames.image(1), crf=True)
    labels = ds.labels(1)
    assert labels.shape == maps.fcams.shape[1:] == (16, 20)
    assert np.array_equal(labels, full[::4, ::4])
    assert not np.array_equal(labels, ir_labels(maps.fcams, cols, ds.frames.image(1), crf=True))


def test_flow_is_resized_to_the_grid_in_grid_pixels():
    flow = np.zeros((64, 80, 2), np.float32)
    flow[..., 0] = 8.0  # 8 image pixels to the right = 2 grid pixels
    out = flow_at_grid(flow, (16, 20))
    assert out.shape == (2, 16, 20) and np.allclose(out[0], 2.0) and np.allclose(out[1], 0.0)


def test_higher_scored_detections_are_painted_on_top():
    from training.irn.inference import Instance

    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.ones((4, 4), bool)
    labels, ids = paint_instances([Instance(1, 0.9, a), Instance(2, 0.3, b)], (4, 4), first_id=5)
    assert ids == [5, 6] and (labels[:2] == 5).all() and (labels[2:] == 6).all()


@pytest.mark.slow
def test_pseudo_labels_write_volumes_intermediates_and_json_then_skip(prepared, tmp_path):
    _train(prepared, tmp_path / "irn", epochs=1)
    out = tmp_path / "pseudo"
    events = list(make_pseudo_labels(prepared / "data/tags.json", tmp_path / "irn", prepared / "cams", out))
    assert events[-1].done == events[-1].total == 8
    vol = load_labels(out / "synth_0000" / "pseudo.npz")
    assert vol.labels.shape == (4, 64, 80)
    assert set(vol.categories.values()) <= {1, 2, 3, 4}
    with np.load(out / "synth_0000" / "irn.npz") as z:
        assert z["boundary"].shape == (4, 16, 20) and z["displacement"].shape == (4, 2, 16, 20)
        assert z["centroids"].ndim == 2 and z["centroids"].shape[1] == 3
    res = json.loads((out / "pseudo_labels.json").read_text())
    assert len(res) == sum(len(load_labels(out / k / "pseudo.npz").categories) for k in ("synth_0000", "synth_0001"))
    again = list(make_pseudo_labels(prepared / "data/tags.json", tmp_path / "irn", prepared / "cams", out))
    assert sum("already done" in e.message for e in again) == 2


@pytest.mark.slow
def test_pseudo_labels_command_runs_every_stage_and_resumes(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["pseudo-labels", str(prepared / "data/tags.json"), "--out", str(run), "--arch", "resnet18",
            "--cam-epochs", "1", "--cam-batch-size", "4", "--cam-crop", "64", "--irn-epochs", "1",
            "--irn-batch-size", "4", "--irn-crop", "64", "--irn-radius", "5", "--progress", "json"]  # fmt: skip
    assert main(args) == 0
    assert (run / "pseudo" / "pseudo_labels.json").is_file()
    stamp = (run / "irn" / "checkpoint.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "already done, skipped" in out and (run / "irn" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert main(["eval", "--gt", str(prepared / "data/gt.json"), "--results", str(run / "pseudo/pseudo_labels.json"),
                 "--frame-level", "--json"]) == 0  # fmt: skip


def test_pseudo_labels_command_refuses_bad_tags_without_writing(tmp_path, capsys):
    bad = tmp_path / "tags.json"
    bad.write_text('{"videos": []}')
    assert main(["pseudo-labels", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "missing 'categories'" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_higher_instance_background_score_gives_tighter_pseudo_labels_and_redoes_the_videos(prepared, tmp_path):
    # on the classifier's features: after one step on ImageNet Lite0's, every pixel is labelled at 0.25 and 0.6 alike
    _train(prepared, tmp_path / "irn", epochs=1, backbone="classifier")
    tags, irn, cams, out = prepared / "data/tags.json", tmp_path / "irn", prepared / "cams", tmp_path / "pseudo"
    list(make_pseudo_labels(tags, irn, cams, out, video_ids=[1]))
    loose = load_labels(out / "synth_0000" / "pseudo.npz").labels > 0
    events = list(make_pseudo_labels(tags, irn, cams, out, video_ids=[1], bg_threshold=0.6))
    assert not any("already done" in e.message for e in events)  # done at 0.25: redone at 0.6
    tight = load_labels(out / "synth_0000" / "pseudo.npz").labels > 0
    assert loose.any() and tight.sum() < loose.sum() and not (tight & ~loose).any()
    assert json.loads((out / "synth_0000" / "pseudo.json").read_text())["instance_bg"] == 0.6
    again = list(make_pseudo_labels(tags, irn, cams, out, video_ids=[1], bg_threshold=0.6))
    assert any("already done" in e.message for e in again)
    norm, split = default_instance_norm(irn), default_instance_split(irn)
    made = {"instance_bg": 0.6, "instance_norm": norm, "instance_split": split}
    assert recorded_settings(out) == made  # the Pipeline dock labels with these
    (out / "settings.json").unlink()  # a folder from before settings.json: the videos' records tell
    assert recorded_settings(out) == made
    assert recorded_settings(tmp_path / "none") == {}
    other = "frame" if norm == "class" else "class"
    events = list(make_pseudo_labels(tags, irn, cams, out, video_ids=[1], bg_threshold=0.6, instance_norm=other))
    assert not any("already done" in e.message for e in events)  # made with the other normalisation: redone
    assert recorded_settings(out)["instance_norm"] == other
    again_split = {"bg_threshold": 0.6, "instance_norm": other, "instance_split": 1.5}
    events = list(make_pseudo_labels(tags, irn, cams, out, video_ids=[1], **again_split))
    assert not any("already done" in e.message for e in events)  # and with another split: redone
    assert recorded_settings(out)["instance_split"] == 1.5
    assert json.loads((out / "synth_0000" / "pseudo.json").read_text())["instance_split"] == 1.5


@pytest.mark.parametrize("value", ["0", "1", "-0.2", "nan"])
def test_pseudo_labels_command_refuses_an_instance_background_outside_0_1(prepared, tmp_path, capsys, value):
    run = tmp_path / "run"
    assert main(["pseudo-labels", str(prepared / "data/tags.json"), "--out", str(run), "--instance-bg", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--instance-bg must lie in (0, 1)" in err and not run.exists()


@pytest.mark.parametrize(
    ("command", "value"), [("pseudo-labels", "-0.1"), ("pipeline", "2.5"), ("pseudo-labels", "nan")]
)
def test_an_instance_split_outside_0_2_is_refused_in_one_line(prepared, tmp_path, capsys, command, value):
    run = tmp_path / "run"
    assert main([command, str(prepared / "data/tags.json"), "--out", str(run), "--instance-split", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--instance-split must lie in [0, 2] (0: off)" in err and not run.exists()


@pytest.mark.parametrize("command", ["pseudo-labels", "pipeline"])
def test_a_negative_motion_split_is_refused_in_one_line_before_anything_is_written(prepared, tmp_path, capsys, command):
    run = tmp_path / "run"
    assert main([command, str(prepared / "data/tags.json"), "--out", str(run), "--motion-split", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--motion-split must be >= 0" in err and not run.exists()


def test_the_default_instance_background_is_irns_unless_the_classifier_was_frozen(tmp_path):
    # a frozen ImageNet classifier (the default) has diffuse CAMs: 0.85 (chosen on a validation set), else IRN's 0.25
    import argparse

    from training.cli import build_parser
    from training.irn.inference import INSTANCE_BG, INSTANCE_NORMS
    from training.irn.losses import MOTION_SPLIT
    from training.irn.ncut import SPLIT_NCUT
    from training.irn.pseudo_labels import (
        FROZEN_CLASSIFIER_BG,
        FROZEN_CLASSIFIER_NORM,
        FROZEN_CLASSIFIER_SPLIT,
        default_instance_bg,
    )
    from training.working_scale import WORKING_SIZE

    # what `vis-ws pseudo-labels` tells and does by default is the backend's (no copies in the CLI)
    assert (INSTANCE_BG, FROZEN_CLASSIFIER_BG) == (0.25, 0.85)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {a.dest: a for a in sub.choices["pseudo-labels"]._actions}
    assert f"else {FROZEN_CLASSIFIER_BG} for a frozen" in options["instance_bg"].help
    assert f"else IRN's {INSTANCE_BG}" in options["instance_bg"].help
    assert tuple(options["instance_norm"].choices) == INSTANCE_NORMS
    assert f"else {FROZEN_CLASSIFIER_NORM} for a frozen" in options["instance_norm"].help
    assert FROZEN_CLASSIFIER_SPLIT == SPLIT_NCUT and f"else {SPLIT_NCUT} for a frozen" in options["instance_split"].help
    assert options["working_size"].default == WORKING_SIZE
    assert options["motion_split"].default == MOTION_SPLIT == IRNTrainConfig().motion_split
    for arch, freeze, expected in [("efficientnet_lite0", "auto", 0.85), ("resnet18", "auto", 0.25),
                                   ("efficientnet_lite0", "none", 0.25)]:  # fmt: skip
        project = tmp_path / f"{arch}-{freeze}"
        (project / "cam").mkdir(parents=True)
        (project / "irn").mkdir()
        (project / "cam" / "config.json").write_text(json.dumps({"arch": arch, "freeze": freeze}))
        (project / "irn" / "config.json").write_text(json.dumps({"cam_run": "cam"}))  # relative: the project's
        assert default_instance_bg(project / "irn") == expected
        assert default_instance_norm(project / "irn") == ("class" if expected == 0.85 else "frame")  # go together
        assert default_instance_split(project / "irn") == (SPLIT_NCUT if expected == 0.85 else 0.0)
    assert default_instance_bg(tmp_path / "nowhere") == INSTANCE_BG
    assert default_instance_norm(tmp_path / "nowhere") == "frame"  # IRN's
    assert default_instance_split(tmp_path / "nowhere") == 0.0  # IRN splits nothing


def test_pseudo_labels_of_one_video_keep_the_others_in_the_set_json(prepared, tmp_path):
    _train(prepared, tmp_path / "irn", epochs=1)
    out = tmp_path / "pseudo"
    list(make_pseudo_labels(prepared / "data/tags.json", tmp_path / "irn", prepared / "cams", out, video_ids=[2]))
    assert not (out / "synth_0000").exists() and (out / "synth_0001" / "pseudo.npz").is_file()
    list(make_pseudo_labels(prepared / "data/tags.json", tmp_path / "irn", prepared / "cams", out, video_ids=[1]))
    res = json.loads((out / "pseudo_labels.json").read_text())
    assert {r["video_id"] for r in res} == {1, 2}


@pytest.mark.slow
def test_train_irn_nproc_2_matches_single_process_layout_and_ranks_agree(prepared, tmp_path):
    tags = str(prepared / "data/tags.json")
    args = ["train-irn", tags, "--cam-model", str(prepared / "cam"), "--cams", str(prepared / "cams"),
            "--flow", str(prepared / "flow"), "--irn-epochs", "1", "--irn-batch-size", "4", "--irn-crop", "64",
            "--irn-radius", "5", "--seed", "3", "--device", "cpu", "--progress", "json"]  # fmt: skip
    mean = "mean_shift.running_mean"
    runs = train_both_ways(args, tmp_path, steps=2, measured_after=(mean,))  # 2 steps of 4 frames
    stored = load_checkpoint(runs.ddp / "checkpoint.pt")["model"][mean]
    assert not torch.equal(stored, torch.zeros(2))  # measured over the frames once trained (IRN)
    load_irn_run(runs.ddp)


@pytest.mark.slow
def test_pseudo_labels_nproc_2_write_what_a_single_process_writes(prepared, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("flow", "cam", "cams"):  # done stages: skipped (the CAM records name the resolved folders)
        (run / name).symlink_to(prepared / name)
    args = ["pseudo-labels", str(prepared / "data/tags.json"), "--out", str(run), "--arch", "resnet18",
            "--cam-epochs", "1", "--cam-batch-size", "4", "--cam-crop", "64", "--irn-epochs", "1",
            "--irn-batch-size", "4", "--irn-crop", "64", "--irn-radius", "5", "--progress", "json"]  # fmt: skip
    with one_thread():  # as each torchrun process
        assert main(args) == 0  # trains IRN, then the pseudo-labels of a single process
    single = tmp_path / "single"
    (run / "pseudo").rename(single)

    proc = torchrun(args)  # every stage done but the pseudo-labels: each rank labels one of the 2 videos
    assert proc.stdout.count("==> pseudo-labels") == 1  # announced by rank 0 only
    events = json_events(proc.stdout)
    labelled = [e for e in events if e["stage"] == "pseudo-labels" and e["message"].endswith("instances in 4 frames")]
    assert [e["message"].split(":")[0] for e in labelled] == ["synth_0000"]  # rank 0's share: the first video
    ddp = run / "pseudo"
    files = sorted(p.relative_to(single) for p in single.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ddp) for p in ddp.rglob("*") if p.is_file())
    for name in ("pseudo_labels.json", "pseudo_labels.coco.json", "synth_0000/pseudo.json", "synth_0001/pseudo.json"):
        assert json.loads((ddp / name).read_text()) == json.loads((single / name).read_text()), name
    for npz in [f for f in files if f.suffix == ".npz"]:
        with np.load(single / npz) as a, np.load(ddp / npz) as b:
            assert a.files == b.files
            for k in a.files:
                assert np.array_equal(a[k], b[k]), (npz, k)


def test_relation_frames_at_a_working_scale_see_the_frame_3x_larger(prepared):
    # 64x80 frames at working size 192: image, labels and flow all at 3x, the flow in that grid's pixels
    tags, cams, flow = prepared / "data/tags.json", prepared / "cams", prepared / "flow"
    at_frame = RelationFrames(tags, cams, flow, use_fcams=True, crop=64, working_size=0)
    at_work = RelationFrames(tags, cams, flow, use_fcams=True, crop=64, working_size=192)
    assert at_frame.image(0).shape == (64, 80, 3) and at_work.image(0).shape == (192, 240, 3)
    assert at_frame.labels(0).shape == (16, 20) and at_work.labels(0).shape == (48, 60)
    assert set(np.unique(at_work.labels(0))) <= set(np.unique(at_frame.labels(0))) | {255}
    small, large = at_frame.flow(0, (16, 20)), at_work.flow(0, (48, 60))
    assert abs(large[:2].mean(axis=(1, 2)) - 3 * small[:2].mean(axis=(1, 2))).max() < 0.05 + 0.05 * abs(small).max()
    x, lab, _ = at_work[0]
    assert x.shape == (3, 64, 64) and lab.shape == (16, 16)  # the crop is in pixels of the working scale


def test_pseudo_labels_made_at_the_working_scale_are_frame_sized(prepared, tmp_path):
    from training.working_scale import recorded_working_size

    _train(prepared, tmp_path / "irn", epochs=1, working_size=192)
    assert recorded_working_size(tmp_path / "irn") == 192
    tags, out = prepared / "data/tags.json", tmp_path / "pseudo"
    list(make_pseudo_labels(tags, tmp_path / "irn", prepared / "cams", out, video_ids=[1]))
    volume = load_labels(out / "synth_0000" / "pseudo.npz")
    assert volume.labels.shape == (4, 64, 80)  # the frames' size, not 192x240
    with np.load(out / "synth_0000" / "irn.npz") as z:  # the viewer's maps: on the frame's stride-4 grid
        assert z["boundary"].shape == (4, 16, 20) and z["displacement"].shape == (4, 2, 16, 20)
        points = z["centroids"]
    assert len(points) and (points[:, 1] < 64).all() and (points[:, 2] < 80).all()
