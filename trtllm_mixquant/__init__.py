"""trtllm_mixquant: quantized prefilling (NVFP4/FP8 context engine), precise decoding (BF16 generation engine).

    from trtllm_mixquant import LLM, SamplingParams
    llm = LLM("engines/NAME", mode="mixquant")  # or "bf16", "quantized"
    print(llm.generate("Hello", SamplingParams(max_tokens=32))[0].text)
"""

__version__ = "0.1.0"
__all__ = ["LLM", "SamplingParams"]


def __getattr__(name: str):
    # Imported lazily so that `build.py --help` and the CLI start without loading the runtime.
    if name == "LLM":
        from trtllm_mixquant.engine.llm import LLM

        return LLM
    if name == "SamplingParams":
        from trtllm_mixquant.engine.sampling import SamplingParams

        return SamplingParams
    raise AttributeError(f"module 'trtllm_mixquant' has no attribute {name!r}")
