"""A deterministic synthetic video instance segmentation set: our benchmark.

Every video is scripted so that each cue of the method matters:

- a textured background that pans (camera motion, sub-pixel), so raw flow
  magnitude alone does not mark objects (f-CAMs subtract the camera motion);
- objects that move with their own motion relative to the background;
- an object that enters and one that leaves the frame (absent in some frames);
- two objects that cross, one in front of the other (visible masks only, so
  the occluded one's mask shrinks);
- a same-class pair that touches (no background gap), so separating instances
  needs boundaries, not connected components;
- per video only 2-3 of the classes, so frame tags differ between frames and
  videos (a classifier learns nothing from tags that are always on).

Classes differ in shape and texture (disc with dots, box with stripes,
triangle with a checkerboard, star with rings) while object and background
colours come from one distribution, so no colour threshold separates them.

Rendering is pure numpy/OpenCV. Masks are rasterised with integer (fixed-point)
arithmetic so ``gt.json`` is byte-identical for the same configuration; all
randomness comes from ``np.random.default_rng([seed, index, stream])``.

The package, by stage of the script: :mod:`~training.synthetic.config`
(settings, classes, the scripts' dataclasses), :mod:`~training.synthetic.shapes`
(outlines, rasterising), :mod:`~training.synthetic.scene` (one video's
script), :mod:`~training.synthetic.render` (frames and visible masks),
:mod:`~training.synthetic.dataset` (the files), and
:mod:`~training.synthetic.label_faults` (the label errors a benchmark adds).
It is a benchmark generator, not a reader: :mod:`training.data` never imports it.
"""

from training.synthetic.config import CATEGORIES, ObjectTrack, Scene, SyntheticConfig, video_name
from training.synthetic.dataset import encode_jpeg, generate_dataset, generate_video
from training.synthetic.render import render_video
from training.synthetic.scene import plan_video
from training.synthetic.shapes import object_mask

__all__ = [
    "CATEGORIES",
    "ObjectTrack",
    "Scene",
    "SyntheticConfig",
    "encode_jpeg",
    "generate_dataset",
    "generate_video",
    "object_mask",
    "plan_video",
    "render_video",
    "video_name",
]
