"""Write a context/generation engine pair with random weights of a real shape, for speed work.

No calibration is possible on random weights, so instead of ModelOpt this writes the FP8 context
checkpoint directly in ModelOpt's layout (per-tensor `weight_scale`, `input_scale`) with our
bit-exact formats; the weights are generated on the GPU, one tensor at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from trtllm_mixquant.builder.pipeline import tool_versions
from trtllm_mixquant.formats import fp8_scale_from_amax, quantize_fp8_per_tensor
from trtllm_mixquant.manifest import EngineManifest, KVCacheLayout
from trtllm_mixquant.random_model import FAMILIES, SHAPES, byte_tokenizer

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, i, d = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d
    out = {"model.embed_tokens.weight": (cfg["vocab_size"], h), "model.norm.weight": (h,),
           "lm_head.weight": (cfg["vocab_size"], h)}
    per_layer = {"self_attn.q_proj.weight": (q, h), "self_attn.k_proj.weight": (kv, h),
                 "self_attn.v_proj.weight": (kv, h), "self_attn.o_proj.weight": (h, q),
                 "mlp.gate_proj.weight": (i, h), "mlp.up_proj.weight": (i, h), "mlp.down_proj.weight": (h, i),
                 "input_layernorm.weight": (h,), "post_attention_layernorm.weight": (h,),
                 "self_attn.q_norm.weight": (d,), "self_attn.k_norm.weight": (d,)}
    for n in range(cfg["num_hidden_layers"]):
        out.update({f"model.layers.{n}.{k}": v for k, v in per_layer.items()})
    return out


def write_random_engines(out: str | Path, shape: str = "qwen3-8b", max_seq_len: int = 40960,
                         device: str = "cuda") -> Path:
    out = Path(out)
    config_cls = FAMILIES["qwen3"][0]
    import transformers

    config = getattr(transformers, config_cls)(**{**FAMILIES["qwen3"][2], **SHAPES[shape], "vocab_size": 151936,
                                                  "tie_word_embeddings": False})
    config.architectures = ["Qwen3ForCausalLM"]
    cfg = config.to_dict()
    gen_tensors, ctx_tensors = {}, {}
    gen_state = torch.Generator(device=device).manual_seed(0)
    for name, shp in shapes(cfg).items():
        if name.endswith("norm.weight"):
            t = torch.ones(shp, dtype=torch.bfloat16, device=device)
        else:
            t = (torch.randn(shp, generator=gen_state, device=device) * 0.02).to(torch.bfloat16)
        gen_tensors[name] = t.cpu()
        if any(f".{p}." in name for p in PROJECTIONS):
            prefix = name.removesuffix(".weight")
            scale = fp8_scale_from_amax(t.abs().amax())
            ctx_tensors[name] = quantize_fp8_per_tensor(t, scale).cpu()
            ctx_tensors[f"{prefix}.weight_scale"] = scale.cpu()
            ctx_tensors[f"{prefix}.input_scale"] = fp8_scale_from_amax(torch.tensor(8.0)).reshape(())
        else:
            ctx_tensors[name] = gen_tensors[name]
    layout = KVCacheLayout(cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"])
    for phase, tensors in (("generation", gen_tensors), ("context", ctx_tensors)):
        folder = out / phase
        folder.mkdir(parents=True, exist_ok=True)
        save_file(tensors, folder / "model.safetensors")
        phase_cfg = dict(cfg)
        if phase == "context":
            quant = {"producer": {"name": "trtllm_mixquant random_engines"},
                     "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None,
                                      "exclude_modules": ["lm_head", "model.embed_tokens"]}}
            (folder / "hf_quant_config.json").write_text(json.dumps(quant, indent=2))
            phase_cfg["quantization_config"] = {"quant_method": "modelopt", "quant_algo": "FP8"}
        (folder / "config.json").write_text(json.dumps(phase_cfg, indent=2))
        byte_tokenizer().save_pretrained(folder)
        EngineManifest(phase=phase, precision="fp8" if phase == "context" else "bf16",
                       architecture="Qwen3ForCausalLM", model_type="qwen3",
                       checkpoint_format="modelopt_hf" if phase == "context" else "hf", kv_cache=layout,
                       max_seq_len=max_seq_len, source_fingerprint=f"random:{shape}:seed0",
                       source_path=f"random {shape}", tools=tool_versions()).write(folder)
    return out
