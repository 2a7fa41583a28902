"""Transformer feed-forward block (timm ``Mlp``): Linear -> GELU -> Linear, parameter names fc1/fc2."""
from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """``fc2(drop(gelu(fc1(x))))`` followed by dropout, applied to the last dimension.

    Args:
        dim: input and output width.
        hidden_dim: width of the hidden layer (``mlp_ratio x dim`` in DSTformer).
        dropout: dropout after the activation and after ``fc2``.
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
