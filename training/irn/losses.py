"""IRN's losses and flowIRN's flow-boundary loss (METHOD.md §5).

All functions are pure torch and differentiable in the affinity (hence the
boundary map B) and the displacement field D. Per-pair tensors use the layout
of :func:`training.irn.path_index.pair_affinity`: ``(..., D, P)``. Means over
a set are IRN's: the sum over the whole batch divided by the set's size
+ 1e-5, so an empty set contributes 0 instead of NaN.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from training.irn.path_index import PathIndex, pair_affinity, pair_difference
from training.irn.relations import RelationSets

EPS = 1e-5
"""IRN's epsilon inside the logs and under every mean."""
FLOW_LAMBDA = 0.1
"""λ of the flow-boundary loss (not published; METHOD.md §5's starting value)."""
FLOW_MIN_SCALE = 4.0
"""Floor of the per-frame flow scale, in image pixels: the sub-pixel noise of a still frame is not amplified."""
MOTION_SPLIT = 0.0
"""flowIRN's default :func:`motion_split` threshold: off, as the paper. Measured (benchmarks/RESULTS.md):
on the validation set (``bench_flowirn`` seed 7) pseudo-label frame AP50 34.9 % off, 37.7 / 38.7 / 34.2 %
at 0.25 / 0.5 / 1.0; on the pipeline benchmark at 0.5, 40.0 → 35.1 % (seed 0) and 27.2 → 27.9 % (seed 1),
and touching same-class objects still shared one centroid group (42 of 48 pairs, against 47): no reliable
gain, so it stays an option."""
GRID_STRIDE = 4
"""Image pixels per grid cell of the flow the losses get (the stride-4 grid)."""


class IrnLoss(NamedTuple):
    """The terms of the flowIRN objective (scalars); ``total`` is what to back-propagate."""

    total: torch.Tensor
    boundary_pos: torch.Tensor
    boundary_neg: torch.Tensor
    displacement_fg: torch.Tensor
    displacement_bg: torch.Tensor
    flow_boundary: torch.Tensor


