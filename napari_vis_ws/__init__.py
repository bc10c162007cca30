"""napari-vis-ws: the napari plugin of the weakly supervised VIS backend (``training``).

Thin by design: readers, writers, sample data and dock widgets that call
``training`` and turn its results into layers. No algorithm lives here.
"""

import os
import sys

__version__ = "0.1.0"

# Importing torchvision pulls in triton, whose bundled LLVM crashes the process
# (segmentation fault in libtriton) once napari's OpenGL context has loaded
# Mesa's LLVM, e.g. under Xvfb. The plugin never compiles kernels (training
# runs in a subprocess of `vis-ws`), and torch treats a triton that fails to
# import as absent, so keep it out of napari's process.
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]

# PyTorch's OpenMP threads spin while they wait for work, taking the cores the
# event loop needs (up to 8x slower on a shared 2-core machine): napari started
# without it set would stall while a stage runs. Only effective before torch loads.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
