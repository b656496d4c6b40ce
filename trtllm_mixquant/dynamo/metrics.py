"""A Dynamo worker's own Prometheus metrics (prefix `mixquant_`), served with Dynamo's on the
worker's system port (`DYN_SYSTEM_PORT`) `/metrics`, labelled by Dynamo with the worker's
namespace, component, endpoint and id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from trtllm_mixquant.engine.base import BlockUsage


class WorkerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mixquant_requests", "Requests by outcome.", ["outcome"], registry=r)
        self.prompt_tokens = Counter("mixquant_prompt_tokens", "Prompt tokens of the requests this worker took.",
                                     registry=r)
        self.computed_prompt_tokens = Counter("mixquant_computed_prompt_tokens",
                                              "Prompt tokens this worker computed (not cached, not received).",
                                              registry=r)
        self.cached_prompt_tokens = Counter("mixquant_cached_prompt_tokens",
                                            "Prompt tokens served by this worker's prefix cache.", registry=r)
        self.generated_tokens = Counter("mixquant_generated_tokens", "Tokens generated.", registry=r)
        self.kv_bytes_read = Counter("mixquant_kv_bytes_read", "KV bytes read from context workers.", registry=r)
        self.kv_blocks = Gauge("mixquant_kv_blocks", "KV blocks by state: free (cached prefixes among them), used, "
                               "reserved (waiting for KV to arrive).", ["state"], registry=r)

    def set_usage(self, usage: BlockUsage) -> None:
        for state in ("free", "used", "reserved"):
            self.kv_blocks.labels(state).set(getattr(usage, state))
