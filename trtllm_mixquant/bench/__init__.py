"""`trtllm-mixquant bench`: speed, measured against our BF16 and transformers in the same run:
prefill (`prefill`), decode (`decode`), a running server under load (`serve`), multi-turn KV reuse
(`sessions`), disaggregation on two GPUs (`disagg`), NIXL KV transfers in one process (`transfer`),
Triton (`triton`) and Dynamo (`dynamo`); `random_engines` writes engines of real shapes for them."""
