"""IRN's CAM network: output stride 16, CAM = ReLU(1x1 classifier), weights from local files."""

from __future__ import annotations

import pytest
import torch
import torchvision

from training.cam.network import STAGE_STRIDES, CAMNet, load_weights
from training.errors import InputError


def test_cams_and_last_features_have_output_stride_16():
    model = CAMNet(3, "resnet18").eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert model.cam(x).shape == (2, 3, 4, 6)
        assert model(x).shape == (2, 3)


def test_resnet50_is_also_at_stride_16_with_2048_channels():
    model = CAMNet(2, "resnet50").eval()
    with torch.no_grad():
        feats = model.backbone_features(torch.randn(1, 3, 32, 48))
    assert feats[-1].shape == (1, 2048, 2, 3)


def test_backbone_features_are_the_five_irn_stages():
    model = CAMNet(4, "resnet18").eval()
    with torch.no_grad():
        feats = model.backbone_features(torch.randn(1, 3, 64, 80))
    assert [f.shape[1] for f in feats] == list(model.stage_channels) == [64, 64, 128, 256, 512]
    assert [64 // f.shape[2] for f in feats] == list(STAGE_STRIDES)


def test_logits_are_the_spatial_mean_of_the_classifier_map():
    model = CAMNet(3, "resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        dense = torch.nn.functional.conv2d(model.features(x), model.classifier.weight)
        torch.testing.assert_close(model(x), dense.mean((2, 3)), rtol=1e-4, atol=1e-5)
        assert torch.equal(model.cam(x), dense.clamp(min=0))


def _imagenet_style_file(tmp_path, seed=1):
    torch.manual_seed(seed)
    tv = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv.state_dict(), path)
    return tv.eval(), path


def test_torchvision_resnet_weights_load_into_the_backbone_and_fc_is_ignored(tmp_path):
    tv, path = _imagenet_style_file(tmp_path)
    assert "fc.weight" in torch.load(path, weights_only=True)
    torch.manual_seed(0)
    model = CAMNet(4, "resnet18").eval()
    classifier_before = model.classifier.weight.clone()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stage4_before = model.backbone_features(x)[3]
        assert load_weights(model, path) == "imagenet"
        stage4 = model.backbone_features(x)[3]
        expected = tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x)))))))
    assert not torch.allclose(stage4_before, expected)
    torch.testing.assert_close(stage4, expected)  # up to layer3 the strides are torchvision's
    assert torch.equal(model.classifier.weight, classifier_before)


def test_own_checkpoint_loads_classifier_too(tmp_path):
    torch.manual_seed(3)
    trained = CAMNet(4, "resnet18")
    torch.save({"model": trained.state_dict(), "step": 7}, tmp_path / "ckpt.pt")
    model = CAMNet(4, "resnet18")
    assert load_weights(model, tmp_path / "ckpt.pt") == "checkpoint"
    assert torch.equal(model.classifier.weight, trained.classifier.weight)
    other = CAMNet(6, "resnet18")
    assert load_weights(other, tmp_path / "ckpt.pt") == "checkpoint backbone"
    assert torch.equal(other.backbone.conv1.weight, trained.backbone.conv1.weight)


def test_weights_of_another_architecture_are_refused_naming_the_file(tmp_path):
    _, path = _imagenet_style_file(tmp_path)
    with pytest.raises(InputError) as info:
        load_weights(CAMNet(4, "resnet50"), path)
    assert str(path) in str(info.value) and "resnet50" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_weights_is_refused(tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="weights.pth"):
        load_weights(CAMNet(4, "resnet18"), bad)


def test_freeze_stem_keeps_conv1_and_batchnorm_statistics_fixed():
    model = CAMNet(2, "resnet18", freeze_stem=True).train()
    assert not model.backbone.conv1.weight.requires_grad
    assert all(not m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    assert model.backbone.layer1[0].conv1.weight.grad is None  # stage 2 is detached, as in IRN
    assert model.backbone.layer3[0].conv1.weight.grad is not None


def test_lse_pooling_scores_lie_between_the_mean_and_the_max_of_each_score_map():
    torch.manual_seed(0)
    gap = CAMNet(3, "resnet18").eval()
    lse = CAMNet(3, "resnet18", pooling="lse").eval()
    lse.load_state_dict(gap.state_dict())  # same weights: only the pooling differs
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        maps = torch.nn.functional.conv2d(gap.features(x), gap.classifier.weight).flatten(2)
        mean, peak = maps.mean(2), maps.amax(2)
        assert torch.allclose(gap(x), mean, atol=1e-5)
        scores = lse(x)
    assert bool((scores >= mean - 1e-5).all() and (scores <= peak + 1e-5).all())
    assert not torch.allclose(scores, mean, atol=1e-3)  # a real soft maximum, not the average again
    with pytest.raises(ValueError, match="pooling"):
        CAMNet(3, "resnet18", pooling="max")
