"""`trtllm-mixquant bench`: speed, measured against our BF16 and transformers in the same run:
prefill (`prefill`), a running server under load (`serve`), multi-turn KV reuse (`sessions`) and
disaggregation on two GPUs (`disagg`); `random_engines` writes engines of real shapes for them."""
