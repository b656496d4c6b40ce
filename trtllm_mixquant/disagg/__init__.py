"""Disaggregated serving: context workers prefill with the quantized engine, their KV cache moves
(NIXL) to generation workers that decode in BF16; an asyncio orchestrator routes requests."""
