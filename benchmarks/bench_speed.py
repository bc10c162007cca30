"""Speed of every network per backbone on this CPU: the classifier, IRN and Mask R-CNN (iterations/s, frames/s).

Sizes are the ``cpu`` preset's (``training/cli/pipeline_commands.py``) on 120x160 frames:

- classifier (``CAMNet``): training it/s at the preset's batch and crop, with
  the backbone frozen (what the preset does for ImageNet Lite0) and fine-tuned
  (``freeze="none"``); CAM frames/s of ``make_cams`` at the working scale
  (x3: 360x480), IRN's 4 scales + flip, 2 classes;
- IRN (``IRNet`` over ``StageBackbone``): training it/s at the preset's batch,
  crop and radius (forward, flowIRN's losses on random relation labels and
  flow, backward, SGD step); ``infer`` frames/s on a 360x480 frame (+ flip);
- Mask R-CNN: training it/s at the preset's batch, sizes and proposal/RoI
  budget on 120x160 images with 2 random box+mask targets each; frames/s of
  ``predict_frames`` on one 120x160 frame. The layout is the one the preset's
  default start gives: ImageNet layout (frozen BatchNorm and stem) for Lite0,
  from scratch (all layers trained) for a ResNet.

Weights are random everywhere (nothing is loaded or downloaded): speed does
not depend on their values, except Mask R-CNN inference, whose untrained heads
keep up to 100 detections (a worst case for the mask head). Each figure is one
warm-up, then the median of ``--repeats`` timed runs.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_speed.py [--repeats 5] [--only cam,irn,detector]
        [--archs efficientnet_lite0 resnet18 resnet50]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_flow import seconds_per_call  # noqa: E402  (benchmarks/ is on the path when run as a script)

from training.backbones import ARCHS, StageBackbone  # noqa: E402
from training.cam.data import normalize  # noqa: E402
from training.cam.infer import SCALES, make_cams  # noqa: E402
from training.cam.network import CAMNet  # noqa: E402
from training.cam.train import CAMTrainConfig, build_model, cam_loss, make_optimizer  # noqa: E402
from training.detection.data import mask_boxes  # noqa: E402
from training.detection.model import build_mask_rcnn, sampling_options  # noqa: E402
from training.detection.predict import predict_frames  # noqa: E402
from training.detection.train import DetectionTrainConfig  # noqa: E402
from training.irn.losses import irn_total_loss  # noqa: E402
from training.irn.network import IRNet  # noqa: E402
from training.irn.path_index import pair_affinity  # noqa: E402
from training.irn.relations import relation_sets  # noqa: E402
from training.irn.train import IRNTrainConfig  # noqa: E402
from training.loop import backward_step  # noqa: E402
from training.pipeline import PRESETS  # noqa: E402
from training.working_scale import WORKING_SIZE, upsample_frame, working_scale  # noqa: E402

PRESET = PRESETS["cpu"]
FRAME = (120, 160)
N_CLASSES = 2
PARTS = ("cam", "irn", "detector")
Figures = dict[str, dict[str, dict[str, float]]]  # part → arch → figure → rate


def rate(fn: Callable[[], object], repeats: int) -> float:
    """Calls per second: 1 / the median time of ``repeats`` calls of ``fn``, after one warm-up call."""
    return 1.0 / seconds_per_call(fn, repeats)


def frame(rng: np.random.Generator) -> np.ndarray:
    """A random (120, 160, 3) uint8 frame."""
    return rng.integers(0, 256, (*FRAME, 3), dtype=np.uint8)


def cam_training(arch: str, freeze: str, repeats: int, rng: np.random.Generator) -> tuple[float, CAMNet]:
    """Classifier training it/s with ``freeze`` (the preset's batch and crop), and the model."""
    config = CAMTrainConfig(**{**PRESET["cam"], "arch": arch}, weights="none", freeze=freeze, device="cpu")
    model = build_model(config, N_CLASSES).train()
    optimizer = make_optimizer(model, config)
    x = torch.randn(config.batch_size, 3, config.crop, config.crop)
    y = torch.from_numpy(rng.integers(0, 2, (config.batch_size, N_CLASSES))).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        backward_step(cam_loss(model(x), y), optimizer)

    return rate(step, repeats), model


def classifier(arch: str, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Training it/s (backbone frozen, fine-tuned) and CAM frames/s at the working scale."""
    frozen, _ = cam_training(arch, "backbone", repeats, rng)
    tuned, model = cam_training(arch, "none", repeats, rng)
    out = {"train backbone": frozen, "train none": tuned}
    image, scale = frame(rng), working_scale(FRAME, WORKING_SIZE)
    out["cams"] = rate(lambda: make_cams(model, image, list(range(N_CLASSES)), working_scale=scale), repeats)
    return out


def irn(arch: str, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Training it/s (flowIRN's losses, the preset's batch/crop/radius) and ``infer`` frames/s at 360x480."""
    config = IRNTrainConfig(**PRESET["irn"], backbone=arch, device="cpu")
    torch.manual_seed(0)
    model = IRNet(StageBackbone(arch)).train()
    edge, displacement = model.branch_parameters()
    lr_d = config.lr * config.displacement_lr  # IRN trains the displacement branch at 10x the rate
    groups: list[dict[str, Any]] = [{"params": edge}, {"params": displacement, "lr": lr_d}]
    optimizer = torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    n, g = config.batch_size, config.crop // 4
    x = torch.randn(n, 3, config.crop, config.crop)
    # relation labels as RelationFrames gives them: (g, g) uint8, blobs of background / class + 1, 255 ignored
    coarse = torch.from_numpy(rng.choice(np.array([0, 1, 2, 255], np.uint8), (n, 1, 6, 6)))
    labels = F.interpolate(coarse.float(), size=(g, g), mode="nearest")[:, 0].to(torch.uint8)
    flow = torch.cat([torch.randn(n, 2, g, g), torch.ones(n, 1, g, g)], dim=1)  # (dx, dy), known everywhere

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits, disp = model(x)
        sets = relation_sets(labels, config.radius)
        affinity = pair_affinity(torch.sigmoid(logits.float())[:, 0], sets.index)
        terms = irn_total_loss(affinity, disp.float(), sets, flow=flow if config.uses_flow_loss else None)
        backward_step(terms.total, optimizer)

    out = {"train": rate(step, repeats)}
    image = normalize(upsample_frame(frame(rng), working_scale(FRAME, WORKING_SIZE)))[None]
    out["infer"] = rate(lambda: model.infer(image), repeats)
    return out


def detector(arch: str, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Mask R-CNN training it/s (the preset's batch, sizes, proposals, RoIs) and frames/s on 120x160 frames."""
    config = DetectionTrainConfig(**{**PRESET["detector"], "backbone": arch}, device="cpu")
    torch.manual_seed(0)
    # no weights are loaded, but the layout (frozen BatchNorm and stem, or not) is that of the default start
    model = build_mask_rcnn(
        N_CLASSES, arch, config.min_size, config.max_size, bool(config.weights),
        **sampling_options(config.proposals, config.rois),
    )  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.base_lr, momentum=config.momentum, weight_decay=config.weight_decay)
    h, w = FRAME
    images, targets = [], []
    for _ in range(config.batch_size):
        images.append(torch.rand(3, h, w))
        masks = np.zeros((2, h, w), bool)
        for m in masks:
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            m[y0 : y0 + rng.integers(10, h // 2), x0 : x0 + rng.integers(10, w // 2)] = True
        targets.append(
            {
                "boxes": torch.from_numpy(mask_boxes(masks)),
                "labels": torch.from_numpy(rng.integers(1, N_CLASSES + 1, 2)),
                "masks": torch.from_numpy(masks.astype(np.uint8)),
            }
        )

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        backward_step(sum(model(images, targets).values()), optimizer)

    out = {"train": rate(step, repeats)}
    image = frame(rng)
    with torch.inference_mode():
        out["infer"] = rate(lambda: predict_frames(model, [image]), repeats)
    return out


def rows() -> list[tuple[str, str, str]]:
    """(part, figure, row label) of each measurement, the labels naming the preset's sizes."""
    cam, irn_, det = PRESET["cam"], PRESET["irn"], PRESET["detector"]
    ws = working_scale(FRAME, WORKING_SIZE)
    small, big = f"{FRAME[0]}x{FRAME[1]}", f"{round(FRAME[0] * ws)}x{round(FRAME[1] * ws)}"
    crop = f"batch {cam['batch_size']}, crop {cam['crop']}"
    sizes = f"{det['min_size']}/{det['max_size']} px, {det['proposals']}/{det['rois']} proposals/RoIs"
    return [
        ("cam", "train backbone", f"Classifier training, backbone frozen ({crop}), it/s"),
        ("cam", "train none", f"Classifier training, fine-tuned ({crop}), it/s"),
        ("cam", "cams", f"CAMs ({big}, {len(SCALES)} scales + flip, {N_CLASSES} classes), frames/s"),
        ("irn", "train", f"IRN training (flowIRN losses, batch {irn_['batch_size']}, crop {irn_['crop']}), it/s"),
        ("irn", "infer", f"IRN inference ({big} + flip), frames/s"),
        ("detector", "train", f"Mask R-CNN training (batch {det['batch_size']}, {small} at {sizes}), it/s"),
        ("detector", "infer", f"Mask R-CNN inference ({small}), frames/s"),
    ]


def table(figures: Figures, archs: list[str]) -> str:
    """Markdown table: one row per measurement, one column per backbone."""
    lines = ["| measurement | " + " | ".join(archs) + " |", "| --- |" + " ---: |" * len(archs)]
    for part, key, label in rows():
        if part in figures:
            cells = [f"{figures[part][a][key]:.2f}" if a in figures[part] else "–" for a in archs]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def split(values: list[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    """Repeated and comma-separated option values, checked against ``allowed`` (all of them when none)."""
    out = [v for value in values or [] for v in value.split(",") if v] or list(allowed)
    bad = sorted(set(out) - set(allowed))
    if bad:
        raise SystemExit(f"bench_speed: unknown {what} {', '.join(bad)}: expected some of {', '.join(allowed)}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure (their median), after a warm-up")
    p.add_argument("--only", action="append", help="cam, irn, detector (repeatable or a comma list; default all)")
    p.add_argument("--archs", nargs="+", help=f"backbones (default {' '.join(ARCHS)}; a comma list works too)")
    args = p.parse_args()
    parts = split(args.only, PARTS, "part")
    archs = split(args.archs, ARCHS, "backbone")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    bench = {"cam": classifier, "irn": irn, "detector": detector}
    figures: Figures = {}
    for part in PARTS:
        if part not in parts:
            continue
        for arch in archs:
            found = bench[part](arch, args.repeats, np.random.default_rng(0))
            figures.setdefault(part, {})[arch] = found
            print(f"{part} {arch}: " + ", ".join(f"{k} {v:.3f}" for k, v in found.items()), flush=True)
    print()
    print(table(figures, archs))


if __name__ == "__main__":
    main()
