"""Data: video readers, YouTube-VIS datasets, frame tags and the synthetic generator."""
