"""The IRN network: stride-4 outputs, frozen backbone, mean shift at inference."""

from __future__ import annotations

import pytest
import torch

from training.cam.network import CAMNet
from training.irn.network import IRNet


@pytest.fixture
def net() -> IRNet:
    torch.manual_seed(0)
    return IRNet(CAMNet(3, arch="resnet18"))


@pytest.mark.parametrize("size", [(64, 80), (61, 77), (96, 64)])
def test_outputs_live_on_the_stride_4_grid(net, size):
    h, w = size
    logits, disp = net(torch.randn(2, 3, h, w))
    grid = ((h - 1) // 4 + 1, (w - 1) // 4 + 1)
    assert logits.shape == (2, 1, *grid) and disp.shape == (2, 2, *grid)


def test_only_the_branches_are_trained(net):
    logits, disp = net(torch.randn(1, 3, 64, 64))
    (logits.mean() + disp.mean()).backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert all(p.grad is not None for p in net.trainable_parameters())
    net.train()
    assert not net.backbone.training  # frozen BatchNorm statistics


def test_displacement_mean_is_removed_at_inference(net):
    # training sees D as is (the losses only use differences); inference subtracts the measured mean
    x = torch.randn(2, 3, 64, 64)
    net.train()
    _, d_train = net(x)
    mean = d_train.detach().mean(dim=(0, 2, 3))
    net.mean_shift.running_mean.copy_(mean)
    _, d_again = net(x)
    _, d_eval = net.infer(x)
    assert mean.abs().max() > 1e-4 and torch.allclose(d_again, d_train)
    torch.testing.assert_close(d_eval, d_train.detach() - mean.view(1, 2, 1, 1), atol=1e-5, rtol=1e-4)


def test_boundary_is_a_probability_and_flip_averaged(net):
    x = torch.randn(1, 3, 64, 64)
    b, _ = net.infer(x)
    assert b.min() >= 0 and b.max() <= 1
    b_flipped, _ = net.infer(x.flip(-1))
    torch.testing.assert_close(b_flipped, b.flip(-1), atol=1e-5, rtol=1e-4)
