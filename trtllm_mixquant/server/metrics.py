"""Prometheus metrics, written in the text exposition format by hand (no client library).

Counted by the server: requests by endpoint and status (finish reason, `cancelled`, `error`, or the
HTTP status of a refused request), prompt tokens by the precision the phase rule prefills them in,
generated tokens, time to first token, inter-token latency, request latency. Read from the
engine at scrape time: requests in flight and by state, KV bytes transferred, prompt tokens the
context workers computed and those served by prefix caches, live workers by role, worker restarts,
and each worker's KV blocks (free, used, reserved for incoming KV).
"""

from __future__ import annotations

from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREFIX = "mixquant_"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{str(v)}"' for n, v in zip(names, values))
    return "{" + pairs + "}"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}"]


def sample(name: str, kind: str, help_text: str, values: dict[tuple[str, ...], float],
           label_names: tuple[str, ...] = ()) -> list[str]:
    """One counter or gauge family; `values` maps label values to the value."""
    lines = _header(name, kind, help_text)
    lines += [f"{PREFIX}{name}{_labels(label_names, key)} {value:g}" for key, value in sorted(values.items())]
    return lines


class Counter:
    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help_text, label_names
        self.values: dict[tuple[str, ...], float] = defaultdict(float)
        if not label_names:
            self.values[()] = 0.0

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] += amount

    def render(self) -> list[str]:
        return sample(self.name, "counter", self.help, self.values, self.label_names)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * len(buckets)
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def render(self) -> list[str]:
        name = PREFIX + self.name
        lines = _header(self.name, "histogram", self.help)
        lines += [f'{name}_bucket{{le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        lines += [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:g}", f"{name}_count {self.count}"]
        return lines


class ServerMetrics:
    def __init__(self):
        self.requests = Counter("requests_total", "Requests by endpoint and outcome.", ("endpoint", "status"))
        self.prompt_tokens = Counter("prompt_tokens_total", "Prompt tokens by the precision that prefills them.",
                                     ("precision",))
        self.generation_tokens = Counter("generation_tokens_total", "Generated tokens.")
        self.ttft = Histogram("time_to_first_token_seconds", "From submission to the first generated token.")
        self.itl = Histogram("inter_token_latency_seconds", "Between consecutive token updates of a request.")
        self.latency = Histogram("request_latency_seconds", "From submission to the last token.")

    def render(self, stats: dict | None) -> str:
        lines = []
        for metric in (self.requests, self.prompt_tokens, self.generation_tokens, self.ttft, self.itl, self.latency):
            lines += metric.render()
        if stats is not None:
            lines += sample("requests_in_flight", "gauge", "Requests admitted and not finished (queue depth).",
                            {(): stats["in_flight"]})
            lines += sample("kv_transfer_bytes_total", "counter", "KV-cache bytes moved from context to generation "
                            "workers.", {(): stats["kv_bytes_transferred"]})
            lines += sample("context_prefill_tokens_total", "counter", "Prompt tokens computed by context workers.",
                            {(): stats["quantized_prefill_tokens"]})
            lines += sample("prefix_cache_hit_tokens_total", "counter", "Prompt tokens served by prefix caches.",
                            {(): stats["cached_prompt_tokens"]})
            lines += sample("requests_by_state", "gauge", "Requests in flight by state.",
                            {(k,): v for k, v in stats["requests_by_state"].items()}, ("state",))
            alive: dict[tuple[str, ...], float] = defaultdict(float)
            blocks: dict[tuple[str, ...], float] = {}
            for name, worker in stats["workers"].items():
                alive[(worker["role"],)] += worker["alive"]
                if worker["usage"] is not None:
                    for kind in ("free", "used", "reserved"):
                        blocks[(name, kind)] = getattr(worker["usage"], kind)
            lines += sample("workers_alive", "gauge", "Live worker processes by role.", alive, ("role",))
            lines += sample("worker_restarts_total", "counter", "Dead workers replaced.", {(): stats["worker_restarts"]})
            lines += sample("kv_blocks", "gauge", "KV-cache blocks of each worker: free (cached prefixes among "
                            "them), used, reserved for KV on its way.", blocks, ("worker", "kind"))
        return "\n".join(lines) + "\n"
