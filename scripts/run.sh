#!/usr/bin/env bash
# Set up the environment and run the main job: napari with the plugin's dock
# and the sample video. Without a display, run the same data through the CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/env.sh
export OMP_WAIT_POLICY=PASSIVE

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/napari --plugin napari-vis-ws sample_data/gt.json -w napari-vis-ws
fi

echo "==> no display (DISPLAY is unset): running the pipeline headless with the CLI"
out="${OUT:-runs/sample}"
mkdir -p "$out"
vis=.venv/bin/vis-ws
$vis info sample_data/gt.json
$vis tags sample_data/gt.json --out "$out/tags.json"
$vis export sample_data/gt.json --format coco --out "$out/gt.coco.json"
$vis export sample_data/gt.json --format ytvis --form results --out "$out/gt-as-results.json"
$vis eval --gt sample_data/gt.json --results "$out/gt-as-results.json"
echo "==> results are in $out/"
ls -l "$out"
