"""Our engines as NVIDIA Dynamo workers: the context engine as a prefill worker, the generation engine
as a decode worker, each a process of its own (a pod), found through Dynamo's discovery and driven
by Dynamo's frontend (OpenAI HTTP, chat templates, tool parsing, KV-aware routing).

- `config`: the worker's options (`trtllm-mixquant worker --runtime dynamo ...`), without importing Dynamo;
- `protocol`: Dynamo's request and response dicts <-> our requests, and what crosses from the
  prefill worker to the decode worker in `disaggregated_params`;
- `engine`: the `LLMEngine` Dynamo's `Worker` drives, over our disaggregated `Worker` in a thread;
- `metrics`: the worker's own Prometheus metrics, served on Dynamo's system port;
- `local`: a whole graph (frontend and workers) as processes on one host, for tests and benchmarks.

Dynamo moves no KV: the decode worker reads the blocks the prefill worker holds, over NIXL.
"""
