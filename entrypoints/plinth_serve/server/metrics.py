"""Prometheus metrics (prefix ``plinth:``), with vLLM's suffixes so dashboards port by renaming."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from plinth_serve.server import ipc

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
P = "plinth:"


class ServerMetrics:
    """One registry per server; the engine client feeds it deltas and scheduler stats."""

    def __init__(self, model_name: str) -> None:
        self.registry = r = CollectorRegistry()
        labels = {"labelnames": ["model_name"], "registry": r}
        self.running = Gauge(P + "num_requests_running", "Requests holding KV blocks.", **labels)
        self.waiting = Gauge(P + "num_requests_waiting", "Requests queued or preempted.", **labels)
        self.kv_usage = Gauge(P + "kv_cache_usage_perc", "Fraction of KV blocks in use (0..1).", **labels)
        self.prompt_tokens = Counter(P + "prompt_tokens", "Prompt tokens processed.", **labels)
        self.generation_tokens = Counter(P + "generation_tokens", "Tokens generated.", **labels)
        self.success = Counter(P + "request_success", "Finished completions by reason.",
                               labelnames=["model_name", "finished_reason"], registry=r)
        self.preemptions = Counter(P + "num_preemptions", "Preemptions by recompute.", **labels)
        self.prefix_queries = Counter(P + "prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
                                      **labels)
        self.prefix_hits = Counter(P + "prefix_cache_hits", "Prompt tokens found in the prefix cache.", **labels)
        hist = {"buckets": _LATENCY_BUCKETS, **labels}
        self.ttft = Histogram(P + "time_to_first_token_seconds", "Arrival to first token.", **hist)
        self.itl = Histogram(P + "inter_token_latency_seconds", "Gap between output chunks.", **hist)
        self.e2e = Histogram(P + "e2e_request_latency_seconds", "Arrival to finish.", **hist)
        self.queue = Histogram(P + "request_queue_time_seconds", "Arrival to first scheduling.", **hist)
        self.model = model_name
        self._last = ipc.Stats(0, 0, 0.0, 0, 0, 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def on_stats(self, s: ipc.Stats) -> None:
        m, last = self.model, self._last
        self.running.labels(m).set(s.num_running)
        self.waiting.labels(m).set(s.num_waiting)
        self.kv_usage.labels(m).set(s.kv_cache_usage)
        for counter, new, old in ((self.preemptions, s.num_preemptions, last.num_preemptions),
                                  (self.prefix_queries, s.prefix_cache_queries, last.prefix_cache_queries),
                                  (self.prefix_hits, s.prefix_cache_hits, last.prefix_cache_hits)):
            if new > old:
                counter.labels(m).inc(new - old)
        self._last = s

    def tracker(self, num_prompt_tokens: int) -> RequestTracker:
        return RequestTracker(self, num_prompt_tokens)


class RequestTracker:
    """Times one engine request: TTFT, inter-token gaps, queue time, end to end."""

    def __init__(self, metrics: ServerMetrics, num_prompt_tokens: int) -> None:
        self.metrics, self.num_prompt_tokens = metrics, num_prompt_tokens
        self.arrival = self.last = time.monotonic()
        self.first = True

    def on_delta(self, delta: ipc.RequestDelta) -> None:
        m, model = self.metrics, self.metrics.model
        now = time.monotonic()
        if delta.queue_time is not None:
            m.queue.labels(model).observe(delta.queue_time)
        new_tokens = sum(len(c.token_ids) for c in delta.completions)
        if new_tokens:
            m.generation_tokens.labels(model).inc(new_tokens)
            (m.ttft if self.first else m.itl).labels(model).observe(now - (self.arrival if self.first else self.last))
            self.first, self.last = False, now
        for c in delta.completions:
            if c.finish_reason is not None:
                m.success.labels(model, c.finish_reason).inc()
        if delta.finished:
            m.e2e.labels(model).observe(now - self.arrival)
            m.prompt_tokens.labels(model).inc(self.num_prompt_tokens)
