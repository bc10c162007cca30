"""Inter-pixel relation labels from (f-)CAMs (METHOD.md §4; IRN's ``cam_to_ir_label``).

Two label maps are read off the CAMs: a *confident foreground* map (argmax of
the CAMs with a background score of ``conf_fg`` = 0.30 padded in front) and a
*confident background* map (the same with ``conf_bg`` = 0.05), each optionally
refined by a dense CRF. They are combined as IRN does:

- the foreground map's class where it says a class;
- 0 (background) where both maps say background;
- 255 (ignore) elsewhere — the band where CAMs are too weak to be a class
  but too strong to be background.

Label values are ``category key + 1`` (the same convention as
:func:`training.irn.inference.semantic_pseudo_labels`), so 0 is background and
255 is reserved: keys must lie in [0, 253].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

IGNORE = 255
"""Label of pixels that take part in no pair (neither confidently fg nor bg)."""
CONF_FG = 0.30
"""IRN's ``conf_fg_thres``: a class is confident where its CAM exceeds this."""
CONF_BG = 0.05
"""IRN's ``conf_bg_thres``: background is confident where every CAM is below this."""


@dataclass(frozen=True)
class CrfParams:
    """Dense CRF settings (IRN's ``crf_inference_label``; METHOD.md §4).

    Attributes
    ----------
    iterations : int
        Mean-field iterations t (10).
    gt_prob : float
        Confidence given to the input label in the unary term (0.7).
    gaussian_sxy, gaussian_compat : float
        Smoothness kernel: spatial std 3 px, weight 3.
    bilateral_sxy, bilateral_srgb, bilateral_compat : float
        Appearance kernel: spatial std 50 px, colour std 5, weight 10.
    """

    iterations: int = 10
    gt_prob: float = 0.7
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 5.0
    bilateral_compat: float = 10.0


def ir_labels(
    cams: np.ndarray,
    keys: Sequence[int] | np.ndarray | None = None,
    image: np.ndarray | None = None,
    conf_fg: float = CONF_FG,
    conf_bg: float = CONF_BG,
    crf: bool = False,
    crf_params: CrfParams | None = None,
) -> np.ndarray:
    """Relation labels of one frame: 0 background, key + 1 class, 255 ignore.

    Parameters
    ----------
    cams : (K, h, w) float
        The frame's tagged classes only, each max-normalised (METHOD.md §2-§3),
        at the resolution the labels are wanted (the stride-4 grid for IRN
        training). K = 0 (no tags) gives an all-background map.
    keys : (K,) int or None
        Category key of each CAM row; the label of row c is ``keys[c] + 1``.
        ``None`` uses the row index c (label c + 1).
    image : (H, W, 3) uint8 or None
        The RGB frame, needed only when ``crf`` is true. A frame of another
        size than the CAMs is resized to (h, w) first (area averaging when
        shrinking), since the CRF runs on the label grid.
    conf_fg, conf_bg : float
        Background scores padded in front of the CAMs for the confident
        foreground and background maps (IRN: 0.30 and 0.05). A class wins a
        pixel only where its CAM is strictly above the padded score.
    crf : bool
        Refine both maps with a dense CRF (``pydensecrf2``, an optional
        dependency: ``pip install pydensecrf2``).
    crf_params : CrfParams or None
        CRF settings; ``None`` is IRN's.

    Returns
    -------
    labels : (h, w) uint8

    Raises
    ------
    ValueError
        Wrong shapes, non-finite CAMs, keys out of [0, 253], thresholds out of
        order, or a missing/wrong image when ``crf`` is true.
    ImportError
        ``crf`` is true and ``pydensecrf2`` is not installed.
    """
    cams = _check_cams(cams)
    lut = _label_lut(keys, cams.shape[0])
    if not (0.0 <= conf_bg <= conf_fg):
        raise ValueError(f"ir_labels: need 0 <= conf_bg <= conf_fg, got conf_bg={conf_bg}, conf_fg={conf_fg}")
    fg = _confident_argmax(cams, conf_fg)
    bg = _confident_argmax(cams, conf_bg)
    if crf and cams.shape[0] > 0:
        rgb = _check_image(image, cams.shape[1:])
        params = crf_params or CrfParams()
        fg = crf_refine(rgb, fg, cams.shape[0] + 1, params)
        bg = crf_refine(rgb, bg, cams.shape[0] + 1, params)
    fg_label, bg_label = lut[fg], lut[bg]
    labels = fg_label.copy()
    labels[fg_label == 0] = IGNORE
    labels[(fg_label == 0) & (bg_label == 0)] = 0
    return labels


