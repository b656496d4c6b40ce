"""Deployments of an engine pair (`trtllm-mixquant deploy`): NVIDIA Dynamo on Kubernetes (`dynamo`),
plain Kubernetes for the one-host server (`kubernetes`), and TensorRT-LLM's own servers
(`trtllm`). `spec` reads and checks the pair once; `pods` holds what every pod shares; `write`
renders every target before writing any file."""
