#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv.
#   scripts/env.sh        runtime + PyQt5
#   scripts/env.sh test   runtime + PyQt5 + test tools
# torch/torchvision are pinned to the builds this machine keeps on disk;
# the package itself accepts a compatible range (setup.cfg).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras="pyqt5"
[ "${1:-}" = "test" ] && extras="pyqt5,test"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# Reinstall only when the requirements or this script changed.
stamp=".venv/.vis-ws-$extras-$(cat setup.cfg pyproject.toml scripts/env.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "==> installing napari-vis-ws[$extras] (torch==2.14.1, torchvision==0.29.1)"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[$extras]"
  rm -f .venv/.vis-ws-*
  touch "$stamp"
fi
