"""Triton loads this file; the model lives in the trtllm_mixquant package."""

from trtllm_mixquant.triton.model import TritonPythonModel  # noqa: F401
