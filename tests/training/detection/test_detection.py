"""Mask R-CNN construction, training targets, inference with IoM-NMS and tube linking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.detection.data import frame_target, hflip_sample, training_sample, volume_frame_masks
from training.detection.model import build_mask_rcnn, label_to_category
from training.detection.predict import output_frame_masks, predict_video
from training.export import LabelVolume
from training.link import link_tubes, tubes_to_results
from training.maskconsist.masks import FrameMasks

H, W = 64, 80


def _square(y: int, x: int, size: int = 16) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y : y + size, x : x + size] = True
    return m


@pytest.mark.parametrize("backbone", ["resnet50", "resnet18", "mobilenet_v3"])
def test_every_backbone_builds_and_predicts_full_size_masks_on_cpu(backbone):
    torch.manual_seed(0)
    model = build_mask_rcnn(2, backbone, min_size=64, max_size=80).eval()
    with torch.no_grad():
        out = model([torch.rand(3, H, W)])[0]
    assert model.roi_heads.box_predictor.cls_score.out_features == 3  # K + background
    assert out["masks"].shape[1:] == (1, H, W)
    assert set(out["labels"].tolist()) <= {1, 2}


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_mask_rcnn(2, "vgg16")


def test_target_maps_categories_to_labels_and_boxes_to_pixel_edges():
    masks = FrameMasks(np.stack([_square(2, 3, 4), _square(40, 60, 1), np.zeros((H, W), bool)]), [7, 3, 3], [1, 1, 1])
    target = frame_target(masks, [3, 7])
    assert target["labels"].tolist() == [2, 1]  # the empty mask is dropped
    assert target["boxes"].tolist() == [[3, 2, 7, 6], [60, 40, 61, 41]]
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (2, H, W)
    assert label_to_category(np.array([2, 1]), [3, 7]).tolist() == [7, 3]


def test_frame_without_instances_gives_an_empty_target_that_trains():
    target = frame_target(FrameMasks.empty((H, W)), [3, 7])
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["masks"].shape == (0, H, W)
    torch.manual_seed(0)
    model = build_mask_rcnn(2, "mobilenet_v3", min_size=64, max_size=80).train()
    losses = model([torch.rand(3, H, W)], [target])
    assert math.isfinite(float(sum(losses.values()).detach()))


def test_unknown_category_in_a_target_is_refused():
    with pytest.raises(ValueError, match="category id 9"):
        frame_target(FrameMasks(_square(0, 0)[None], [9], [1.0]), [3, 7])


def test_flip_mirrors_image_boxes_and_masks_and_is_seeded():
    masks = FrameMasks(_square(10, 4, 8)[None], [3], [1.0])
    image = torch.rand(3, H, W)
    flipped, target = hflip_sample(image, frame_target(masks, [3]))
    assert target["boxes"].tolist() == [[W - 12, 10, W - 4, 18]]
    assert torch.equal(flipped[..., 0], image[..., -1])
    assert bool(target["masks"][0, 10, W - 5]) and not bool(target["masks"][0, 10, 4])
    frame = np.zeros((H, W, 3), np.uint8)
    a = [training_sample(frame, masks, [3], seed=1, epoch=0, item=i)[1]["boxes"] for i in range(8)]
    b = [training_sample(frame, masks, [3], seed=1, epoch=0, item=i)[1]["boxes"] for i in range(8)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({tuple(x[0].tolist()) for x in a}) == 2  # both orientations occur


def test_volume_frame_masks_lists_the_instances_of_one_frame():
    labels = np.zeros((2, H, W), np.int32)
    labels[0][_square(0, 0)] = 4
    labels[1][_square(20, 20)] = 2
    frame = volume_frame_masks(LabelVolume(labels, {2: 7, 4: 3}, {2: 0.5, 4: 0.9}), 1)
    assert frame.classes.tolist() == [7] and frame.scores.tolist() == [0.5]
    assert np.array_equal(frame.masks[0], _square(20, 20))


def test_predict_video_gives_one_frame_masks_per_frame_with_category_ids():
    torch.manual_seed(0)
    model = build_mask_rcnn(2, "mobilenet_v3", min_size=64, max_size=80)
    frames = np.random.default_rng(0).integers(0, 255, (2, H, W, 3), dtype=np.uint8)
    out = predict_video(model, frames, score_threshold=0.0, category_ids=[3, 7])
    assert len(out) == 2
    for f in out:
        assert f.masks.shape[1:] == (H, W) and f.masks.dtype == bool
        assert set(f.classes.tolist()) <= {3, 7}
        assert np.all(np.diff(f.scores) <= 0)


def test_inference_drops_a_lower_scored_mask_inside_a_kept_one():
    big, part, other = _square(0, 0, 20), _square(2, 2, 8), _square(40, 50, 10)
    output = {
        "scores": torch.tensor([0.9, 0.6, 0.5, 0.01]),
        "labels": torch.tensor([1, 1, 2, 1]),
        "masks": torch.from_numpy(np.stack([big, part, other, other])[:, None].astype(np.float32)),
    }
    kept = output_frame_masks(output, [3, 7], score_threshold=0.05, iom_threshold=0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.5]) and kept.classes.tolist() == [3, 7]
    assert len(output_frame_masks(output, [3, 7], score_threshold=0.05, iom_threshold=None)) == 3


def test_flow_linking_keeps_two_crossing_same_class_objects_apart():
    # A moves right, B moves left, 5 px per frame; they overlap while crossing.
    t_n, v = 8, 5
    xa = [5 + v * t for t in range(t_n)]
    xb = [55 - v * t for t in range(t_n)]
    frames, flows = [], []
    for t in range(t_n):
        a, b = _square(10, xa[t]), _square(18, xb[t])
        order = [1, 0] if t % 2 else [0, 1]  # detection order changes between frames
        masks = np.stack([a, b])[order]
        frames.append(FrameMasks(masks, [3, 3], np.array([0.8, 0.6])[order]))
        flow = np.zeros((H, W, 2), np.float32)
        flow[b, 0] = v  # at frame t, B came from v px to the right
        flow[a, 0] = -v  # A on top where they overlap
        flows.append(flow)
    tubes = link_tubes(frames, backward=lambda t: flows[t + 1])
    assert len(tubes) == 2
    for tube in tubes:
        assert sorted(tube) == list(range(t_n))
        xs = [int(np.nonzero(frames[t].masks[j].any(0))[0][0]) for t, j in sorted(tube.items())]
        assert xs in (xa, xb)
    results = tubes_to_results(frames, tubes, video_id=5)
    assert sorted(r["score"] for r in results) == pytest.approx([0.6, 0.8])
    assert all(r["video_id"] == 5 and len(r["segmentations"]) == t_n for r in results)


def test_linking_never_joins_different_classes():
    m = _square(10, 10)[None]
    frames = [FrameMasks(m, [3], [0.9]), FrameMasks(m, [7], [0.9])]
    assert link_tubes(frames) == [{0: 0}, {1: 0}]


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3"])
def test_imagenet_state_dict_loads_into_the_backbone_and_from_scratch_uses_batchnorm(backbone, tmp_path):
    """A torchvision ImageNet-style file (saved here, random values) fills the backbone; fc/classifier are ignored."""
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    from training.detection.model import load_backbone_weights

    net = torchvision.models.resnet18() if backbone == "resnet18" else torchvision.models.mobilenet_v3_large()
    torch.save(net.state_dict(), tmp_path / "imagenet.pth")
    model = build_mask_rcnn(2, backbone, 64, 80, pretrained=True)
    assert load_backbone_weights(model, tmp_path / "imagenet.pth", backbone) == "imagenet"
    own = model.backbone.body.state_dict()
    prefix = "" if backbone == "resnet18" else "features."
    for k, v in own.items():
        assert torch.equal(v, net.state_dict()[prefix + k]), k
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.body.modules())
    scratch = build_mask_rcnn(2, backbone, 64, 80)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in scratch.backbone.body.modules())
    assert all(p.requires_grad for p in scratch.backbone.body.parameters())
