"""The model runtime: decoder-only transformers (Qwen3, Qwen2/2.5, Llama 3) over a paged KV cache.
It owns the model (`model`), its layers (`layers`: the phase-aware linear, norms, RoPE), the
quantized kernels of the context engine (`quantized`), attention over the paged cache (`attention`,
`kernels`), the step batch (`batch`), the KV pool (`kv_cache`) and weight loading (`loader`).
It knows nothing of requests or scheduling (that is `engine`).
"""
