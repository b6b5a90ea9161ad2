"""Linear layers with tensor-parallel sharding built into their weight loaders.

Every parameter carries ``weight_loader(param, loaded_weight, shard_id=None)`` that takes
the *full* checkpoint tensor and copies this rank's shard into the parameter, so the
model loader has no per-model or per-rank branches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from plinth.model.build_context import BuildContext
from plinth.model.ggml_tensor import GGMLTensor
from plinth.model.layers.layer import Layer


def divide(numerator: int, denominator: int, what: str) -> int:
    """Exact division with an error naming the quantity that does not split."""
    if numerator % denominator:
        raise ValueError(f"{what} ({numerator}) is not divisible by the tensor-parallel size ({denominator})")
    return numerator // denominator


def copy_checked(param: torch.Tensor, loaded: torch.Tensor, name: str = "parameter") -> None:
    """Copy ``loaded`` into ``param`` (casting dtype/device) after checking the shapes agree; GGML
    blocks are dequantized unless ``param`` keeps blocks of that type itself."""
    if tuple(param.shape) != tuple(loaded.shape):
        raise ValueError(f"{name}: checkpoint shape {tuple(loaded.shape)} does not match {tuple(param.shape)}")
    if isinstance(loaded, GGMLTensor) and not isinstance(param, GGMLTensor):
        loaded = loaded.dequantize()
    with torch.no_grad():
        param.copy_(loaded)


def default_weight_loader(param: torch.Tensor, loaded_weight: torch.Tensor, shard_id=None) -> None:
    """Loader of replicated parameters: the checkpoint tensor is copied whole."""
    copy_checked(param, loaded_weight)


def new_parameter(ctx: BuildContext, *shape: int, loader) -> nn.Parameter:
    """An uninitialised parameter on ``ctx.device`` that carries ``loader`` as ``weight_loader``."""
    param = nn.Parameter(ctx.empty(*shape), requires_grad=False)
    param.weight_loader = loader
    return param


class LinearBase(Layer):
    """``y = x W^T + b`` with ``W`` of shape ``[out_per_rank, in_per_rank]``, computed by the
    context's linear method for this layer (``ctx.linear_method(prefix)``; ``prefix`` is the layer's module
    name, HF-style: ``model.layers.0.mlp.down_proj``) on the form it prepared after loading.

    GGML block weights (GGUF files) of a type the method takes (``takes_ggml``: listed in its
    ``ggml_types``, for this model's dtype) are kept as blocks (``ggml_weight``) and prepared from
    those; any other checkpoint weight is loaded into the float ``weight``. A weight whose shards
    come in different GGML types, or that tensor parallelism would split inside a block, is dequantized.
    """

    def __init__(self, in_per_rank: int, out_per_rank: int, bias: bool, ctx: BuildContext, prefix: str = "") -> None:
        super().__init__()
        self.ctx = ctx
        self.prefix = prefix
        self.tp_rank, self.tp_size = ctx.tp_rank, ctx.tp_size
        self.weight = new_parameter(ctx, out_per_rank, in_per_rank, loader=self._load)
        self.bias = new_parameter(ctx, out_per_rank, loader=self._load) if bias else None
        self.linear_method = ctx.linear_method(prefix)
        self.ggml_weight: GGMLTensor | None = None  # the weight's blocks, when the method takes them
        self._ggml_refused = False  # a shard arrived that the blocks cannot hold: float from then on
        self.prepared = None  # what the method computes with; None until process_weights_after_loading

    def weight_loader(self, param: torch.Tensor, loaded_weight: torch.Tensor, shard_id=None) -> None:
        copy_checked(param, loaded_weight)

    def _load(self, param: torch.Tensor, loaded: torch.Tensor, shard_id=None) -> None:
        """The parameters' loader: GGML blocks into ``ggml_weight`` where they can stay blocks,
        everything else through the (sharding) ``weight_loader`` into the float parameter."""
        if isinstance(loaded, GGMLTensor) and param is self.weight:
            if self._keeps_blocks(loaded):
                if self.ggml_weight is None:
                    self.ggml_weight = GGMLTensor.zeros(loaded.type_name, *self.weight.shape)
                self.weight_loader(self.ggml_weight, loaded, shard_id)
                return
            self._refuse_blocks()
        if isinstance(loaded, GGMLTensor):  # whole, before the sharding loader slices it anywhere
            loaded = loaded.dequantize()
        self.weight_loader(param, loaded, shard_id)

    def _keeps_blocks(self, loaded: GGMLTensor) -> bool:
        if self._ggml_refused or not self.linear_method.takes_ggml(loaded.type_name, self.ctx.dtype):
            return False
        if self.ggml_weight is not None:
            return self.ggml_weight.type_name == loaded.type_name
        return self.weight.shape[1] % loaded.block_values == 0

    def _refuse_blocks(self) -> None:
        """Dequantize what was kept so far into the float weight; later shards load as floats."""
        self._ggml_refused = True
        if self.ggml_weight is not None:
            with torch.no_grad():
                self.weight.copy_(self.ggml_weight.dequantize())
            self.ggml_weight = None

    def process_weights_after_loading(self) -> None:
        """Let the linear method prepare (pack, quantize) the loaded weight; called once by the loader.

        When the prepared form is not the weight itself, the float weight's memory is released
        (the parameter stays, empty): a model must not hold its linears twice.
        """
        source = self.ggml_weight if self.ggml_weight is not None else self.weight.detach()
        self.prepared = self._prepare(source)
        self.ggml_weight = None  # the method holds what it needs
        shares = (isinstance(self.prepared, torch.Tensor) and self.prepared.layout == torch.strided
                  and self.prepared.data_ptr() == self.weight.data_ptr())
        if not shares:
            self.weight.data = self.weight.data.new_empty(0)

    def _prepare(self, source):
        return self.linear_method.prepare(source)

    def _linear(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        prepared = self.weight if self.prepared is None else self.prepared
        return self.linear_method.apply(x, prepared, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._linear(x, self.bias)


class ReplicatedLinear(LinearBase):
    """Every rank holds the whole weight."""

    def __init__(self, input_size: int, output_size: int, ctx: BuildContext, bias: bool = False,
                 prefix: str = "") -> None:
        super().__init__(input_size, output_size, bias, ctx, prefix)


class ColumnParallelLinear(LinearBase):
    """Output features split over ranks; rank ``r`` holds rows ``[r*n, (r+1)*n)`` of ``W``.

    ``gather_output`` all-gathers the shards so every rank sees the whole output.
    """

    def __init__(
        self, input_size: int, output_size: int, ctx: BuildContext, bias: bool = False, gather_output: bool = False,
        prefix: str = "",
    ) -> None:
        super().__init__(input_size, divide(output_size, ctx.tp_size, "output size"), bias, ctx, prefix)
        self.gather_output = gather_output

    def weight_loader(self, param, loaded_weight, shard_id=None):
        rows = param.shape[0]
        copy_checked(param, loaded_weight.narrow(0, self.tp_rank * rows, rows))

    def forward(self, x):
        y = self._linear(x, self.bias)
        return self.ctx.communicator.all_gather(y, dim=-1) if self.gather_output and self.tp_size > 1 else y


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel projections of one input stored as one weight (e.g. gate_up).

    ``shard_id`` is the index into ``output_sizes`` of the checkpoint tensor being loaded;
    each rank's weight is the concatenation of its shard of every projection.

    ``gated=True`` (two equal projections, gate then up): the layer is only ever called through
    :meth:`silu_and_mul`, and its linear method prepares the weight with ``prepare_gated``, so it may
    lay the rows out for a GEMM with the activation fused (``LinearMethod.apply_silu_and_mul``).
    """

    def __init__(
        self, input_size: int, output_sizes: Sequence[int], ctx: BuildContext, bias: bool = False, prefix: str = "",
        gated: bool = False,
    ) -> None:
        self.output_sizes = list(output_sizes)
        for size in self.output_sizes:
            divide(size, ctx.tp_size, "merged projection size")
        if gated and (len(self.output_sizes) != 2 or self.output_sizes[0] != self.output_sizes[1]):
            raise ValueError(f"a gated projection merges two equal projections (gate, up), got {self.output_sizes}")
        self.gated = gated
        super().__init__(input_size, sum(self.output_sizes), ctx, bias, prefix=prefix)

    def _prepare(self, source):
        return self.linear_method.prepare_gated(source) if self.gated else self.linear_method.prepare(source)

    def forward(self, x):
        if self.gated:
            raise RuntimeError(f"{self.prefix or 'a gated projection'}: its weight is laid out for "
                               "silu_and_mul(x, kernel); it has no plain forward")
        return super().forward(x)

    def silu_and_mul(self, x: torch.Tensor, kernel) -> torch.Tensor:
        """``silu(gate(x)) * up(x)`` (``[..., I]``, this rank's share) through the linear method;
        ``kernel`` is the platform's ``Op.SILU_AND_MUL`` for methods that do not fuse it."""
        prepared = self.weight if self.prepared is None else self.prepared
        return self.linear_method.apply_silu_and_mul(x, prepared, self.bias, kernel)

    def weight_loader(self, param, loaded_weight, shard_id=None):
        if shard_id is None:  # a checkpoint that already stores the merged weight
            raise ValueError("merged linear weights are loaded one projection at a time (shard_id 0, 1, ...)")
        size = self.output_sizes[shard_id] // self.tp_size
        offset = sum(self.output_sizes[:shard_id]) // self.tp_size
        shard = loaded_weight.narrow(0, self.tp_rank * size, size)
        copy_checked(param.narrow(0, offset, size), shard, f"projection {shard_id}")


class QKVParallelLinear(ColumnParallelLinear):
    """Query, key and value projections in one weight, split by heads over ranks.

    With fewer KV heads than ranks, each KV head is replicated on ``tp_size / num_kv_heads``
    consecutive ranks. ``shard_id`` is ``"q"``, ``"k"`` or ``"v"``.
    """

    def __init__(
        self, hidden_size: int, head_size: int, total_num_heads: int, total_num_kv_heads: int,
        ctx: BuildContext, bias: bool = False, prefix: str = "",
    ) -> None:
        tp = ctx.tp_size
        self.head_size = head_size
        self.num_heads = divide(total_num_heads, tp, "number of attention heads")
        if total_num_kv_heads >= tp:
            self.num_kv_heads = divide(total_num_kv_heads, tp, "number of KV heads")
            self.num_kv_head_replicas = 1
        else:
            self.num_kv_heads = 1
            self.num_kv_head_replicas = divide(tp, total_num_kv_heads, "tp size over KV heads")
        self.q_size = self.num_heads * head_size
        self.kv_size = self.num_kv_heads * head_size
        out = (self.num_heads + 2 * self.num_kv_heads) * head_size * tp
        super().__init__(hidden_size, out, ctx, bias, prefix=prefix)

    def weight_loader(self, param, loaded_weight, shard_id=None):
        if shard_id not in ("q", "k", "v"):
            raise ValueError(f"QKV weights are loaded one projection at a time (shard_id 'q', 'k' or 'v'), got {shard_id!r}")
        if shard_id == "q":
            offset, size, rank = 0, self.q_size, self.tp_rank
        else:
            offset = self.q_size + (self.kv_size if shard_id == "v" else 0)
            size, rank = self.kv_size, self.tp_rank // self.num_kv_head_replicas
        shard = loaded_weight.narrow(0, rank * size, size)
        copy_checked(param.narrow(0, offset, size), shard, f"{shard_id}_proj")

    def split(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[T, q+k+v]`` -> ``q, k, v`` views."""
        return qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)


class RowParallelLinear(LinearBase):
    """Input features split over ranks; partial outputs are summed with an all-reduce.

    The bias is added once, on rank 0, so the all-reduce counts it once.
    """

    def __init__(
        self, input_size: int, output_size: int, ctx: BuildContext, bias: bool = False, reduce_results: bool = True,
        prefix: str = "",
    ) -> None:
        super().__init__(divide(input_size, ctx.tp_size, "input size"), output_size, bias, ctx, prefix)
        self.reduce_results = reduce_results

    def weight_loader(self, param, loaded_weight, shard_id=None):
        if param.dim() == 1:  # the bias is not split
            copy_checked(param, loaded_weight)
            return
        cols = param.shape[1]
        copy_checked(param, loaded_weight.narrow(1, self.tp_rank * cols, cols))

    def forward(self, x):
        bias = self.bias if self.tp_rank == 0 else None
        y = self._linear(x, bias)
        return self.ctx.communicator.all_reduce(y) if self.reduce_results and self.tp_size > 1 else y

    def add_to(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor | None:
        """``residual + self(x)``, computed by the linear method into ``residual`` (in place) and returned; None
        where the method does not fuse the add (``LinearMethod.apply_add``) or an all-reduce must come first."""
        if self.reduce_results and self.tp_size > 1:
            return None
        prepared = self.weight if self.prepared is None else self.prepared
        return self.linear_method.apply_add(x, prepared, self.bias if self.tp_rank == 0 else None, residual)
