"""Training data of the CAM classifier: every tagged frame with its tag vector (METHOD.md §2).

Augmentation follows IRN's ``train_cam`` (random rescale, horizontal flip,
ImageNet normalisation, random crop padded with zeros) at sizes that suit
240x320 frames on a CPU. Every random draw comes from a generator seeded by
``(seed, epoch, frame index)``, so a batch is the same whatever happened
before it: an interrupted run resumed from its checkpoint sees exactly the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.data.sources import video_key
from training.data.tags import load_tags, tag_matrix
from training.data.video import FrameReader
from training.data.ytvis import dataset_video_frames
from training.errors import InputError
from training.sampling import seeded_generator
from training.working_scale import working_scale

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image: np.ndarray) -> torch.Tensor:
    """ImageNet-normalised CHW tensor of an RGB frame.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB

    Returns
    -------
    x : (3, H, W) float32
    """
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize a (C, H, W) float image by ``scale`` (bilinear, antialiased when shrinking).

    The output size is ``round(H * scale), round(W * scale)``, at least 1.
    """
    if scale == 1.0:
        return x
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=scale < 1.0)[0]


def augment(
    image: np.ndarray,
    crop: int,
    scale_range: tuple[float, float],
    generator: torch.Generator,
    channel_shuffle: float = 0.0,
) -> torch.Tensor:
    """IRN's training augmentation of one frame.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB
    crop : int
        Side of the square output.
    scale_range : (float, float)
        The frame is rescaled by a factor drawn uniformly in this range.
    generator : torch.Generator
        Source of every random draw (scale, flip, crop offset, channel order).
    channel_shuffle : float
        Probability of permuting the RGB channels (not in IRN; see
        :class:`training.cam.train.CAMTrainConfig`).

    Returns
    -------
    x : (3, crop, crop) float32
        Normalised; where the rescaled frame is smaller than the crop the rest
        is 0 (the mean colour after normalisation), as in IRN.
    """
    lo, hi = scale_range
    u = torch.rand(3, generator=generator).tolist()
    perm = torch.randperm(3, generator=generator)
    if u[2] < channel_shuffle:
        image = image[..., perm.numpy()]
    x = rescale(normalize(image), lo + (hi - lo) * u[0])
    if u[1] < 0.5:
        x = x.flip(-1)
    _, h, w = x.shape
    out = torch.zeros(3, crop, crop)
    ch, cw = min(h, crop), min(w, crop)
    # IRN's random_crop: a larger extent is cropped at a random offset, a smaller one placed at a random offset.
    oy = int(torch.randint(0, abs(h - crop) + 1, (1,), generator=generator))
    ox = int(torch.randint(0, abs(w - crop) + 1, (1,), generator=generator))
    sy, dy = (oy, 0) if h > crop else (0, oy)
    sx, dx = (ox, 0) if w > crop else (0, ox)
    out[:, dy : dy + ch, dx : dx + cw] = x[:, sy : sy + ch, sx : sx + cw]
    return out


@dataclass(frozen=True)
class FrameItem:
    """One training frame.

    Attributes
    ----------
    video : int
        Index into :attr:`TagFrames.readers`.
    frame : int
        Frame index in the video.
    target : (K,) float32
        1 for each tagged category, in the tags file's category order.
    """

    video: int
    frame: int
    target: np.ndarray


class TagFrames(torch.utils.data.Dataset):
    """Every frame with a ``frame_tags`` entry, as (augmented image, tag vector).

    Parameters
    ----------
    tags_path : path
        Frame-tags JSON (``vis-ws tags``).
    frames : path, optional
        Frames folder (default ``JPEGImages/`` beside the tags file).
    crop : int
        Side of the square training crops.
    scale_range : (float, float)
        Random rescale range.
    seed : int
        Seed of the augmentation (with the epoch and the frame index).
    channel_shuffle : float
        Probability of permuting a frame's RGB channels.
    working_size : int
        Short side, in pixels, each frame is first upsampled to
        (:mod:`training.working_scale`; 0: frame size). The random rescale and
        the crop apply at that scale.

    Attributes
    ----------
    category_ids : list of int
        The K categories, in the tags file's order (the classifier's outputs).
    categories : list of dict
        Their ``{"id", "name"}`` entries.
    readers : list of FrameReader
        One per video.
    keys : list of str
        Video names for messages and outputs.
    items : list of FrameItem

    Raises
    ------
    InputError
        A malformed tags file (unknown categories or frames), a video none of
        whose frames has a ``frame_tags`` entry (naming it), missing frame files.
    """

    def __init__(
        self,
        tags_path: str | os.PathLike,
        frames: str | os.PathLike | None = None,
        crop: int = 224,
        scale_range: tuple[float, float] = (0.7, 1.3),
        seed: int = 0,
        channel_shuffle: float = 0.0,
        working_size: int = 0,
    ) -> None:
        self.path = Path(tags_path)
        self.working_size = working_size
        tags = load_tags(self.path)
        self.categories = [{"id": c["id"], "name": c["name"]} for c in tags["categories"]]
        self.category_ids = [c["id"] for c in self.categories]
        if not self.category_ids:
            raise InputError(self.path, "no categories: the classifier needs at least one class")
        self.crop = crop
        self.scale_range = scale_range
        self.channel_shuffle = channel_shuffle
        self.seed = seed
        self.epoch = 0
        listed = {(t["video_id"], t["frame"]) for t in tags["frame_tags"]}
        self.readers: list[FrameReader] = []
        self.keys: list[str] = []
        self.items: list[FrameItem] = []
        for v in tags["videos"]:
            key = video_key(v)
            tagged = [f for f in range(len(v["file_names"])) if (v["id"], f) in listed]
            if not tagged:
                raise InputError(
                    self.path,
                    f"video {v['id']} ({key}) has no frame_tags entries: tag its frames "
                    "(an empty category_ids list marks a frame without objects) or remove the video",
                )
            matrix, _ = tag_matrix(tags, v["id"])
            self.items += [FrameItem(len(self.readers), f, matrix[f].astype(np.float32)) for f in tagged]
            self.readers.append(dataset_video_frames(self.path, tags, v["id"], frames))
            self.keys.append(key)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = epoch

    def image(self, index: int) -> np.ndarray:
        """The frame of item ``index`` as (H, W, 3) uint8, not augmented."""
        it = self.items[index]
        return self.readers[it.video].read(it.frame)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(3, crop, crop) float32 augmented frame and (K,) float32 tag vector."""
        gen = seeded_generator(self.seed, self.epoch, index)
        image = self.image(index)
        s = working_scale(image.shape, self.working_size)
        lo, hi = self.scale_range
        x = augment(image, self.crop, (lo * s, hi * s), gen, self.channel_shuffle)
        return x, torch.from_numpy(self.items[index].target)


def iterate_batches(
    dataset: TagFrames, batches: Sequence[Sequence[int]], workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Load ``batches`` of ``dataset`` in order: (B, 3, crop, crop) images and (B, K) targets.

    With ``workers > 0`` a torch DataLoader decodes ahead in worker processes;
    the batches are the same either way.
    """
    if workers <= 0:
        for b in batches:
            xs, ys = zip(*(dataset[i] for i in b), strict=True)
            yield torch.stack(xs), torch.stack(ys)
        return
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[list(b) for b in batches], num_workers=workers)
    yield from loader
