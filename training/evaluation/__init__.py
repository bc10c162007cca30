"""Evaluation: YouTube-VIS video AP and frame-level COCO mask AP (METHOD.md §8)."""

from training.evaluation.frame_ap import evaluate_frames
from training.evaluation.ytvis_eval import STAT_NAMES, evaluate_ytvis, format_table

__all__ = ["STAT_NAMES", "evaluate_frames", "evaluate_ytvis", "format_table"]
