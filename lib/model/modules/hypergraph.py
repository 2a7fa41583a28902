"""Hypergraph-biased spatial attention (Pose3D version 2, after EHGFormer's HyperAttention).

Notation, per frame: joint tokens ``x [J, C]`` (``J = 17``, already layer-normed), ``H`` heads of
size ``d = C / H``, a partition of the joints into ``E`` hyperedges given by ``joint_label [J]``.

* Incidence ``Inc = one_hot(joint_label) [J, E]``, edge sizes ``D_e = diag(1^T Inc)`` and the
  mean-pooling matrix ``P = Inc D_e^-1 [J, E]`` (columns sum to 1). They are derived from the
  ``joint_label`` buffer, never trained.
* Hyperedge features ``m = P^T x [E, C]`` (mean of each hyperedge's joint tokens), hyperedge keys
  ``k_e = m W_e^T`` (``edge_proj``, Linear(C, C, bias=False)) and hyperedge values
  ``v_e = P^T v`` (= the value projection of ``m``, since the columns of ``P`` sum to 1).
* Joint keys/values ``k, v [J, C]`` come from the usual ``qkv`` projection. Each joint query
  attends over the ``J + E`` tokens ``[k; k_e]`` / ``[v; v_e]`` in one softmax, per head h::

      logits_h = ( q_h [k_h; k_e,h]^T + [alpha * B_h | 1 w1_h^T] ) * d^-1/2     # [J, J + E]
      out      = proj( concat_h softmax(logits_h) [v_h; v_e,h] )

  ``B_h [J, J]`` is a learnable per-head joint-joint relation bias initialised from the skeleton
  (:func:`relation_bias_init`), ``alpha`` a learnable scalar (init 1), ``w1 [H, E]`` a learnable
  per-head hyperedge bias (init 0). The whole bias is static, so it is one additive ``attn_mask``
  and the attention stays a single fused ``scaled_dot_product_attention`` call.

Deviations from EHGFormer (documented in docs/model.md): the joint-to-hyperedge term follows the
*intended* semantics (joint i attends to hyperedge features) instead of EHGFormer's code, whose
reshape reads ``[B, J, C]`` as channel-first and mixes joints with channels; it shares one softmax with the joint-joint term instead of a separate
hyper block with its own MLP, so the backbone and its parameter names stay those of version 1;
``w1`` is a per-head per-hyperedge bias instead of a per-head vector dotted with the hyperedge
feature; the adjacency has no spurious pelvis-right-wrist edge; partitions are buffers.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lib.data.skeleton import NUM_JOINTS, adjacency
from lib.model.modules.attention import Attention, attend

RELATION_BIAS_INITS = ("none", "uniform")


def relation_bias_init(mode: str) -> torch.Tensor:
    """The ``[17, 17]`` initial joint-joint bias: ``'none'`` = identity, ``'uniform'`` = ``U``.

    ``U[i, j] = adj[i, j] / sum_k adj[k, j]``: the column-normalised H36M adjacency with
    self-loops (bones of ``lib.data.skeleton``, no edge for the root's missing parent).
    """
    if mode == "none":
        return torch.eye(NUM_JOINTS)
    if mode == "uniform":
        adj = torch.from_numpy(adjacency(self_loops=True))
        return adj / adj.sum(dim=0, keepdim=True)
    raise ValueError(f"hyper_relation_bias must be one of {RELATION_BIAS_INITS}, got {mode!r}")


class Hypergraph(nn.Module):
    """A partition of the joints into hyperedges, stored as the (persistent) ``joint_label`` buffer.

    Only the label is saved, so a checkpoint carries its partition; the incidence and pooling
    matrices are derived from it on every call (17 x E, negligible), so they can never go stale.
    """

    def __init__(self, joint_label: Sequence[int]):
        super().__init__()
        label = [int(e) for e in joint_label]
        self.num_edges = max(label) + 1
        if len(label) != NUM_JOINTS or set(label) != set(range(self.num_edges)):
            raise ValueError(f"joint_label must give each of the {NUM_JOINTS} joints a hyperedge id and use "
                             f"every id 0..E-1, got {joint_label!r}")
        self.register_buffer("joint_label", torch.tensor(label, dtype=torch.long))
        self.register_buffer("edge_ids", torch.arange(self.num_edges), persistent=False)

    def incidence(self) -> torch.Tensor:
        """``Inc [J, E]``: ``Inc[j, e] = 1`` if joint j belongs to hyperedge e."""
        return (self.joint_label[:, None] == self.edge_ids[None, :]).float()

    def forward(self) -> torch.Tensor:
        """The mean-pooling matrix ``P = Inc D_e^-1 [J, E]``."""
        inc = self.incidence()
        return inc / inc.sum(dim=0, keepdim=True)

    def extra_repr(self) -> str:
        return f"num_joints={self.joint_label.numel()}, num_edges={self.num_edges}"


class HypergraphAttention(Attention):
    """Spatial attention over joints plus hyperedge tokens with a learnable relation bias.

    Same ``qkv``/``proj`` as :class:`Attention` (a version-1 checkpoint's weights are a subset),
    plus ``relation_bias [H, J, J]``, ``relation_alpha []``, ``edge_bias [H, E]`` and
    ``edge_proj`` (Linear(C, C, bias=False)). See the module docstring for the maths.
    """

    def __init__(self, dim: int, num_heads: int, num_edges: int, relation_init: str = "uniform",
                 qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__(dim, num_heads, qkv_bias, proj_drop)
        self.relation_bias = nn.Parameter(relation_bias_init(relation_init).repeat(num_heads, 1, 1))
        self.relation_alpha = nn.Parameter(torch.ones(()))
        self.edge_bias = nn.Parameter(torch.zeros(num_heads, num_edges))
        self.edge_proj = nn.Linear(dim, dim, bias=False)

    def logit_bias(self) -> torch.Tensor:
        """The additive ``attn_mask [H, J, J + E]``: ``scale * [alpha * B | w1]``."""
        joints = self.relation_bias.shape[-1]
        edges = self.edge_bias[:, None, :].expand(-1, joints, -1)
        return torch.cat([self.relation_alpha * self.relation_bias, edges], dim=-1) * self.scale

    def forward(self, x: torch.Tensor, pool: torch.Tensor, return_attention: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x [B, J, C]``, ``pool = P [J, E]`` -> ``(out [B, J, C], A [B, H, J, J + E] or None)``."""
        q, k, v = self.qkv_heads(x)
        edge_feat = pool.t() @ x                                   # [B, E, C] hyperedge means
        k = torch.cat([k, self.split_heads(self.edge_proj(edge_feat))], dim=2)
        v = torch.cat([v, pool.t() @ v], dim=2)                    # [B, H, J + E, d]
        out, attn = attend(q, k, v, self.logit_bias(), self.scale, return_attention)
        return self.output(out), attn
