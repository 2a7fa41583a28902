"""Multi-head self-attention over a token axis, with an optional additive logit bias.

Tokens are ``[B, L, C]``: the caller folds the other axes into ``B`` (DSTformer folds frames for
spatial attention, ``L = joints``, and joints for temporal attention, ``L = frames``). With ``H``
heads of size ``d = C / H`` and an additive bias ``b`` broadcastable to ``[B, H, L, L_kv]``::

    A   = softmax(q k^T * d^-1/2 + b)            # [B, H, L, L_kv]
    out = proj(concat_h(A v))                    # [B, L, C]

Two numerically equivalent paths compute it: the *fused* path (the default) calls
``torch.nn.functional.scaled_dot_product_attention`` (``attn_mask = b``); the *explicit* path
materialises ``A`` and returns it (for attention heat maps). They agree to float32 round-off
(tests check 1e-5). Parameter names (``qkv``, ``proj``) follow timm/MotionBERT.

Dispatch of the fused path (:func:`use_sdpa`): SDPA always on CUDA (flash / memory-efficient /
cuDNN kernels), under ONNX export and tracing (the exporter maps the SDPA node to a fused
attention op), and on CPU when the key sequence has at least :data:`CPU_SDPA_MIN_LEN` tokens.
PyTorch's CPU kernels lose to batched matmul + softmax on short sequences: the flash kernel runs
one small GEMM per (batch, head) block and zero-fills its gradients, and the math backend scales
q and k separately and uses a NaN-safe softmax. Measured on the 2-core CPU (docs/benchmarks.md,
"Training step and throughput"): flash is 1.3-2.3x slower for 17-27 tokens, about even at 49 and
faster from about 64 on (2-4x at 243). Below the threshold the fused path therefore evaluates the
same formula with batched matmuls (exactly the explicit path, without returning ``A``), so it is
never slower than the explicit one. The threshold depends only on shapes and the device, never on
tensor values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# On CPU, SDPA's kernels beat batched matmul + softmax only from about this many key tokens.
CPU_SDPA_MIN_LEN = 64


def use_sdpa(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether the fused path calls SDPA (see the module docstring); shapes and device only."""
    if q.device.type != "cpu" or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    if torch.compiler.is_exporting():
        return True
    return k.shape[-2] >= CPU_SDPA_MIN_LEN


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
           scale: float, return_attention: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``softmax(q k^T * scale + bias) v`` for ``q [..., L, d]``, ``k, v [..., L_kv, d]``.

    Returns ``(out [..., L, d], A [..., L, L_kv] or None)``; ``A`` only when ``return_attention``
    (explicit path). Otherwise no map is returned and :func:`use_sdpa` picks SDPA or, for short
    sequences on CPU, the same batched-matmul computation as the explicit path.
    """
    if not return_attention and use_sdpa(q, k):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale), None
    logits = (q @ k.transpose(-2, -1)).mul_(scale)  # fresh tensor: in place is autograd-safe
    if bias is not None:
        same = torch.broadcast_shapes(bias.shape, logits.shape) == logits.shape
        logits = logits.add_(bias) if same else logits + bias
    attn = logits.softmax(dim=-1)
    return attn @ v, (attn if return_attention else None)


class Attention(nn.Module):
    """Plain multi-head self-attention (MotionBERT ``Attention``, names ``proj`` and ``qkv``).

    Args:
        dim: token width ``C``; must be divisible by ``num_heads``.
        num_heads: number of heads ``H`` (head size ``C / H``).
        qkv_bias: whether the ``qkv`` projection has a bias.
        proj_drop: dropout after the output projection.
        causal: token ``i`` attends only to tokens ``<= i`` (an additive ``-inf`` bias above the
            diagonal; DSTformer's temporal attention of a streaming model).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_drop: float = 0.0,
                 causal: bool = False):
        super().__init__()
        self.causal = causal
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
        # Views only. Unbinding the [B, L, 3, H, d] projection (rather than a permuted [3, B, H, L, d]
        # view) lets autograd assemble the qkv gradient with one stack and no extra copy.
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).unbind(2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """Merge heads ``[B, H, L, d] -> [B, L, C]`` and apply the output projection."""
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(2)))

    def forward(self, x: torch.Tensor, return_attention: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x [B, L, C]`` -> ``(out [B, L, C], A [B, H, L, L] or None)``."""
        q, k, v = self.qkv_heads(x)
        out, attn = attend(q, k, v, causal_bias(x) if self.causal else None, self.scale, return_attention)
        return self.output(out), attn


def causal_bias(x: torch.Tensor) -> torch.Tensor:
    """``[L, L]`` additive bias of ``x [B, L, C]``'s tokens: 0 on and below the diagonal, -inf above
    (an explicit bias rather than SDPA's ``is_causal``, so that the ONNX export's fused attention
    takes it as its ``attention_bias``)."""
    length = x.shape[1]
    future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    return torch.zeros(length, length, dtype=x.dtype, device=x.device).masked_fill(future, float("-inf"))
