"""Training data of IRN / flowIRN: frames with relation labels and flow at the stride-4 grid.

Each tagged frame gives (METHOD.md §4-§5):

- the image, ImageNet-normalised, flipped, rescaled and cropped like IRN (a
  random rescale in ``scales``, then a random crop whose offset is a multiple
  of 4, so the label grid stays aligned). The crop window may reach
  ``margin`` grid cells past the frame (labels 255 there), so every grid cell
  of the frame can be the source of a pair: pairs start only in crop rows
  ``[0, g − r')`` and columns ``[r', g − r')`` (:mod:`training.irn.path_index`),
  and without that margin the cells near the frame's bottom, left and right
  edges were never trained (61 % of a 30×40 grid with crop 112 and radius 10);
- its inter-pixel relation labels (0 background, c+1 class, 255 ignore) from
  the stored CAMs, or the f-CAMs for the f-CAM variants;
- the optical flow at frame t resized to the grid in grid pixels, and where
  it is known (not occluded; not past the frame's edge in a crop), for the
  flow-boundary loss; zero when no flow is used.

Labels are computed once per frame and kept (a few KB each). Every random
draw comes from a generator seeded by (seed, epoch, item), as for the CAM
classifier, so a resumed run sees the same batches.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from training.cam.data import TagFrames, normalize
from training.cam.store import read_frame_cams
from training.errors import InputError
from training.flow.storage import VideoFlow, read_video_flow
from training.irn.ir_labels import CONF_BG, CONF_FG, ir_labels
from training.sampling import seeded_generator
from training.working_scale import resize_maps, upsample_frame, working_scale, working_shape

IGNORE = 255
STRIDE = 4
SCALES = (0.5, 1.5)
"""IRN's random rescale of a training image (``resize_long`` / ``random_scale`` in its affinity data)."""


def grid_size(height: int, width: int) -> tuple[int, int]:
    """The stride-4 grid of a frame: ((H-1)//4+1, (W-1)//4+1)."""
    return (height - 1) // STRIDE + 1, (width - 1) // STRIDE + 1


