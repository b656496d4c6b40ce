"""build.py end to end on tiny random models, on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from trtllm_mixquant.builder.cli import main as build_main
from trtllm_mixquant.builder.pipeline import BuildOptions, build_engines
from trtllm_mixquant.manifest import EngineManifest, EnginePairError, check_engine_pair

FAMILIES = ["qwen3", "qwen2", "llama"]


@pytest.fixture
def built(tiny_engines):
    return tiny_engines


@pytest.mark.parametrize("family", FAMILIES)
def test_both_engines_are_written_with_manifests(built, tiny_model_dir, family):
    out = built(family)
    ctx, gen = EngineManifest.read(out / "context"), EngineManifest.read(out / "generation")
    check_engine_pair(ctx, gen)
    assert (ctx.precision, ctx.checkpoint_format, gen.precision, gen.checkpoint_format) == (
        "nvfp4", "modelopt_hf", "bf16", "hf")
    config = json.loads((tiny_model_dir(family) / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    assert (gen.kv_cache.num_layers, gen.kv_cache.num_kv_heads, gen.kv_cache.head_dim, gen.kv_cache.dtype) == (
        config["num_hidden_layers"], config["num_key_value_heads"], head_dim, "bfloat16")
    assert ctx.source_fingerprint == gen.source_fingerprint and ctx.source_fingerprint.startswith("sha256:")
    assert ctx.quantization["calibration"] == {"source": "builtin", "samples": 4, "seq_len": 64}
    for engine in ("context", "generation"):
        assert (out / engine / "tokenizer.json").is_file()
    assert not list(out.glob(".*.building"))


@pytest.mark.parametrize("family", FAMILIES)
def test_context_checkpoint_is_modelopt_nvfp4_with_bf16_kv_cache(built, family):
    ctx = built(family) / "context"
    quant = json.loads((ctx / "hf_quant_config.json").read_text())
    assert quant["producer"]["name"] == "modelopt"
    assert quant["quantization"]["quant_algo"] == "NVFP4" and quant["quantization"]["group_size"] == 16
    assert quant["quantization"]["kv_cache_quant_algo"] is None
    assert json.loads((ctx / "config.json").read_text())["quantization_config"]["quant_method"] == "modelopt"
    tensors = load_file(ctx / "model.safetensors")
    gen = load_file(built(family) / "generation" / "model.safetensors")
    name = "model.layers.0.mlp.down_proj"
    n, k = gen[f"{name}.weight"].shape
    assert tensors[f"{name}.weight"].dtype == torch.uint8 and tensors[f"{name}.weight"].shape == (n, k // 2)
    assert tensors[f"{name}.weight_scale"].dtype == torch.float8_e4m3fn
    assert tensors[f"{name}.weight_scale"].shape == (n, k // 16)
    assert tensors[f"{name}.input_scale"].dtype == torch.float32 and tensors[f"{name}.input_scale"] > 0
    assert tensors["model.embed_tokens.weight"].dtype == torch.bfloat16  # excluded from quantization


def test_fp8_context_engine(built):
    ctx = built("qwen3", "fp8") / "context"
    assert EngineManifest.read(ctx).precision == "fp8"
    assert json.loads((ctx / "hf_quant_config.json").read_text())["quantization"]["quant_algo"] == "FP8"
    tensors = load_file(ctx / "model.safetensors")
    assert tensors["model.layers.0.self_attn.q_proj.weight"].dtype == torch.float8_e4m3fn


def test_context_folder_loads_in_transformers_config_and_tokenizer(built):
    """transformers reads the ModelOpt folder's config and tokenizer. Its model loader has no
    `modelopt` quantizer (TensorRT-LLM and vLLM consume these checkpoints), so the packed weights
    are read by our own runtime, not by `from_pretrained`."""
    from transformers import AutoConfig, AutoTokenizer

    ctx = built("qwen3") / "context"
    config = AutoConfig.from_pretrained(ctx)
    assert config.quantization_config["quant_method"] == "modelopt"
    assert AutoTokenizer.from_pretrained(ctx).decode(AutoTokenizer.from_pretrained(ctx)("hi there")["input_ids"]) == "hi there"


def test_generation_engine_matches_source_logits(built, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(0))
    src = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.bfloat16)
    gen = AutoModelForCausalLM.from_pretrained(built("llama") / "generation")
    assert gen.dtype == torch.bfloat16
    torch.testing.assert_close(gen(ids).logits, src(ids).logits, atol=0, rtol=0)


def test_pair_from_different_weights_is_refused(tiny_model_dir, tmp_path, built):
    other = tmp_path / "other"
    build_engines(BuildOptions(model=tiny_model_dir("qwen3", seed=1), output=other, phase="generation"))
    with pytest.raises(EnginePairError, match="different weights"):
        check_engine_pair(EngineManifest.read(built("qwen3") / "context"), EngineManifest.read(other / "generation"))


def test_pair_with_different_kv_layout_is_refused(built, tmp_path):
    ctx = EngineManifest.read(built("qwen3") / "context")
    gen_dir = tmp_path / "gen"
    gen_dir.mkdir()
    data = json.loads((built("qwen3") / "generation" / "engine.json").read_text())
    data["kv_cache"]["block_size"] = 64
    (gen_dir / "engine.json").write_text(json.dumps(data))
    with pytest.raises(EnginePairError, match=r"KV-cache layouts differ \(block_size: 32 vs 64\)"):
        check_engine_pair(ctx, EngineManifest.read(gen_dir))


def test_failed_build_leaves_no_half_engine(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "calib.csv"
    bad.write_text("a,b\n")
    rc = build_main(["--model", str(tiny_model_dir("qwen3")), "--output", str(tmp_path / "e"), "--phase", "context",
                     "--calib-file", str(bad), "-q"])
    assert rc == 2 and "must end in .txt, .jsonl or .json" in capsys.readouterr().err
    assert list((tmp_path / "e").iterdir()) == []


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("no_config", "has no config.json"),
    ("unsupported", "supported architectures are"),
    ("quantized", "already quantized"),
    ("unwritable", "cannot write engines to"),
    ("too_long", "--max-seq-len 999999 is outside"),
])
def test_bad_inputs_give_clear_errors(case, message, tiny_model_dir, built, tmp_path, capsys):
    model, output, extra = tiny_model_dir("qwen3"), tmp_path / "out", []
    if case == "missing":
        model = tmp_path / "nope"
    elif case == "no_config":
        model = tmp_path
    elif case == "unsupported":
        model = tmp_path / "gpt2"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    elif case == "quantized":
        model = built("qwen3") / "context"
    elif case == "unwritable":
        (tmp_path / "file").write_text("x")
        output = tmp_path / "file" / "engines"
    elif case == "too_long":
        extra = ["--max-seq-len", "999999"]
    rc = build_main(["--model", str(model), "--output", str(output), "-q", *extra])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_help_explains_the_two_engines(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--phase", "--context-precision", "--calib-file", "generation engine", "BF16"):
        assert needle in text


@pytest.mark.parametrize("family", FAMILIES)
def test_context_weights_are_the_generation_weights_quantized(built, family):
    """Each dequantized NVFP4 weight is within half an E2M1 step of the BF16 weight it came from:
    the step is at most 2 (between 4 and 6) in units of the block's scale factor."""
    from trtllm_mixquant.formats import dequantize_nvfp4

    ctx = load_file(built(family) / "context" / "model.safetensors")
    gen = load_file(built(family) / "generation" / "model.safetensors")
    for name in [k.removesuffix(".weight_scale_2") for k in ctx if k.endswith(".weight_scale_2")]:
        w = gen[f"{name}.weight"].float()
        deq = dequantize_nvfp4(ctx[f"{name}.weight"], ctx[f"{name}.weight_scale"], ctx[f"{name}.weight_scale_2"],
                               torch.float32)
        factor = ctx[f"{name}.weight_scale"].float() * ctx[f"{name}.weight_scale_2"]  # [N, K/16]
        bound = factor.repeat_interleave(16, dim=1) * 1.0001
        assert ((w - deq).abs() <= bound).all(), name
