"""Headless backend of napari-vis-ws: weakly supervised video instance segmentation.

One module per stage of the method (flowIRN + MaskConsist, CVPR 2021). This
package never imports Qt or napari so it runs on a GPU server.
"""

__version__ = "0.1.0"
