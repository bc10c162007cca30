"""Seeded randomness and batch order shared by every trainer: pure functions of (seed, epoch, ...).

Each stream here is derived from integers only (no global generator), so a
resumed run, a run under torchrun and an uninterrupted one draw the same
augmentations and batch orders.
"""

from __future__ import annotations

import numpy as np
import torch


def seeded_generator(*entropy: int) -> torch.Generator:
    """A torch generator seeded from a tuple of non-negative ints (independent streams per tuple)."""
    seed = int(np.random.SeedSequence(list(entropy)).generate_state(1, np.uint64)[0] >> np.uint64(1))
    return torch.Generator().manual_seed(seed)


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled batches of one epoch, a pure function of (seed, epoch).

    Full batches only (IRN drops the last partial one), except when there are
    fewer items than one batch: then one batch of all of them.

    Returns
    -------
    batches : list of lists of item indices
    """
    order = torch.randperm(n_items, generator=seeded_generator(seed, epoch, 1 << 31)).tolist()
    if n_items < batch_size:
        return [order]
    return [order[i : i + batch_size] for i in range(0, n_items - batch_size + 1, batch_size)]