def boundary_loss_terms(affinity: torch.Tensor, sets: RelationSets) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive and negative halves of L_B.

    Parameters
    ----------
    affinity : (..., D, P) float tensor
        a_ij in [0, 1] from :func:`~training.irn.path_index.pair_affinity`.
    sets : RelationSets
        Masks of the same shape as ``affinity`` (or broadcastable to it).

    Returns
    -------
    pos : scalar tensor
        ½·mean_{P+_bg} −log(a + 1e-5) + ½·mean_{P+_fg} −log(a + 1e-5)
    neg : scalar tensor
        mean_{P−} −log(1 + 1e-5 − a)
    """
    _check_pairs(affinity, sets)
    bg = _masked_mean(-torch.log(affinity + EPS), sets.bg_pos)
    fg = _masked_mean(-torch.log(affinity + EPS), sets.fg_pos)
    neg = _masked_mean(-torch.log(1.0 + EPS - affinity), sets.neg)
    return bg / 2 + fg / 2, neg


def boundary_loss(affinity: torch.Tensor, sets: RelationSets) -> torch.Tensor:
    """L_B (METHOD.md §5; IRN Eq. 6): positives pull a_ij up, P− pairs push it down.

    Parameters
    ----------
    affinity : (..., D, P) float tensor
    sets : RelationSets

    Returns
    -------
    loss : scalar tensor
        ``pos + neg`` of :func:`boundary_loss_terms`.
    """
    pos, neg = boundary_loss_terms(affinity, sets)
    return pos + neg


def displacement_loss(displacement: torch.Tensor, sets: RelationSets) -> tuple[torch.Tensor, torch.Tensor]:
    """L_D_fg and L_D_bg (METHOD.md §5; IRN Eq. 3-4).

    δ̂(i, j) = D(x_i) − D(x_j) should equal δ(i, j) = x_j − x_i on foreground
    pairs of one class (both pixels then point to the same centroid) and 0 on
    background pairs.

    Parameters
    ----------
    displacement : (..., 2, h, w) float tensor
        D as (dy, dx) in grid pixels (e.g. ``(N, 2, h, w)``).
    sets : RelationSets
        Enumerated on the same (h, w) grid; masks (..., D, P).

    Returns
    -------
    fg : scalar tensor
        Σ_{P+_fg} |δ̂ − δ|₁ / (2|P+_fg| + 1e-5)
    bg : scalar tensor
        Σ_{P+_bg} |δ̂|₁ / (2|P+_bg| + 1e-5)
    """
    index = sets.index
    delta_hat = pair_difference(displacement, index)  # (..., 2, D, P)
    _check_pairs(delta_hat[..., 0, :, :], sets)
    target = torch.as_tensor(index.directions.T, dtype=delta_hat.dtype, device=delta_hat.device)[..., None]
    fg_mask = sets.fg_pos.unsqueeze(-3)
    bg_mask = sets.bg_pos.unsqueeze(-3)
    # The 2 in the denominators: |·|₁ sums two channels (dy, dx), so this is a per-coordinate mean.
    fg = _masked_sum((delta_hat - target).abs(), fg_mask) / (2 * _count(fg_mask, delta_hat[..., :1, :, :]) + EPS)
    bg = _masked_sum(delta_hat.abs(), bg_mask) / (2 * _count(bg_mask, delta_hat[..., :1, :, :]) + EPS)
    return fg, bg


def normalised_flow(
    flow: torch.Tensor,
    normalise: Literal["p95", "none"] = "p95",
    min_scale: float = FLOW_MIN_SCALE,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """F' of the flow-boundary loss: flow divided by its per-frame 95th-percentile magnitude.

    Parameters
    ----------
    flow : (..., 2, h, w) float tensor
        Flow at the stride-4 grid in grid pixels, any channel order (only
        differences' lengths are used).
    normalise : "p95" or "none"
        "none" returns the flow unchanged.
    min_scale : float
        In image pixels: the divisor is ``max(p95, min_scale / 4)`` grid
        pixels, so a still frame's sub-pixel noise is not blown up into motion
        boundaries.
    valid : (..., h, w) bool tensor or None
        Pixels whose flow is known (not occluded, inside the frame): the 95th
        percentile is taken over these only (a frame with none gets the floor).

    Returns
    -------
    (..., 2, h, w) tensor, detached (the flow is an input, not learned here).
    """
    flow = flow.detach()
    if normalise == "none":
        return flow
    if normalise != "p95":
        raise ValueError(f"flow_boundary_loss: normalise must be 'p95' or 'none', got {normalise!r}")
    magnitude = torch.linalg.vector_norm(flow, dim=-3).float()  # (..., h, w)
    if valid is not None:
        magnitude = torch.where(valid, magnitude, magnitude.new_full((), float("nan")))
    p95 = torch.nanquantile(magnitude.flatten(-2), 0.95, dim=-1).nan_to_num(0.0)
    scale = p95.clamp_min(min_scale / GRID_STRIDE).to(flow.dtype)
    return flow / scale[..., None, None, None]


def flow_boundary_loss(
    affinity: torch.Tensor,
    flow: torch.Tensor,
    pairs: PathIndex,
    lam: float = FLOW_LAMBDA,
    normalise: Literal["p95", "none"] = "p95",
    valid: torch.Tensor | None = None,
    min_scale: float = FLOW_MIN_SCALE,
) -> torch.Tensor:
    """flowIRN's L_F_B = ‖F'(i) − F'(j)‖·a_ij + λ|1 − a_ij| (METHOD.md §5).

    A motion discontinuity between i and j makes a high affinity costly, so the
    boundary between them goes up; λ keeps affinities from collapsing to 0.
    The paper writes a sum over neighbours; this is the **mean over pairs**, so
    the weight does not depend on the grid size or radius.

    Parameters
    ----------
    affinity : (..., D, P) float tensor
        a_ij from :func:`~training.irn.path_index.pair_affinity` with ``pairs``.
    flow : (..., 2, h, w) float tensor
        Optical flow resized to the grid, in grid pixels (one per frame of the batch).
    pairs : PathIndex
        The enumeration ``affinity`` was computed with (e.g. ``sets.index``).
    lam : float
        λ (default 0.1, not published).
    normalise : "p95" or "none"
        See :func:`normalised_flow`.
    valid : (..., h, w) bool tensor or None
        Grid pixels whose flow is known (not occluded, inside the frame): only
        pairs whose whole path is valid count, and the flow scale is measured
        on them. ``None``: every pixel.
    min_scale : float
        In image pixels; see :func:`normalised_flow`.

    Returns
    -------
    loss : scalar tensor
    """
    f = normalised_flow(flow, normalise, min_scale, valid)
    jump = torch.linalg.vector_norm(pair_difference(f, pairs), dim=-3)  # (..., D, P)
    if jump.shape[-2:] != affinity.shape[-2:]:
        raise ValueError(
            f"flow_boundary_loss: flow {tuple(flow.shape)} gives pairs {tuple(jump.shape)} but the affinity is "
            f"{tuple(affinity.shape)}; compute both on the same grid with the same PathIndex"
        )
    per_pair = jump * affinity + lam * (1.0 - affinity).abs()
    if valid is None:
        return per_pair.mean()
    # a pair counts when every grid pixel of its path has a known flow: 1 − max(1 − valid) over the path
    pair_valid = pair_affinity((~valid).to(affinity.dtype), pairs) > 0.5
    return _masked_mean(per_pair, pair_valid)


def motion_split(
    sets: RelationSets,
    flow: torch.Tensor,
    threshold: float,
    valid: torch.Tensor | None = None,
    min_scale: float = FLOW_MIN_SCALE,
) -> RelationSets:
    """Same-class pairs that move apart are two instances: P+_fg pairs with a flow jump ≥ ``threshold`` go to P−.

    IRN's relation labels know classes, not instances: two touching objects
    of one class give P+_fg pairs across their contact, so D learns one
    centroid for both and the instance map merges them. Where the (normalised)
    flow of the two pixels differs by ``threshold`` or more, the pair is
    taken as two objects in relative motion: no displacement constraint
    between them, and a boundary on the path (an extension beyond the paper,
    in the spirit of its flow-boundary loss; METHOD.md §5).

    Parameters
    ----------
    sets : RelationSets
        (N, D, P) masks.
    flow : (N, 2, h, w) float tensor
        In grid pixels, on the sets' grid.
    threshold : float
        On ‖F'(i) − F'(j)‖ with F' the flow over its per-frame 95th-percentile
        magnitude (:func:`normalised_flow`); ≤ 0 returns ``sets`` unchanged.
    valid : (N, h, w) bool tensor or None
        Pixels whose flow is known: a pair whose path leaves them is not moved.

    Returns
    -------
    RelationSets
    """
    if threshold <= 0:
        return sets
    f = normalised_flow(flow, "p95", min_scale, valid)
    jump = torch.linalg.vector_norm(pair_difference(f, sets.index), dim=-3)  # (N, D, P)
    apart = sets.fg_pos & (jump >= threshold)
    if valid is not None:
        apart &= pair_affinity((~valid).float(), sets.index) > 0.5  # every pixel of the path has a known flow
    return RelationSets(sets.fg_pos & ~apart, sets.bg_pos, sets.neg | apart, sets.index)


def irn_total_loss(
    affinity: torch.Tensor,
    displacement: torch.Tensor,
    sets: RelationSets,
    flow: torch.Tensor | None = None,
    flow_weight: float = 1.0,
    lam: float = FLOW_LAMBDA,
    normalise: Literal["p95", "none"] = "p95",
    split: float = 0.0,
) -> IrnLoss:
    """IRN's objective, plus flowIRN's flow-boundary loss when a flow is given.

    ``total = (L_B_pos + L_B_neg)/2 + (L_D_fg + L_D_bg)/2 + flow_weight · L_F_B``
    (IRN's ``train_irn`` weighting; the paper gives no weight for L_F_B, 1 is
    the starting value).

    Parameters
    ----------
    affinity : (N, D, P) float tensor
    displacement : (N, 2, h, w) float tensor
    sets : RelationSets
        (N, D, P) masks of the batch's relation labels.
    flow : (N, 2, h, w) or (N, 3, h, w) float tensor, or None
        Flow at the grid in grid pixels; a third channel marks the pixels
        whose flow is known (> 0.5: not occluded, inside the frame), the only
        ones the flow-boundary loss uses. None trains plain IRN
        (``flow_boundary`` is then 0).
    flow_weight, lam, normalise
        See :func:`flow_boundary_loss`.
    split : float
        With a flow: :func:`motion_split`'s threshold (0: off, as the paper).

    Returns
    -------
    IrnLoss
    """
    valid = flow[:, 2] > 0.5 if flow is not None and flow.shape[1] == 3 else None
    if flow is not None:
        sets = motion_split(sets, flow[:, :2], split, valid)
    pos, neg = boundary_loss_terms(affinity, sets)
    fg, bg = displacement_loss(displacement, sets)
    if flow is None:
        flow_term = affinity.new_zeros(())
    else:
        flow_term = flow_boundary_loss(affinity, flow[:, :2], sets.index, lam=lam, normalise=normalise, valid=valid)
    total = (pos + neg) / 2 + (fg + bg) / 2 + flow_weight * flow_term
    return IrnLoss(total, pos, neg, fg, bg, flow_term)


def _count(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.broadcast_to(mask, torch.broadcast_shapes(mask.shape, like.shape)).sum().to(like.dtype)


def _masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where() rather than multiplication: a masked-out inf/NaN must not leak into the sum or its gradient.
    return torch.where(mask, values, values.new_zeros(())).sum()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_sum(values, mask) / (_count(mask, values) + EPS)


def _check_pairs(per_pair: torch.Tensor, sets: RelationSets) -> None:
    try:
        torch.broadcast_shapes(per_pair.shape, sets.fg_pos.shape)
    except RuntimeError:
        raise ValueError(
            f"IRN loss: per-pair tensor {tuple(per_pair.shape)} does not match the relation sets "
            f"{tuple(sets.fg_pos.shape)}; enumerate both on the same grid and radius"
        ) from None
