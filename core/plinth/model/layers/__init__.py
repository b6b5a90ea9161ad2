"""Layers shared by every model; each resolves its kernels once, at construction."""

from plinth.model.layers.activation import SiluAndMul
from plinth.model.layers.attention import Attention
from plinth.model.layers.embedding import ParallelLMHead, VocabParallelEmbedding
from plinth.model.layers.layer import Layer
from plinth.model.layers.linear import (
    ColumnParallelLinear,
    MergedColumnParallelLinear,
    QKVParallelLinear,
    ReplicatedLinear,
    RowParallelLinear,
    default_weight_loader,
)
from plinth.model.layers.norm import RMSNorm
from plinth.model.layers.rotary import RotaryEmbedding, get_rope

__all__ = [
    "Attention", "ColumnParallelLinear", "Layer", "MergedColumnParallelLinear", "ParallelLMHead",
    "QKVParallelLinear", "RMSNorm", "ReplicatedLinear", "RotaryEmbedding", "RowParallelLinear",
    "SiluAndMul", "VocabParallelEmbedding", "default_weight_loader", "get_rope",
]
