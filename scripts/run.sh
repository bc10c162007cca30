#!/usr/bin/env bash
# Set up the environment and run the main job: napari with the plugin's dock
# and the sample video. Without a display, run the same data through the CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/env.sh
export OMP_WAIT_POLICY=PASSIVE

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/napari --plugin napari-vis-ws sample_data/gt.json -w napari-vis-ws Pipeline Dataset Corrections Export Training
fi

echo "==> no display (DISPLAY is unset): running the pipeline headless with the CLI"
out="${OUT:-runs/sample}"
vis=.venv/bin/vis-ws
$vis info sample_data/gt.json
# frame tags are the only supervision; CPU-sized settings (a few minutes on 2 cores)
$vis pseudo-labels sample_data/tags.json --out "$out" --arch resnet18 --cam-epochs 10 --cam-crop 192 \
  --irn-epochs 3 --irn-crop 192
echo "==> pseudo-label quality against the ground truth (frame-level COCO mask AP):"
$vis eval --gt sample_data/gt.json --results "$out/pseudo/pseudo_labels.json" --frame-level
echo "==> results are in $out/: flow/, cam/, cams/, irn/, pseudo/ (pseudo_labels.json, <video>/pseudo.npz)"
