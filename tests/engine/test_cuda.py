"""GPU-only checks of the engine: CUDA-graph decode and the Triton decode kernel inside the model."""

from __future__ import annotations

import pytest
import torch

from trtllm_mixquant.engine.llm import LLM
from trtllm_mixquant.engine.sampling import SamplingParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PROMPTS = ["hello world, this is a prompt", "the quick brown fox jumps over the lazy dog " * 3, "a", "xyz" * 30]
GREEDY = SamplingParams(max_tokens=12, ignore_eos=True)


@pytest.mark.parametrize("mode", ["bf16", "mixquant", "quantized"])
@pytest.mark.parametrize("precision", ["nvfp4", "fp8"])
def test_cuda_graph_decode_equals_eager(tiny_engines, mode, precision):
    engines = tiny_engines("qwen3", precision)
    eager = LLM(engines, mode=mode, device="cuda", cuda_graphs=False).generate(PROMPTS, GREEDY)
    llm = LLM(engines, mode=mode, device="cuda", cuda_graphs=True)
    graphed = llm.generate(PROMPTS, GREEDY)
    assert llm.engine.runner.decode_graphs.graphs, "no decode graph was captured"
    assert llm.engine.runner.piecewise_graphs.graphs, "no prefill graph was captured"
    assert [o.token_ids for o in graphed] == [o.token_ids for o in eager]


@pytest.mark.parametrize("mode", ["bf16", "mixquant"])
def test_piecewise_graphs_over_cached_prefixes_and_chunks_equal_eager(tiny_engines, mode):
    """Turns over a cached prefix (varlen attention between the pieces) and a prompt prefilled in
    chunks of 48 tokens, in steps padded to 16, 32 or 64 rows; mixquant's steps are mixed (each prompt's
    last token precise), so their graphs keep the quantized / precise split."""
    engines = tiny_engines("qwen3", "fp8")
    turns = [[p + " and then some more words" for p in PROMPTS], ["z" * 150]]

    def run(cuda_graphs):
        llm = LLM(engines, mode=mode, device="cuda", cuda_graphs=cuda_graphs, max_step_tokens=48)
        out = [[o.token_ids for o in llm.generate(prompts, GREEDY)] for prompts in [PROMPTS, *turns]]
        return out, llm.engine.runner.piecewise_graphs

    eager, _ = run(False)
    graphed, graphs = run(True)
    assert graphed == eager
    assert graphs.graphs, "no prefill graph was captured"
    if mode == "mixquant":
        assert any(0 < quantized < size for size, quantized in graphs.graphs), graphs.graphs.keys()


def test_gpu_fp32_matches_cpu(tiny_engines):
    engines = tiny_engines("llama", "nvfp4")
    gpu = LLM(engines, mode="mixquant", device="cuda", dtype=torch.float32).generate(PROMPTS, GREEDY)
    cpu = LLM(engines, mode="mixquant", device="cpu", dtype=torch.float32).generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in gpu] == [o.token_ids for o in cpu]


@pytest.mark.parametrize("precision", ["nvfp4", "fp8"])
def test_compiled_layers_equal_eager(tiny_engines, precision):
    """fp32, so that fusion cannot change rounding beyond reduction order; prefill, decode and the
    mixed step all go through the compiled regions."""
    engines = tiny_engines("qwen3", precision)
    runs = [LLM(engines, mode="mixquant", device="cuda", dtype=torch.float32, cuda_graphs=False,
                compile_regions=c).generate(PROMPTS, GREEDY) for c in (False, True)]
    assert [o.token_ids for o in runs[0]] == [o.token_ids for o in runs[1]]


def test_prefill_attention_backend_matches_math():
    """The preferred backends (cuDNN first) against SDPA's math kernel in fp32 on the same bf16 inputs.
    The fused kernel accumulates in fp32 and rounds its output to bf16 (half an ulp), so 4 bf16 ulps
    of the output scale is ample; a wrong mask, scale or head mapping gives errors of order 1."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from trtllm_mixquant.runtime.attention import paged_attention
    from trtllm_mixquant.runtime.batch import StepBatch

    t, h, hkv, d, bs = 2048, 8, 2, 128, 32
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(t, n, d, device="cuda", generator=g, dtype=torch.bfloat16) for n in (h, hkv, hkv))
    pos = torch.arange(t, device="cuda")
    batch = StepBatch(pos, pos, pos, 0, torch.tensor([0, t], device="cuda"), torch.tensor([t], device="cuda"),
                      torch.arange(t // bs, device="cuda")[None], t, t, pos[-1:])
    out = paged_attention(q, k, v, None, None, batch, bs, d ** -0.5)
    with sdpa_kernel(SDPBackend.MATH):
        ref = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(0, 1)[None].float(), k.transpose(0, 1)[None].float().repeat_interleave(h // hkv, 1),
            v.transpose(0, 1)[None].float().repeat_interleave(h // hkv, 1), is_causal=True, scale=d ** -0.5)
    ref = ref[0].transpose(0, 1)
    assert (out.float() - ref).abs().max() < 4 * 2 ** -8 * ref.abs().max()


def test_fp8_attention_refuses_heads_its_kernel_cannot_take(tiny_engines):
    """The tiny test model's head_dim is 16; the kernel takes 64 or 128: a clear error at start, not a
    slow fallback or a failure in the middle of a request."""
    with pytest.raises(ValueError, match="head_dim 64 or 128.*--fp8-attention off"):
        LLM(tiny_engines("qwen3", "fp8"), device="cuda", fp8_attention="auto")
