"""MaskConsist (METHOD.md §7): the second step, temporally consistent training targets.

``iom_nms`` de-duplicates masks by intersection over the smaller mask (in
score order; ``iom_nms_fuller`` keeps the larger of two, for masks whose
scores are not comparable);
``matching`` holds intra-frame expansion, inter-frame Hungarian matching on
flow-warped masks and the targets of a frame pair (:func:`maskconsist_pair`).
"""

from training.maskconsist.iom_nms import duplicates_of, fuller_first, iom_nms, iom_nms_fuller, iom_suppress
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
    "duplicates_of",
    "expand_predictions",
    "fuller_first",
    "hungarian_matches",
    "iom_nms",
    "iom_nms_fuller",
    "iom_suppress",
    "mask_iou",
    "maskconsist_pair",
    "warp_masks",
]
