"""ImageNet backbones offline (issue 17 §1): Lite0 from its package, ResNets from the hub cache, never a network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from training.backbones import (
    LITE0,
    OFFLINE_ENV,
    StageBackbone,
    lite0_weights_file,
    load_by_position,
    load_lite0_imagenet,
    weights_file,
)
from training.cam.network import CAMNet
from training.cam.train import CAMTrainConfig, build_model
from training.checkpoint import load_checkpoint
from training.errors import InputError


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """An empty torch hub cache, offline, and a download that fails the test if anything tries one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _photo(image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255  # [0, 1]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5  # the normalisation Lite0's ImageNet weights were trained with


@pytest.mark.parametrize(("photo", "imagenet_class"), [("chelsea", 285), ("coffee", 967)])
def test_package_lite0_weights_loaded_by_position_classify_real_photos(photo, imagenet_class):
    import skimage.data
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_lite0_imagenet(model)
    with torch.no_grad():
        probs = model(_photo(getattr(skimage.data, photo)())).softmax(1)[0]
    assert int(probs.argmax()) == imagenet_class  # 285 Egyptian cat, 967 espresso
    assert float(probs.max()) > 0.5


def test_a_tensor_of_the_wrong_shape_is_a_one_line_error_naming_its_position(tmp_path):
    import timm

    state = torch.load(lite0_weights_file(), weights_only=True)
    state["_blocks.3._project_conv.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(InputError) as err:
        load_by_position(timm.create_model("tf_efficientnet_lite0"), state, "lite0.pth", "timm's lite0")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("lite0.pth:") and "_blocks.3._project_conv.weight" in msg


def test_resnet18_imagenet_weights_come_from_the_torch_hub_cache(tmp_path):
    torch.manual_seed(1)
    saved = torchvision.models.resnet18().state_dict()  # stands in for torchvision's download
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(saved, folder / "resnet18-f37072fd.pth")
    config = CAMTrainConfig(arch="resnet18", weights="imagenet")
    assert config.backbone_freeze == "backbone"  # ImageNet start: only the classifier trains
    model = build_model(config, 3)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_missing_imagenet_file_offline_is_one_line_naming_the_file_and_its_folder(tmp_path):
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(InputError) as err:
        weights_file("imagenet", "resnet50")
    msg = str(err.value)
    assert "\n" not in msg and str(folder / "resnet50-0676ba61.pth") in msg and f"into {folder}" in msg


def test_without_a_network_the_failed_download_is_the_same_one_line_error(monkeypatch, tmp_path):
    monkeypatch.delenv(OFFLINE_ENV)

    def no_route(url, dst, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_route)
    with pytest.raises(InputError, match="download failed") as err:
        weights_file("imagenet", "resnet18")
    assert "resnet18-f37072fd.pth" in str(err.value) and "\n" not in str(err.value)


def test_train_cam_with_missing_imagenet_weights_exits_2_before_writing(tmp_path, capsys):
    from training.cli import main

    args = ["--videos", "1", "--frames", "2", "--height", "64", "--width", "64", "--seed", "1"]
    assert main(["sample", "--out", str(tmp_path / "d"), *args]) == 0
    run = tmp_path / "cam"
    code = main(["train-cam", str(tmp_path / "d/tags.json"), "--out", str(run), "--arch", "resnet18",
                 "--weights", "imagenet"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not run.exists() and len(err) == 1 and "resnet18-f37072fd.pth" in err[0]


def test_lite0_is_the_default_start_and_none_is_random_init():
    imagenet = torch.load(lite0_weights_file(), weights_only=True)["_conv_stem.weight"]
    default = CAMTrainConfig()
    assert (default.arch, default.weights, default.backbone_freeze) == (LITE0, "imagenet", "backbone")
    torch.manual_seed(0)
    assert torch.equal(build_model(default, 2).backbone.conv_stem.weight, imagenet)
    scratch = CAMTrainConfig(weights="none")
    assert scratch.backbone_freeze == "none"
    model = build_model(scratch, 2)
    assert not torch.equal(model.backbone.conv_stem.weight, imagenet)
    assert all(p.requires_grad for p in model.parameters())
    assert CAMTrainConfig(arch="resnet18").weights is None  # a ResNet's ImageNet file is asked for explicitly


def test_frozen_lite0_trains_only_the_classifier_with_fixed_batchnorm():
    model = build_model(CAMTrainConfig(), 3).train()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.weight"]
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert model.classifier.weight.grad is not None


def test_irn_stem_recipe_on_lite0_freezes_the_stem_and_detaches_at_stride_8():
    model = CAMNet(2, LITE0, freeze="stem").train()
    frozen = {n.split(".")[1] for n, p in model.backbone.named_parameters(prefix="b") if not p.requires_grad}
    assert frozen == {"conv_stem", "bn1", "blocks"} and model.backbone.blocks[1][0].conv_pw.weight.requires_grad
    model(torch.randn(1, 3, 64, 64)).sum().backward()
    assert model.backbone.blocks[2][0].conv_pw.weight.grad is None  # before the detach
    assert model.backbone.blocks[3][0].conv_pw.weight.grad is not None


@pytest.mark.parametrize("size", [(64, 80), (61, 77)])
def test_lite0_cam_net_gives_cams_at_stride_16_and_irn_stages_at_4_4_8_16_16(size):
    h, w = size
    model = CAMNet(3, LITE0).eval()
    x = torch.randn(2, 3, h, w)
    feats = model.backbone_features(x)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (c, (h - 1) // s + 1, (w - 1) // s + 1) for c, s in zip(model.stage_channels, (4, 4, 8, 16, 16), strict=True)
    ]
    assert model.cam(x).shape == (2, 3, (h - 1) // 16 + 1, (w - 1) // 16 + 1) and model(x).shape == (2, 3)


def test_irn_on_its_own_frozen_imagenet_lite0_gives_stride_4_outputs_and_trains_only_the_branches():
    from training.irn.network import IRNet

    torch.manual_seed(0)
    net = IRNet(StageBackbone(LITE0, lite0_weights_file())).train()
    logits, disp = net(torch.randn(2, 3, 61, 77))
    assert logits.shape == (2, 1, 16, 20) and disp.shape == (2, 2, 16, 20)
    (logits.mean() + disp.mean()).backward()
    assert all(p.grad is None and not p.requires_grad for p in net.backbone.parameters())
    assert all(p.grad is not None for p in net.trainable_parameters()) and not net.backbone.training


def _irn_run(tmp_path, model, config):
    from training.config import config_to_dict

    run = tmp_path / "irn"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({**config_to_dict(config), "cam_run": "cam"}))
    (run / "categories.json").write_text(json.dumps([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]))
    torch.save({"model": model.state_dict()}, run / "checkpoint.pt")
    return run


def test_irn_checkpoints_round_trip_on_lite0_and_runs_before_it_still_load(tmp_path):
    from training.irn.network import IRNet
    from training.irn.train import IRNTrainConfig, load_irn_run

    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    net = IRNet(StageBackbone(LITE0, lite0_weights_file())).eval()
    loaded, _ = load_irn_run(_irn_run(tmp_path / "new", net, IRNTrainConfig()))
    torch.testing.assert_close(loaded(x), net(x))
    # a run written when IRN read the classifier (keys cam_net.*): its classifier is rebuilt
    old = IRNet(CAMNet(2, "resnet18")).eval()
    legacy = {k.replace("backbone.", "cam_net.", 1): v for k, v in old.state_dict().items()}
    run = _irn_run(tmp_path / "old", old, IRNTrainConfig())
    torch.save({"model": legacy}, run / "checkpoint.pt")
    loaded, _ = load_irn_run(run)
    assert isinstance(loaded.backbone, CAMNet) and loaded.arch == "resnet18"
    torch.testing.assert_close(loaded(x), old(x))


def test_lite0_mask_rcnn_starts_from_imagenet_and_its_checkpoint_round_trips():
    from training.detection.model import build_mask_rcnn, has_frozen_norm, load_backbone_weights

    torch.manual_seed(0)
    model = build_mask_rcnn(2, LITE0, 64, 80, pretrained=True)
    assert load_backbone_weights(model, lite0_weights_file(), LITE0) == "imagenet"
    stem = torch.load(lite0_weights_file(), weights_only=True)["_conv_stem.weight"]
    assert torch.equal(model.backbone.body.conv_stem.weight, stem) and not stem.requires_grad
    features = model.backbone(torch.randn(1, 3, 64, 96))
    assert {k: tuple(v.shape[2:]) for k, v in features.items()} == {
        "0": (16, 24), "1": (8, 12), "2": (4, 6), "3": (2, 3), "pool": (1, 2),
    }  # fmt: skip
    target = {"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])}
    target["masks"] = torch.zeros(1, 64, 80, dtype=torch.uint8)
    target["masks"][0, 8:40, 8:40] = 1
    losses = model.train()([torch.rand(3, 64, 80)], [target])
    assert set(losses) >= {"loss_mask", "loss_classifier"} and all(torch.isfinite(v) for v in losses.values())
    state = model.state_dict()
    assert has_frozen_norm(state)
    again = build_mask_rcnn(2, LITE0, 64, 80, pretrained=has_frozen_norm(state))
    again.load_state_dict(state)
    image = [torch.rand(3, 64, 80)]
    with torch.no_grad():
        a, b = model.eval()(image)[0], again.eval()(image)[0]
    torch.testing.assert_close(a["scores"], b["scores"])


def test_a_train_cam_lite0_checkpoint_starts_the_detector_backbone(tmp_path):
    from training.detection.model import build_mask_rcnn, load_backbone_weights

    cam = CAMNet(2, LITE0)
    torch.save({"model": cam.state_dict()}, tmp_path / "cam.pt")
    model = build_mask_rcnn(2, LITE0, 64, 80, pretrained=True)
    assert load_backbone_weights(model, tmp_path / "cam.pt", LITE0) == "classifier"
    assert torch.equal(model.backbone.body.blocks[6][0].conv_pw.weight, cam.backbone.blocks[6][0].conv_pw.weight)
    assert load_checkpoint(tmp_path / "cam.pt")["model"]["classifier.weight"].shape == (2, 320, 1, 1)