def crf_refine(image: np.ndarray, labels: np.ndarray, n_labels: int, params: CrfParams | None = None) -> np.ndarray:
    """Dense-CRF refinement of a label map (Krähenbühl & Koltun; IRN's settings by default).

    Parameters
    ----------
    image : (h, w, 3) uint8
        RGB frame at the label map's size.
    labels : (h, w) int
        Values in [0, n_labels).
    n_labels : int
        Number of labels, at least 2 (with one label there is nothing to refine).
    params : CrfParams or None

    Returns
    -------
    refined : (h, w) int64
    """
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_labels
    except ImportError as exc:
        raise ImportError(
            "ir_labels(crf=True) needs the dense CRF package pydensecrf2: pip install pydensecrf2 "
            "(or napari-vis-ws[crf]), or pass crf=False"
        ) from exc
    p = params or CrfParams()
    h, w = labels.shape
    if n_labels < 2:
        return np.asarray(labels, dtype=np.int64)
    model = dcrf.DenseCRF2D(w, h, n_labels)
    model.setUnaryEnergy(unary_from_labels(labels, n_labels, gt_prob=p.gt_prob, zero_unsure=False))
    model.addPairwiseGaussian(sxy=p.gaussian_sxy, compat=p.gaussian_compat)
    model.addPairwiseBilateral(
        sxy=p.bilateral_sxy, srgb=p.bilateral_srgb, rgbim=np.ascontiguousarray(image), compat=p.bilateral_compat
    )
    q = np.asarray(model.inference(p.iterations)).reshape(n_labels, h, w)
    return np.argmax(q, axis=0)


def _confident_argmax(cams: np.ndarray, background: float) -> np.ndarray:
    """Index into [background, class 0, class 1, …] of the highest score (first wins ties)."""
    padded = np.concatenate([np.full((1, *cams.shape[1:]), background, cams.dtype), cams], axis=0)
    return np.argmax(padded, axis=0)


def _label_lut(keys: Sequence[int] | np.ndarray | None, k: int) -> np.ndarray:
    """Map argmax index (0 = background, c + 1 = row c) to the uint8 label."""
    key_arr = np.arange(k) if keys is None else np.asarray(keys).reshape(-1)
    if key_arr.shape[0] != k:
        raise ValueError(f"ir_labels: {key_arr.shape[0]} keys for {k} CAM rows; give one category key per row")
    if k and (not np.issubdtype(key_arr.dtype, np.integer) or key_arr.min() < 0 or key_arr.max() > IGNORE - 2):
        raise ValueError(f"ir_labels: keys must be integers in [0, {IGNORE - 2}] (label = key + 1), got {key_arr}")
    return np.concatenate([[0], key_arr + 1]).astype(np.uint8)


def _check_cams(cams: np.ndarray) -> np.ndarray:
    arr = np.asarray(cams, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"ir_labels: cams must be (K, h, w), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("ir_labels: cams contain NaN or infinity; recompute the CAMs of this frame")
    return arr


def _check_image(image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    if image is None:
        raise ValueError("ir_labels(crf=True) needs the frame: pass image=(H, W, 3) uint8")
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"ir_labels: image must be (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
    h, w = size
    if img.shape[:2] != (h, w):
        shrink = img.shape[0] >= h and img.shape[1] >= w
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    # pydensecrf needs a writable C-contiguous buffer; a frame read with PIL or memory-mapped is read-only
    return np.require(img, requirements=["C", "W"])