def flow_at_grid(flow: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A frame's flow on the stride-4 grid, in grid pixels.

    Parameters
    ----------
    flow : (H, W, 2) float32, (dx, dy) in image pixels
    grid : (h, w)

    Returns
    -------
    (2, h, w) float32, (dx, dy) in grid pixels (area-averaged, divided by 4).
    """
    h, w = grid
    small = cv2.resize(np.asarray(flow, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1)) / STRIDE


class RelationFrames(torch.utils.data.Dataset):
    """Every tagged frame as (image, relation labels, flow at the grid).

    Parameters
    ----------
    tags_path : path
        Frame-tags JSON.
    cams_dir : path
        ``vis-ws cams`` output for the same tags.
    flow_dir : path or None
        ``vis-ws flow`` output; needed for the flow-boundary loss.
    use_fcams : bool
        Build the labels from the f-CAMs (flowIRN's f-CAM variants).
    crop : int
        Side of the square crops (a multiple of 4).
    margin : int
        How many grid cells past each edge of the (rescaled) frame a crop may
        reach: ``radius − 1`` of the pairs trained on lets every cell be a pair
        source (0: crops stay on the frame as far as it allows).
    scales : (float, float)
        Range of the random rescale of each item (IRN: 0.5-1.5); ``(1, 1)``
        keeps the frame's size.
    conf_fg, conf_bg, crf
        Relation-label settings (METHOD.md §4).
    frames : path, optional
        Frames folder of the tags file.
    seed : int
    working_size : int
        Short side, in pixels, each frame is upsampled to first
        (:mod:`training.working_scale`; 0: frame size): the image, its
        relation labels (from the CAMs brought to that scale) and its flow
        (in the working grid's pixels) are all at the working scale.

    Raises
    ------
    InputError
        Bad tags, missing CAMs (or f-CAMs) or flow for a video, naming it.
    """

    def __init__(
        self,
        tags_path: str | os.PathLike,
        cams_dir: str | os.PathLike,
        flow_dir: str | os.PathLike | None = None,
        use_fcams: bool = False,
        crop: int = 256,
        margin: int = 0,
        scales: tuple[float, float] = SCALES,
        conf_fg: float = CONF_FG,
        conf_bg: float = CONF_BG,
        crf: bool = False,
        frames: str | os.PathLike | None = None,
        seed: int = 0,
        working_size: int = 0,
    ) -> None:
        if crop % STRIDE:
            raise ValueError(f"crop must be a multiple of {STRIDE}, got {crop}")
        if margin < 0 or not 0 < scales[0] <= scales[1]:
            raise ValueError(f"need margin >= 0 and 0 < scales[0] <= scales[1], got {margin} and {scales}")
        self.frames = TagFrames(tags_path, frames, crop=crop, seed=seed)
        self.cams_dir = Path(cams_dir)
        self.use_fcams = use_fcams
        self.crop = crop
        self.margin = margin
        self.scales = (float(scales[0]), float(scales[1]))
        self.conf_fg, self.conf_bg, self.crf = conf_fg, conf_bg, crf
        self.seed = seed
        self.working_size = working_size
        self.epoch = 0
        self.column = {c: i for i, c in enumerate(self.frames.category_ids)}
        self.flows: list[VideoFlow | None] = [None] * len(self.frames.readers)
        if flow_dir is not None:
            self.flows = [read_video_flow(flow_dir, key) for key in self.frames.keys]
            for key, flow, reader in zip(self.frames.keys, self.flows, self.frames.readers, strict=True):
                assert flow is not None
                if flow.n_frames != len(reader) or (flow.meta["height"], flow.meta["width"]) != reader.frame_shape:
                    raise InputError(
                        flow_dir, f"flow of video {key!r} has {flow.n_frames} frames of another size than the video"
                    )
        self._labels: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = epoch

    def scale(self, index: int) -> float:
        """The working scale of item ``index``'s frame (1: its own size)."""
        reader = self.frames.readers[self.frames.items[index].video]
        return working_scale(reader.frame_shape, self.working_size)

    def image(self, index: int) -> np.ndarray:
        """The frame of item ``index`` at the working scale, (H', W', 3) uint8, not augmented."""
        return upsample_frame(self.frames.image(index), self.scale(index))

    def labels(self, index: int) -> np.ndarray:
        """Relation labels of item ``index`` at the stride-4 grid of the working scale, (h, w) uint8 (cached)."""
        if index not in self._labels:
            it = self.frames.items[index]
            key = self.frames.keys[it.video]
            maps = read_frame_cams(self.cams_dir, key, it.frame)
            # with the CRF, IRN refines at image size (its CRF settings are in image pixels), then samples the grid
            if self.crf:
                cams = maps.fcams_high_res if self.use_fcams else maps.high_res
            else:
                cams = maps.fcams if self.use_fcams else maps.cams
            if cams is None:
                raise InputError(
                    self.cams_dir, f"video {key!r} frame {it.frame} has no f-CAMs: run 'vis-ws cams' with --flow"
                )
            cols = [self.column[int(k)] for k in maps.keys]
            shape = working_shape(self.frames.readers[it.video].frame_shape, self.scale(index))
            image = self.image(index) if self.crf else None
            cams = resize_maps(cams, shape if self.crf else grid_size(*shape))
            labels = ir_labels(cams, cols, image, self.conf_fg, self.conf_bg, crf=self.crf)
            self._labels[index] = np.ascontiguousarray(labels[::STRIDE, ::STRIDE]) if self.crf else labels
        return self._labels[index]

    def flow(self, index: int, grid: tuple[int, int]) -> np.ndarray:
        """(3, h, w) float32: the flow of item ``index`` at the grid (dx, dy) and where it is known.

        The third channel is 1 where at least half of a grid cell's pixels
        are not occluded (the flow-boundary loss uses only those), 0 elsewhere;
        all zeros without flow.
        """
        it = self.frames.items[index]
        flow = self.flows[it.video]
        if flow is None:
            return np.zeros((3, *grid), np.float32)
        motion = flow.motion(it.frame) * np.float32(self.scale(index))  # in pixels of the working scale
        known = np.ones(motion.shape[:2], np.float32)
        if it.frame < flow.n_frames - 1:  # the last frame's motion (a negated backward flow) has no occlusion map
            known = (~flow.occlusion(it.frame)).astype(np.float32)
        h, w = grid
        cells = cv2.resize(known, (w, h), interpolation=cv2.INTER_AREA) >= 0.5
        return np.concatenate([flow_at_grid(motion, grid), cells[None].astype(np.float32)])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(3, c, c) float32 image, (c/4, c/4) uint8 labels, (3, c/4, c/4) float32 flow + known mask (c = crop)."""
        image = self.image(index)
        labels = self.labels(index)
        flow = self.flow(index, labels.shape)
        x = normalize(image)
        lab = torch.from_numpy(labels)
        fl = torch.from_numpy(flow)
        gen = seeded_generator(self.seed, self.epoch, index)
        if float(torch.rand(1, generator=gen)) < 0.5:
            x, lab, fl = x.flip(-1), lab.flip(-1), fl.flip(-1)
            fl[0] = -fl[0]  # a mirrored motion runs the other way
        lo, hi = self.scales
        scale = lo + (hi - lo) * float(torch.rand(1, generator=gen))
        x, lab, fl = rescale_item(x, lab, fl, scale)
        c, g = self.crop, self.crop // STRIDE
        gh, gw = lab.shape
        out_x = torch.zeros(3, c, c)
        out_lab = torch.full((g, g), IGNORE, dtype=torch.uint8)
        out_fl = torch.zeros(fl.shape[0], g, g)  # past the frame: no flow known
        y0, x0 = crop_origin((gh, gw), g, self.margin, gen)
        sy, sx = max(0, y0), max(0, x0)  # first frame cell in the window
        ey, ex = min(gh, y0 + g), min(gw, x0 + g)  # end of the frame cells in the window
        if ey > sy and ex > sx:
            dy, dx = sy - y0, sx - x0  # where they land in the crop
            out_lab[dy : dy + ey - sy, dx : dx + ex - sx] = lab[sy:ey, sx:ex]
            out_fl[:, dy : dy + ey - sy, dx : dx + ex - sx] = fl[:, sy:ey, sx:ex]
            px = x[:, sy * STRIDE : ey * STRIDE, sx * STRIDE : ex * STRIDE]
            out_x[:, dy * STRIDE : dy * STRIDE + px.shape[1], dx * STRIDE : dx * STRIDE + px.shape[2]] = px
        return out_x, out_lab, out_fl


def crop_origin(grid: tuple[int, int], side: int, margin: int, gen: torch.Generator) -> tuple[int, int]:
    """A random origin of a square crop window on a frame's grid (IRN's ``random_crop`` on the stride-4 grid).

    Parameters
    ----------
    grid : (h, w), the frame's grid
    side : int, the crop's side in grid cells (g)
    margin : int
        How far past the frame the window may reach: rows ``y0`` in
        ``[min(0, h − g), max(0, h − g) + margin]``, columns ``x0`` in
        ``[min(0, w − g) − margin, max(0, w − g) + margin]``. With
        ``margin = r'`` every cell can land in the pair sources' rows
        ``[0, g − r')`` and columns ``[r', g − r')``.
    gen : torch.Generator

    Returns
    -------
    (y0, x0) : int, the window's top-left cell in frame-grid coordinates (negative: above / left of the frame)
    """
    h, w = grid
    y0 = min(0, h - side) + int(torch.randint(0, abs(h - side) + margin + 1, (1,), generator=gen))
    x0 = min(0, w - side) - margin + int(torch.randint(0, abs(w - side) + 2 * margin + 1, (1,), generator=gen))
    return y0, x0


def rescale_item(
    image: torch.Tensor, labels: torch.Tensor, flow: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rescale a training item by ``scale``, keeping image pixel (4i, 4j) on grid cell (i, j).

    Parameters
    ----------
    image : (3, H, W) float32, normalised
    labels : (h, w) uint8 relation labels on the stride-4 grid
    flow : (2 or 3, h, w) float32, (dx, dy) in grid pixels (and where it is known)
    scale : float

    Returns
    -------
    image : (3, 4·h', 4·w') float32 (bilinear)
    labels : (h', w') uint8 (nearest), with h' = max(1, round(h·scale)), w' likewise
    flow : (2 or 3, h', w') float32 (bilinear), its vectors scaled with the grid (the mask nearest)
    """
    h, w = labels.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) == (h, w):
        return image, labels, flow
    import torch.nn.functional as F

    image = F.interpolate(image[None], size=(nh * STRIDE, nw * STRIDE), mode="bilinear", align_corners=False)[0]
    rows = ((torch.arange(nh) + 0.5) * h / nh).long().clamp_(max=h - 1)
    cols = ((torch.arange(nw) + 0.5) * w / nw).long().clamp_(max=w - 1)
    labels = labels[rows][:, cols].contiguous()
    vectors = F.interpolate(flow[None, :2], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    vectors = vectors * torch.tensor([nw / w, nh / h]).view(2, 1, 1)
    return image, labels, torch.cat([vectors, flow[2:][:, rows][:, :, cols]])
