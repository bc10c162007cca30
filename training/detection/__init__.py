"""The detector of MaskConsist (METHOD.md §7-§8): torchvision Mask R-CNN, its targets, inference and tubes.

``model`` builds the network and loads a trained run, ``data`` turns
per-frame :class:`~training.maskconsist.masks.FrameMasks` into torchvision
targets, ``predict`` runs a video through the model (IoM-NMS per frame) and
links its frames into YouTube-VIS tubes with :mod:`training.link`.
"""
