"""MaskConsist (METHOD.md §7): the second step, temporally consistent training targets.

``iom_nms`` de-duplicates masks by intersection over the smaller mask;
``matching`` holds intra-frame expansion, inter-frame Hungarian matching on
flow-warped masks and the targets of a frame pair (:func:`maskconsist_pair`).
"""

from training.maskconsist.iom_nms import iom_nms
from training.maskconsist.masks import FrameMasks, mask_iou
from training.maskconsist.matching import (
    PairResult,
    class_iou,
    expand_predictions,
    hungarian_matches,
    maskconsist_pair,
    warp_masks,
)

__all__ = [
    "FrameMasks",
    "PairResult",
    "class_iou",
    "expand_predictions",
    "hungarian_matches",
    "iom_nms",
    "mask_iou",
    "maskconsist_pair",
    "warp_masks",
]
