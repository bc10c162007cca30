"""Data: video readers, YouTube-VIS datasets and frame tags (the synthetic generator is training.synthetic)."""
