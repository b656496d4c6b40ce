"""Disaggregated serving on one host: the orchestrator (routing, supervision; an `AsyncEngine`),
worker processes (context: quantized prefill, sends KV; generation: receives KV, decodes in BF16;
colocated: both), the messages between them, the channel that carries them and the launcher that
starts workers. KV moves worker to worker through `trtllm_mixquant.transfer`.
"""
