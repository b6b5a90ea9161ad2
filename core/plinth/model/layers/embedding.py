"""Vocabulary-parallel token embedding and LM head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plinth.model.build_context import BuildContext
from plinth.model.layers.layer import Layer
from plinth.model.layers.linear import copy_checked, new_parameter


class VocabParallelEmbedding(Layer):
    """Token embedding whose rows (the vocabulary) are split over tensor-parallel ranks.

    Rank ``r`` holds ids ``[r*n, (r+1)*n)`` with ``n = ceil(vocab / tp_size)``; rows past
    the vocabulary (padding on the last rank) are zero. Each rank embeds the ids it holds,
    zeros the others, and an all-reduce sums the partial embeddings.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, ctx: BuildContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.num_embeddings = num_embeddings
        self.rows_per_rank = -(-num_embeddings // ctx.tp_size)
        self.vocab_start = ctx.tp_rank * self.rows_per_rank
        self.vocab_end = min(self.vocab_start + self.rows_per_rank, num_embeddings)
        self.weight = new_parameter(ctx, self.rows_per_rank, embedding_dim, loader=self.weight_loader)

    def weight_loader(self, param: torch.Tensor, loaded_weight: torch.Tensor, shard_id=None) -> None:
        if loaded_weight.shape[0] != self.num_embeddings:
            raise ValueError(
                f"embedding: checkpoint has {loaded_weight.shape[0]} rows but the config's vocab_size is "
                f"{self.num_embeddings}"
            )
        n = self.vocab_end - self.vocab_start
        copy_checked(param[:n], loaded_weight[self.vocab_start:self.vocab_end], "embedding")
        with torch.no_grad():
            param[n:].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.ctx.tp_size == 1:
            return F.embedding(input_ids, self.weight)
        outside = (input_ids < self.vocab_start) | (input_ids >= self.vocab_end)
        local = torch.where(outside, 0, input_ids - self.vocab_start)
        embedded = F.embedding(local, self.weight).masked_fill(outside.unsqueeze(-1), 0)
        return self.ctx.communicator.all_reduce(embedded)


class ParallelLMHead(VocabParallelEmbedding):
    """The output projection onto the vocabulary, split over ranks like the embedding.

    For tied embeddings, :meth:`tie_to` makes it share the embedding's weight. ``prefix``: its module
    name (``lm_head``), for the checkpoint's list of layers kept in float.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, ctx: BuildContext, prefix: str = "") -> None:
        super().__init__(num_embeddings, embedding_dim, ctx)
        self.linear_method = ctx.lm_head_method(prefix)
        self.prepared = None  # the linear method's form of the weight, after loading

    def process_weights_after_loading(self) -> None:
        """Prepare the (possibly tied) weight for the linear method; the embedding keeps its own."""
        self.prepared = self.linear_method.prepare(self.weight.detach())

    def tie_to(self, embedding: VocabParallelEmbedding) -> None:
        """Share ``embedding``'s weight (tied input and output embeddings)."""
        if embedding.weight.shape != self.weight.shape:
            raise ValueError("tied embeddings need the LM head and the embedding to have the same shape")
        self.weight = embedding.weight

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[R, H]`` -> logits ``[R, vocab_size]`` in the model dtype over the whole vocabulary.

        Not upcast here: the fused sampling kernel reads bf16/fp16 directly (an fp32 copy of
        256 x 151,936 logits is a 155 MB write and read every step); every other consumer
        (torch sampler path, logprobs) converts to float32 first, so its values are the same."""
        logits = self.linear_method.apply(hidden, self.weight if self.prepared is None else self.prepared)
        if self.ctx.tp_size > 1:
            logits = self.ctx.communicator.all_gather(logits, dim=-1)
        return logits[:, : self.num_embeddings]
