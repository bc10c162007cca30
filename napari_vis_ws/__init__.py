"""napari-vis-ws: the napari plugin of the weakly supervised VIS backend (``training``).

Thin by design: readers, writers, sample data and dock widgets that call
``training`` and turn its results into layers. No algorithm lives here.
"""

__version__ = "0.1.0"
