#!/usr/bin/env bash
# Set up the test environment and run every test (GUI tests under Xvfb).
# Extra arguments go to pytest, e.g. scripts/test.sh -k eval
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/env.sh test

# napari needs an X server with OpenGL; offscreen Qt has none.
need_pkgs=(xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0
  libdbus-1-3)
if ! command -v xvfb-run >/dev/null || ! ldconfig -p | grep -q libxcb-cursor.so.0; then
  echo "==> installing Xvfb and the X/OpenGL libraries Qt needs"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

export OMP_WAIT_POLICY=PASSIVE   # torch's spinning OpenMP threads crawl on a shared 2-core box
export QT_API="${QT_API:-pyqt5}"
unset QT_QPA_PLATFORM             # xcb on Xvfb, so the canvas has OpenGL
.venv/bin/ruff check training napari_vis_ws tests benchmarks scripts
.venv/bin/mypy   # training/ (pyproject.toml [tool.mypy])
.venv/bin/lint-imports   # the layering contracts (pyproject.toml [tool.importlinter])
xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python -m pytest -ra --durations=20 "$@"   # the 20 slowest: CI stays under 30 min
