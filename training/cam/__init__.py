"""Classifier, CAMs and f-CAMs (METHOD.md §2-§3).

Modules: ``network`` (IRN's CAM network), ``data`` (tagged frames),
``train`` (training and mAP), ``infer`` (multi-scale CAMs), ``fcam``
(flow amplification), ``store`` (per-frame CAM files).
"""

from training.cam.fcam import fcam

__all__ = ["fcam"]
