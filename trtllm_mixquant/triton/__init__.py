"""Serving through Triton Inference Server: a Python-backend model over the `AsyncEngine`
(`model`), its tensors with TensorRT-LLM's BLS names (`tensors`), the model repository an engine
pair gets (`repository`), and getting and starting a real `tritonserver` (`server`: the binary of
the `nvidia-pytriton` wheel, or NVIDIA's Triton container)."""
