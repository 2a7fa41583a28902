"""Reusable model blocks (timm ``layers`` style): attention, MLP, drop path, hypergraph attention."""
from lib.model.modules.attention import Attention
from lib.model.modules.drop_path import DropPath
from lib.model.modules.hypergraph import HypergraphAttention, Hypergraph, relation_bias_init
from lib.model.modules.mlp import Mlp

__all__ = ["Attention", "DropPath", "Hypergraph", "HypergraphAttention", "Mlp", "relation_bias_init"]
