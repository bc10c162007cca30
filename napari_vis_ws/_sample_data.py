"""The sample data menu: the shipped synthetic video with its ground truth."""

from __future__ import annotations

from pathlib import Path

from napari_vis_ws._layers import dataset_layers, sample_root

# How sample_data/ was made: `vis-ws sample --out sample_data --videos 2 --frames 16 --seed 0`
SAMPLE_CONFIG = {"n_videos": 2, "n_frames": 16, "seed": 0}


def ensure_sample() -> Path:
    """Path of the sample ``gt.json``.

    The repository's ``sample_data/`` when present; an installed wheel
    without it regenerates the same sample (the generator is deterministic)
    into the user's cache folder, offline.
    """
    gt = sample_root() / "gt.json"
    if gt.is_file():
        return gt
    import os

    from training.synthetic import SyntheticConfig, generate_dataset

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "napari-vis-ws" / "sample_data"
    if not (cache / "gt.json").is_file():
        generate_dataset(cache, SyntheticConfig(**SAMPLE_CONFIG))
    return cache / "gt.json"


def load_sample() -> list[tuple]:
    """Layers ``frames`` and ``ground truth`` of the sample's first video."""
    return dataset_layers(ensure_sample())
