"""DSTformer (MotionBERT's ``DSTformer.py``) and its hypergraph-biased variant (Pose3D version 2).

Version 1 is MotionBERT's DSTformer with the same parameter names, shapes and initialisation, so
MotionBERT checkpoints (``model_pos``) load and reproduce its outputs. Version 2 keeps that
backbone unchanged and replaces every spatial attention (both streams, every layer) with
:class:`~lib.model.modules.hypergraph.HypergraphAttention`: a learnable skeleton relation bias and
a joint-to-hyperedge attention term. A version-1 state_dict is a strict subset of version 2's.

Per layer, two blocks read the same tokens and a learned per-token softmax fuses them::

    x ─┬─ Block 'st': S-MHSA, MLP_s, T-MHSA, MLP_t ─┐
       └─ Block 'ts': T-MHSA, MLP_t, S-MHSA, MLP_s ─┴─ a = softmax(W [x_st; x_ts] + b),
                                                        x = a0 x_st + a1 x_ts
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from lib.model.modules import Attention, DropPath, Hypergraph, HypergraphAttention, Mlp

@dataclass
class DSTformerConfig:
    """Hyper-parameters of :class:`DSTformer` (defaults = MotionBERT full, 42,466,317 params)."""
    dim_in: int = 3
    dim_out: int = 3
    dim_feat: int = 512
    dim_rep: int = 512
    depth: int = 5
    num_heads: int = 8
    mlp_ratio: float = 2.0
    num_joints: int = 17
    maxlen: int = 243
    qkv_bias: bool = True
    att_fuse: bool = True
    drop_path_rate: float = 0.0       # stochastic depth, linspace(0, rate, depth) over layers
    dropout: float = 0.0              # embedding, attention-projection and MLP dropout
    version: int = 1                  # 1 = DSTformer, 2 = hypergraph-biased DSTformer
    hyper_relation_bias: str = "uniform"          # version 2: 'none' or 'uniform'
    joint_label: Sequence[int] | None = None      # version 2: hyperedge id of each joint
    # eps of every LayerNorm: 1e-6 as MotionBERT's load_backbone and EHGFormer's blocks build them;
    # a checkpoint carries its own in model_args (lib/model/checkpoint.py)
    layernorm_eps: float = 1e-6
    causal: bool = False              # temporal attention masked to the current and past frames


class Block(nn.Module):
    """One DSTformer stream: spatial and temporal pre-norm attention + MLP, in ``order`` 'st'/'ts'.

    Tokens are ``[N, T, J, C]``. Spatial attention runs over the J joints of each frame, temporal
    attention over the T frames of each joint. ``num_edges > 0`` makes the spatial attention a
    :class:`HypergraphAttention` (version 2).

    Args:
        cfg: the model's sizes, dropout and LayerNorm eps.
        order: ``'st'`` (spatial then temporal) or ``'ts'``.
        drop_path: stochastic-depth rate of this layer.
        num_edges: hyperedges of the partition (0 = plain spatial attention, version 1).
    """

    def __init__(self, cfg: DSTformerConfig, order: str, drop_path: float, num_edges: int = 0):
        super().__init__()
        dim, heads = cfg.dim_feat, cfg.num_heads
        self.order, self.hyper = order, num_edges > 0
        self.norm1_s, self.norm1_t = nn.LayerNorm(dim, cfg.layernorm_eps), nn.LayerNorm(dim, cfg.layernorm_eps)
        self.attn_s = (HypergraphAttention(dim, heads, num_edges, cfg.hyper_relation_bias, cfg.qkv_bias, cfg.dropout)
                       if self.hyper else Attention(dim, heads, cfg.qkv_bias, cfg.dropout))
        self.attn_t = Attention(dim, heads, cfg.qkv_bias, cfg.dropout, causal=cfg.causal)
        self.norm2_s, self.norm2_t = nn.LayerNorm(dim, cfg.layernorm_eps), nn.LayerNorm(dim, cfg.layernorm_eps)
        hidden = int(dim * cfg.mlp_ratio)
        self.mlp_s, self.mlp_t = Mlp(dim, hidden, cfg.dropout), Mlp(dim, hidden, cfg.dropout)
        self.drop_path = DropPath(drop_path)

    def spatial(self, x, pool, return_attention: bool):
        """Spatial sub-layers; attention map ``[N, T, H, J, J(+E)]``."""
        N, T, J, C = x.shape
        h = self.norm1_s(x).reshape(N * T, J, C)
        h, attn = self.attn_s(h, pool, return_attention) if self.hyper else self.attn_s(h, return_attention)
        x = x + self.drop_path(h.reshape(N, T, J, C))
        x = x + self.drop_path(self.mlp_s(self.norm2_s(x)))
        return x, None if attn is None else attn.unflatten(0, (N, T))

    def temporal(self, x, return_attention: bool):
        """Temporal sub-layers; attention map ``[N, J, H, T, T]``."""
        N, T, J, C = x.shape
        h = self.norm1_t(x).transpose(1, 2).reshape(N * J, T, C)
        h, attn = self.attn_t(h, return_attention)
        x = x + self.drop_path(h.reshape(N, J, T, C).transpose(1, 2))
        x = x + self.drop_path(self.mlp_t(self.norm2_t(x)))
        return x, None if attn is None else attn.unflatten(0, (N, J))

    def forward(self, x: torch.Tensor, pool: torch.Tensor | None = None, return_attention: bool = False):
        """``x [N, T, J, C]`` -> ``(x, {'spatial': map or None, 'temporal': map or None})``."""
        if self.order == "st":
            x, a_s = self.spatial(x, pool, return_attention)
            x, a_t = self.temporal(x, return_attention)
        else:
            x, a_t = self.temporal(x, return_attention)
            x, a_s = self.spatial(x, pool, return_attention)
        return x, {"spatial": a_s, "temporal": a_t}


class DSTformer(nn.Module):
    """Dual-stream spatio-temporal transformer lifting 2D keypoint clips to 3D.

    Tensor contract:
        input  ``[N, T, J, dim_in]``, ``T <= maxlen``, ``J = 17`` H36M joints
               (``lib.data.skeleton``); channels ``(x_n, y_n, confidence)``: pixel coordinates
               normalised by the camera width (x in [-1, 1], y scaled by the same factor),
               confidence in [0, 1] (1 when unknown); ``dim_in = 2`` drops the confidence.
        output ``[N, T, J, dim_out]`` 3D joints in the same normalised units (x, y in the
               input's frame, z scaled alike; millimetres via the per-frame 2.5d factor).
        ``forward(x, return_rep=True)`` returns the motion representation ``[N, T, J, dim_rep]``
        (``tanh`` of ``pre_logits.fc``), as MotionBERT does.

    :meth:`forward_with_extras` also returns per-layer features and, on request, attention maps.

    Args:
        config: every construction argument (:class:`DSTformerConfig`); checkpoints store it as
            ``model_args`` so a model is rebuilt exactly.

    Example::

        >>> model = DSTformer(DSTformerConfig(dim_feat=64, dim_rep=128, depth=2, num_heads=4, maxlen=27))
        >>> model(torch.zeros(2, 27, 17, 3)).shape                 # [N, T, J, dim_out]
        torch.Size([2, 27, 17, 3])
        >>> model(torch.zeros(2, 27, 17, 3), return_rep=True).shape
        torch.Size([2, 27, 17, 128])
    """

    def __init__(self, config: DSTformerConfig):
        super().__init__()
        c = self.config = config
        self.temp_embed = nn.Parameter(torch.zeros(1, c.maxlen, 1, c.dim_feat))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.num_joints, c.dim_feat))
        self.joints_embed = nn.Linear(c.dim_in, c.dim_feat)
        self.pos_drop = nn.Dropout(c.dropout)
        self.hypergraph = Hypergraph(c.joint_label) if c.version == 2 else None
        edges = self.hypergraph.num_edges if self.hypergraph is not None else 0
        dpr = [c.drop_path_rate * i / max(c.depth - 1, 1) for i in range(c.depth)]  # linspace(0, rate, depth)
        self.blocks_st = nn.ModuleList(Block(c, "st", p, edges) for p in dpr)
        self.blocks_ts = nn.ModuleList(Block(c, "ts", p, edges) for p in dpr)
        self.norm = nn.LayerNorm(c.dim_feat, c.layernorm_eps)
        self.pre_logits = nn.Sequential(OrderedDict(fc=nn.Linear(c.dim_feat, c.dim_rep), act=nn.Tanh()))
        self.head = nn.Linear(c.dim_rep, c.dim_out)
        if c.att_fuse:
            self.ts_attn = nn.ModuleList(nn.Linear(2 * c.dim_feat, 2) for _ in range(c.depth))
        self._init_weights()

    def _init_weights(self) -> None:
        """MotionBERT init: trunc-normal(.02) Linear/embeddings, zero bias, LN (1, 0), fusion (0, .5)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for fc in getattr(self, "ts_attn", []):
            nn.init.zeros_(fc.weight)
            nn.init.constant_(fc.bias, 0.5)

    def fuse(self, i: int, x_st: torch.Tensor, x_ts: torch.Tensor) -> torch.Tensor:
        """Learned per-token convex combination of the two streams (plain mean without att_fuse).

        MotionBERT computes ``a = softmax(W [x_st; x_ts] + b)`` with ``W [2, 2C]`` and mixes
        ``a0 x_st + a1 x_ts``. A two-way softmax is the sigmoid of the logit difference, so with
        ``w = W[0] - W[1]`` split into its ``x_st`` and ``x_ts`` halves this is the same function
        (and gradient) without the ``[.., 2C]`` concat::

            a0 = sigmoid(x_st . w[:C] + x_ts . w[C:] + b0 - b1),   x = x_ts + a0 (x_st - x_ts)
        """
        if not self.config.att_fuse:
            return (x_st + x_ts) * 0.5
        fc, width = self.ts_attn[i], x_st.shape[-1]
        w, b = fc.weight[0] - fc.weight[1], fc.bias[0] - fc.bias[1]
        a0 = torch.sigmoid(x_st @ w[:width] + x_ts @ w[width:] + b).unsqueeze(-1)
        return torch.lerp(x_ts, x_st, a0.to(x_st.dtype))     # (a0 is bf16 under autocast)

    def encode(self, x: torch.Tensor, return_attention: bool = False):
        """``x [N, T, J, dim_in]`` -> ``(normed tokens [N, T, J, C], per-layer features, per-layer maps)``."""
        if x.shape[1] > self.config.maxlen:
            raise ValueError(f"clip of {x.shape[1]} frames is longer than the model's maxlen {self.config.maxlen}")
        x = self.joints_embed(x) + self.pos_embed + self.temp_embed[:, : x.shape[1]]
        x = self.pos_drop(x)
        pool = self.hypergraph() if self.hypergraph is not None else None
        features, maps = [], []
        for i, (st, ts) in enumerate(zip(self.blocks_st, self.blocks_ts)):
            x_st, map_st = st(x, pool, return_attention)
            x_ts, map_ts = ts(x, pool, return_attention)
            x = self.fuse(i, x_st, x_ts)
            features.append(x)
            maps.append({"st": map_st, "ts": map_ts})
        return self.norm(x), features, maps

    def forward(self, x: torch.Tensor, return_rep: bool = False) -> torch.Tensor:
        """``[N, T, J, dim_in]`` -> 3D pose ``[N, T, J, dim_out]`` (or the representation, see class doc)."""
        rep = self.pre_logits(self.encode(x)[0])
        return rep if return_rep else self.head(rep)

    def forward_with_extras(self, x: torch.Tensor, return_attention: bool = False) -> dict:
        """Pose plus internals for distillation and visualisation.

        Returns a dict with
            ``output``     ``[N, T, J, dim_out]`` (same as ``forward``);
            ``features``   list (one per layer) of fused tokens ``[N, T, J, C]`` (before the final norm);
            ``attention``  only if ``return_attention`` (explicit, map-returning path):
                ``spatial``   list per layer of ``{'st', 'ts'} -> [N, T, H, J, J + E]`` (``E = 0`` in
                              version 1; columns ``J..J+E-1`` are the hyperedge tokens);
                ``temporal``  list per layer of ``{'st', 'ts'} -> [N, J, H, T, T]``;
                ``relation_bias`` list per layer of ``{'st', 'ts'} -> alpha * B [H, J, J]`` (version 2,
                              empty list in version 1);
                ``incidence`` ``[J, E]`` hyperedge incidence (version 2) or ``None``.
        Every map row is a softmax over the keys (sums to 1).
        """
        tokens, features, maps = self.encode(x, return_attention)
        out = {"output": self.head(self.pre_logits(tokens)), "features": features}
        if return_attention:
            out["attention"] = self.attention_summary(maps)
        return out

    def attention_summary(self, maps: list) -> dict:
        """Regroup per-layer block maps into the ``attention`` dict of :meth:`forward_with_extras`."""
        streams = ("st", "ts")
        blocks = list(zip(self.blocks_st, self.blocks_ts))
        hyper = self.hypergraph is not None
        return {
            "spatial": [{s: m[s]["spatial"] for s in streams} for m in maps],
            "temporal": [{s: m[s]["temporal"] for s in streams} for m in maps],
            "relation_bias": [{s: b.attn_s.relation_alpha * b.attn_s.relation_bias for s, b in zip(streams, pair)}
                              for pair in blocks] if hyper else [],
            "incidence": self.hypergraph.incidence() if hyper else None,
        }
