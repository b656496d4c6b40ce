"""trtllm_mixquant: quantized prefilling (NVFP4/FP8 context engine), precise decoding (BF16 generation engine)."""

__version__ = "0.1.0"
