"""Multi-head self-attention over a token axis, with an optional additive logit bias.

Tokens are ``[B, L, C]``: the caller folds the other axes into ``B`` (DSTformer folds frames for
spatial attention, ``L = joints``, and joints for temporal attention, ``L = frames``). With ``H``
heads of size ``d = C / H`` and an additive bias ``b`` broadcastable to ``[B, H, L, L_kv]``::

    A   = softmax(q k^T * d^-1/2 + b)            # [B, H, L, L_kv]
    out = proj(concat_h(A v))                    # [B, L, C]

Two numerically equivalent paths compute it: the *fused* path calls
``torch.nn.functional.scaled_dot_product_attention`` (``attn_mask = b``) and is the default; the
*explicit* path materialises ``A`` and returns it (for attention heat maps). They agree to
float32 round-off (tests check 1e-5). Parameter names (``qkv``, ``proj``) follow timm/MotionBERT.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
           scale: float, return_attention: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``softmax(q k^T * scale + bias) v`` for ``q [..., L, d]``, ``k, v [..., L_kv, d]``.

    Returns ``(out [..., L, d], A [..., L, L_kv] or None)``; ``A`` only when ``return_attention``
    (explicit path), otherwise the fused SDPA kernel runs and no map is built.
    """
    if not return_attention:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale), None
    logits = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        logits = logits + bias
    attn = logits.softmax(dim=-1)
    return attn @ v, attn


class Attention(nn.Module):
    """Plain multi-head self-attention (MotionBERT ``Attention``, names ``proj`` and ``qkv``)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.proj = nn.Linear(dim, dim)        # declared before qkv: MotionBERT's state_dict order
        self.proj_drop = nn.Dropout(proj_drop)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, C] -> [B, H, L, d]``."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x [B, L, C]`` to ``q, k, v``, each ``[B, H, L, d]``."""
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """Merge heads ``[B, H, L, d] -> [B, L, C]`` and apply the output projection."""
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(2)))

    def forward(self, x: torch.Tensor, return_attention: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x [B, L, C]`` -> ``(out [B, L, C], A [B, H, L, L] or None)``."""
        q, k, v = self.qkv_heads(x)
        out, attn = attend(q, k, v, None, self.scale, return_attention)
        return self.output(out), attn
