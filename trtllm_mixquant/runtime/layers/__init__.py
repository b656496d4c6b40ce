"""Model layers: the phase-aware `Linear` (quantized rows for prefill tokens, BF16 for the rest),
RMSNorm and rotary embeddings."""
