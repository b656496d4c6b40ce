"""An independent reference for the runtime: Hugging Face transformers' own forward, with each
Linear's weights and inputs replaced by the quantized checkpoint's (dequantized weights,
activations fake-quantized per 16 with the calibrated input scale) for the rows that the Mix-Quant
phase rule sends through the context engine."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from trtllm_mixquant.formats import dequantize_fp8, dequantize_nvfp4, fake_quantize_nvfp4, quantize_fp8_per_tensor

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def hf_model(folder, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()


def quantized_forward_fn(tensors: dict, name: str, dtype: torch.dtype):
    """x -> quantized Linear output (no bias) for projection `name` of a ModelOpt checkpoint."""
    w = tensors[f"{name}.weight"]
    s_in = tensors[f"{name}.input_scale"]
    if w.dtype == torch.uint8:
        weight = dequantize_nvfp4(w, tensors[f"{name}.weight_scale"], tensors[f"{name}.weight_scale_2"], dtype)
        return lambda x: fake_quantize_nvfp4(x, s_in) @ weight.T
    weight = dequantize_fp8(w, tensors[f"{name}.weight_scale"], dtype)
    return lambda x: dequantize_fp8(quantize_fp8_per_tensor(x, s_in), s_in, x.dtype) @ weight.T


@contextmanager
def phase_rule(model, context_dir, quantized_rows: int):
    """Within the block, rows [0, quantized_rows) of every projection use the quantized checkpoint."""
    tensors = load_file(context_dir / "model.safetensors")
    handles = []
    for name, module in model.named_modules():
        if name.split(".")[-1] in PROJECTIONS:
            quant = quantized_forward_fn(tensors, name, model.dtype)

            def hook(mod, args, out, quant=quant):
                x = args[0]
                q = quant(x[:, :quantized_rows])
                if mod.bias is not None:
                    q = q + mod.bias
                return torch.cat([q, out[:, quantized_rows:]], dim=1)

            handles.append(module.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def reference_logprobs(model, context_dir, prompt: list[int], continuation: list[int], quantized_rows: int):
    ids = torch.tensor([prompt + continuation])
    with torch.no_grad(), phase_rule(model, context_dir, quantized_rows):
        logits = model(ids).logits[0].float()
    lp = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
    return lp.gather(1, torch.tensor(continuation)[:, None]).squeeze(1)


def reference_greedy(model, context_dir, prompt: list[int], max_tokens: int, quantized_rows: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad(), phase_rule(model, context_dir, quantized_rows):
        for _ in range(max_tokens):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]
