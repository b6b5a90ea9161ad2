"""A model-free executor for engine tests: deterministic tokens, and a strict check of the seam.

It keeps its own per-request state from ``NewRequestData`` / ``CachedRequestData``
diffs, simulates the paged KV cache (each slot holds the ``(token_id, position)``
written there), and asserts that every step's plan is consistent: block tables
exactly cover the tokens, computed positions are really in the cache (so a wrong
prefix-cache hit fails), and no request overwrites a slot another live request
relies on. A sampled token depends only on the request's tokens so far, so a
preempted and recomputed request produces exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plinth.sched.outputs import RunnerOutput, SchedulerOutput


def default_token_fn(token_ids: Sequence[int], vocab_size: int = 997) -> int:
    """A token from the last four token ids and the position."""
    x = len(token_ids)
    for t in token_ids[-4:]:
        x = (x * 1_000_003 + t + 1) % (1 << 61)
    return x % vocab_size


class _RequestState:
    __slots__ = ("token_ids", "block_ids", "num_computed_tokens")

    def __init__(self, token_ids: list[int], block_ids: list[int], num_computed_tokens: int) -> None:
        self.token_ids = token_ids  # prompt + outputs, as the runner knows them
        self.block_ids = block_ids  # the block table rebuilt from the diffs
        self.num_computed_tokens = num_computed_tokens


class FakeRunner:
    """Implements ``plinth.engine.Executor`` without a model."""

    def __init__(self, num_kv_blocks: int, block_size: int, *, vocab_size: int = 997,
                 token_fn: Callable[[list[int]], int] | None = None, check_kv: bool = True) -> None:
        self.num_kv_blocks = num_kv_blocks
        self.block_size = block_size
        self.token_fn = token_fn or (lambda ids: default_token_fn(ids, vocab_size))
        self.check_kv = check_kv
        self.requests: dict[str, _RequestState] = {}
        self.kv: list[list[tuple[int, int] | None]] = [[None] * block_size for _ in range(num_kv_blocks)]
        self.num_steps = 0
        self.last_scheduler_output: SchedulerOutput | None = None  # for tests that inspect the plan

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        self.num_steps += 1
        self.last_scheduler_output = scheduler_output
        self._apply_seam(scheduler_output)
        scheduled = scheduler_output.num_scheduled_tokens
        if self.check_kv:
            for rid, n in scheduled.items():
                self._write_kv(rid, n)
            for rid, n in scheduled.items():
                self._check_kv(rid, self.requests[rid].num_computed_tokens + n)
        req_ids, sampled = [], []
        for rid, n in scheduled.items():
            state = self.requests[rid]
            state.num_computed_tokens += n
            req_ids.append(rid)
            if state.num_computed_tokens == len(state.token_ids):
                token = self.token_fn(state.token_ids)
                state.token_ids.append(token)
                sampled.append([token])
            else:
                sampled.append([])
        return RunnerOutput(req_ids, sampled)

    def _apply_seam(self, out: SchedulerOutput) -> None:
        bs = self.block_size
        for rid in out.finished_req_ids | out.preempted_req_ids:
            assert rid in self.requests, f"told to drop {rid!r}, which the runner does not hold"
            del self.requests[rid]
        for new in out.scheduled_new_reqs:
            assert new.req_id not in self.requests, f"{new.req_id!r} sent as new twice"
            assert new.num_computed_tokens % bs == 0, "a prefix-cache hit must be whole blocks"
            self.requests[new.req_id] = _RequestState(
                list(new.prompt_token_ids) + list(new.output_token_ids), list(new.block_ids),
                new.num_computed_tokens)
        for cached in out.scheduled_cached_reqs:
            state = self.requests[cached.req_id]
            assert cached.num_computed_tokens == state.num_computed_tokens, (
                f"{cached.req_id!r}: scheduler says {cached.num_computed_tokens} computed, "
                f"runner has {state.num_computed_tokens}")
            state.block_ids.extend(cached.new_block_ids)
        listed = {r.req_id for r in out.scheduled_new_reqs} | {r.req_id for r in out.scheduled_cached_reqs}
        assert listed == set(out.num_scheduled_tokens), "scheduled ids and request data disagree"
        assert out.total_num_scheduled_tokens == sum(out.num_scheduled_tokens.values())
        for rid, n in out.num_scheduled_tokens.items():
            state = self.requests[rid]
            end = state.num_computed_tokens + n
            assert n >= 1 and end <= len(state.token_ids), f"{rid!r}: {n} tokens scheduled past its end"
            assert len(state.block_ids) == -(-end // bs), (
                f"{rid!r}: {len(state.block_ids)} blocks for {end} tokens of block size {bs}")
            assert len(set(state.block_ids)) == len(state.block_ids), f"{rid!r} holds a block twice"

    def _write_kv(self, rid: str, n: int) -> None:
        bs = self.block_size
        state = self.requests[rid]
        for pos in range(state.num_computed_tokens, state.num_computed_tokens + n):
            block_id = state.block_ids[pos // bs]
            value = (state.token_ids[pos], pos)
            self._check_other_holders(rid, block_id, pos % bs, value)
            self.kv[block_id][pos % bs] = value

    def _check_other_holders(self, rid: str, block_id: int, slot: int, value: tuple[int, int]) -> None:
        """A slot may change only if no other live request holds that slot's token already."""
        for other_id, other in self.requests.items():
            if other_id == rid or block_id not in other.block_ids:
                continue
            pos = other.block_ids.index(block_id) * self.block_size + slot
            if pos < len(other.token_ids):
                assert value == (other.token_ids[pos], pos), (
                    f"{rid!r} overwrites block {block_id} slot {slot} that {other_id!r} relies on")

    def _check_kv(self, rid: str, end: int) -> None:
        bs = self.block_size
        state = self.requests[rid]
        for pos in range(end):
            found = self.kv[state.block_ids[pos // bs]][pos % bs]
            assert found == (state.token_ids[pos], pos), (
                f"{rid!r} position {pos}: KV holds {found}, expected {(state.token_ids[pos], pos)}")
