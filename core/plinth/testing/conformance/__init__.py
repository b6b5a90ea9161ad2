"""The platform conformance kit: the contract's tests, run against any platform.

Run it with ``pytest --pyargs plinth.testing.conformance --plinth-platform=NAME``.

- ``test_device``: device ops are sane (count, memory, seeding, synchronize).
- ``test_configure``: the config patch applies and yields a block size a backend supports.
- ``test_attention``: every attention backend against ``plinth.ops.reference.attention`` on
  fresh random paged batches (prefill, decode, mixed with chunked prefill; GQA 1/4/8; head
  sizes 64/128/256; block sizes 16/32/256 where supported) in float32 and bfloat16.
- ``test_kv_write``: ``write_kv`` round trips, overwrites, and skips padding slots.
- ``test_kernels``: every registered kernel against its reference op.
- ``test_graph_runner``: capture, refill, replay equals eager; ``pad`` never shrinks a batch.
- ``test_linear_methods``: the ``"unquantized"`` linear method equals ``F.linear``, and every method's
  gated path (``prepare_gated`` + ``apply_silu_and_mul``) its own unfused one, from 1 to 2,100 rows.

Tolerances (``tolerances.py``): float32 atol = rtol = 1e-4; bfloat16 atol = rtol = 2e-2.

TODO(engine): end-to-end greedy generation on a tiny model, once the engine exists.
"""
