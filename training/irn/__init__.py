"""IRN's pure functions (METHOD.md §4-§6): relation labels, pairs, losses, random walk, pseudo-labels.

Modules: ``ir_labels`` (confident fg/bg relation labels from CAMs, optional
dense CRF), ``path_index`` (IRN's half-plane pair enumeration and path
affinities), ``relations`` (the sets P+_fg, P+_bg, P−), ``losses`` (L_B, L_D
and flowIRN's flow-boundary loss), ``random_walk`` (sparse propagation and the
dense reference) and ``inference`` (centroids, instance map, instance and
semantic pseudo-labels). The network and its training loop build on these.
"""

from training.irn.inference import (
    Instance,
    cluster_centroids,
    find_centroids,
    instance_pseudo_labels,
    propagate,
    semantic_pseudo_labels,
)
from training.irn.ir_labels import CrfParams, ir_labels
from training.irn.losses import IrnLoss, boundary_loss, displacement_loss, flow_boundary_loss, irn_total_loss
from training.irn.path_index import PathIndex, pair_affinity, pair_difference, path_index
from training.irn.relations import RelationSets, relation_sets

__all__ = [
    "CrfParams",
    "Instance",
    "IrnLoss",
    "PathIndex",
    "RelationSets",
    "boundary_loss",
    "cluster_centroids",
    "displacement_loss",
    "find_centroids",
    "flow_boundary_loss",
    "instance_pseudo_labels",
    "ir_labels",
    "irn_total_loss",
    "pair_affinity",
    "pair_difference",
    "path_index",
    "propagate",
    "relation_sets",
    "semantic_pseudo_labels",
]
