"""Decoder-only transformer for the Qwen3, Qwen2/2.5 and Llama 3 families.

Module names follow Hugging Face (`model.layers.N.self_attn.o_proj`, ...) so checkpoints load by
name; q/k/v and gate/up are fused (`qkv_proj`, `gate_up_proj`), each loaded from its parts. The
forward works on a flat [T] token batch with a paged KV cache (see `StepBatch`).

Each layer is two regions around attention, `pre_attention` and `post_attention`: on a GPU,
`CausalLM.compile_regions` compiles them so that the norms, SiLU-mul, residual adds and the FP8
activation quantization each fuse into the kernel that produces their input. Attention's head-wise
q/k norm, RoPE and KV store run in `Attention.attend`, one kernel on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trtllm_mixquant.runtime.attention import pack_kv, paged_attention, write_kv
from trtllm_mixquant.runtime.batch import StepBatch
from trtllm_mixquant.runtime.compile import compile_exact
from trtllm_mixquant.runtime.config import ModelConfig
from trtllm_mixquant.runtime.kv_cache import KVCache
from trtllm_mixquant.runtime.layers.linear import Linear
from trtllm_mixquant.runtime.layers.norm import RMSNorm
from trtllm_mixquant.runtime.layers.rotary import RotaryEmbedding
from trtllm_mixquant.runtime.layers.vocab import VocabEmbedding, VocabHead
from trtllm_mixquant.runtime.parallel import TPGroup, check_tp, column_shard, kv_head_range, row_shard


class Attention(torch.nn.Module):
    """This rank's query heads and KV heads (`parallel.kv_head_range`) of the layer's attention."""

    def __init__(self, cfg: ModelConfig, rotary: RotaryEmbedding, tp: TPGroup):
        super().__init__()
        d = cfg.head_dim
        first, last = kv_head_range(cfg.num_kv_heads, tp.size, tp.rank)
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads // tp.size, last - first, d
        q_dim, kv_dim = self.num_heads * d, self.num_kv_heads * d
        q_full, kv_full = cfg.num_heads * d, cfg.num_kv_heads * d
        shard = column_shard([(tp.rank * q_dim, (tp.rank + 1) * q_dim, q_full), (first * d, last * d, kv_full),
                              (first * d, last * d, kv_full)])
        self.qkv_proj = Linear(cfg.hidden_size, [q_dim, kv_dim, kv_dim], cfg.qkv_bias, ("q_proj", "k_proj", "v_proj"),
                               shard)
        self.o_proj = Linear(q_dim, [cfg.hidden_size], False, shard=row_shard(q_full, tp), reduce=tp)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps)
        self.rotary = rotary

    def project(self, x: torch.Tensor, num_quantized: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [T, hidden] -> q [T, H, D], k and v [T, Hkv, D]: views of the fused projection, before the
        q/k norm and RoPE (`attend` applies them)."""
        t = x.shape[0]
        q, k, v = self.qkv_proj(x, num_quantized).split(self.qkv_proj.out_sizes, dim=-1)
        return (q.view(t, self.num_heads, self.head_dim), k.view(t, self.num_kv_heads, self.head_dim),
                v.view(t, self.num_kv_heads, self.head_dim))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: StepBatch, k_cache: torch.Tensor,
               v_cache: torch.Tensor, block_size: int) -> torch.Tensor:
        """Norm (Qwen3) and rotate q and k, store k and v in the paged cache and attend:
        [T, H, D] -> [T, H * D]. On CUDA the first three are one kernel (`kernels.rope_store`)."""
        norms = (self.q_norm, self.k_norm) if hasattr(self, "q_norm") else None
        if q.is_cuda:
            from trtllm_mixquant.runtime.kernels.rope_store import rope_store

            weights, eps = ((None, None), 0.0) if norms is None else ((norms[0].weight, norms[1].weight), norms[0].eps)
            q, k = rope_store(q, k, v, batch.positions, self.rotary.cos_sin, *weights, eps, k_cache, v_cache,
                              batch.slot_mapping)
        else:
            if norms is not None:
                q, k = norms[0](q), norms[1](k)
            q, k = self.rotary(batch.positions, q, k)
            write_kv(k_cache, v_cache, k, v, batch.slot_mapping)
        out = paged_attention(q, k, v, k_cache, v_cache, batch, block_size, self.head_dim ** -0.5)
        return out.reshape(q.shape[0], -1)


class MLP(torch.nn.Module):
    def __init__(self, cfg: ModelConfig, tp: TPGroup):
        super().__init__()
        full = cfg.intermediate_size
        i = full // tp.size
        part = (tp.rank * i, (tp.rank + 1) * i, full)
        self.gate_up_proj = Linear(cfg.hidden_size, [i, i], False, ("gate_proj", "up_proj"), column_shard([part, part]))
        self.down_proj = Linear(i, [cfg.hidden_size], False, shard=row_shard(full, tp), reduce=tp)

    def forward(self, x: torch.Tensor, num_quantized: int) -> torch.Tensor:
        gate, up = self.gate_up_proj(x, num_quantized).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up, num_quantized)


class DecoderLayer(torch.nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: RotaryEmbedding, tp: TPGroup):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, rotary, tp)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg, tp)

    def forward(self, x: torch.Tensor, batch: StepBatch, k_cache: torch.Tensor, v_cache: torch.Tensor,
                block_size: int) -> torch.Tensor:
        q, k, v = self.pre_attention(x, batch.num_quantized)
        out = self.self_attn.attend(q, k, v, batch, k_cache, v_cache, block_size)
        return self.post_attention(x, out, batch.num_quantized)

    def pre_attention(self, x: torch.Tensor, num_quantized: int):
        """Norm and q/k/v projection: everything between the residual and attention's own head-wise ops."""
        return self.self_attn.project(self.input_layernorm(x), num_quantized)

    def post_attention(self, x: torch.Tensor, attn: torch.Tensor, num_quantized: int) -> torch.Tensor:
        """Output projection, residual, norm, MLP, residual: x, attn [T, hidden] -> [T, hidden]."""
        x = x + self.self_attn.o_proj(attn, num_quantized)
        return x + self.mlp(self.post_attention_layernorm(x), num_quantized)


class DecoderModel(torch.nn.Module):
    def __init__(self, cfg: ModelConfig, tp: TPGroup):
        super().__init__()
        rotary = RotaryEmbedding(cfg.head_dim, cfg.max_position_embeddings, cfg.rope_theta, cfg.rope_scaling)
        self.embed_tokens = VocabEmbedding(cfg.vocab_size, cfg.hidden_size, tp)
        self.layers = torch.nn.ModuleList(DecoderLayer(cfg, rotary, tp) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(torch.nn.Module):
    """Embeddings, decoder layers over the paged KV cache, final norm and LM head: the whole model, or
    one tensor-parallel rank's shard of it (`tp`)."""

    def __init__(self, cfg: ModelConfig, tp: TPGroup = TPGroup()):
        super().__init__()
        check_tp(cfg, tp.size)
        self.config, self.tp = cfg, tp
        self.model = DecoderModel(cfg, tp)
        self.lm_head = VocabHead(cfg.vocab_size, cfg.hidden_size, tp)

    def forward(self, batch: StepBatch, kv_cache: KVCache) -> torch.Tensor | None:
        """Returns logits [R, vocab] (fp32) for the token rows `batch.logits_indices` (None on the
        tensor-parallel ranks other than 0)."""
        x = self.model.embed_tokens(batch.input_ids)
        batch = pack_kv(batch, kv_cache.layout.block_size, x.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, batch, kv_cache.k[i], kv_cache.v[i], kv_cache.layout.block_size)
        return self.logits(x, batch.logits_indices)

    def logits(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        """Final norm and LM head of the hidden states x [T, hidden] at `rows` [R]: [R, vocab] fp32."""
        return self.lm_head(self.model.norm(x[rows]))

    def compile_regions(self) -> None:
        """torch.compile every layer's `pre_attention` and `post_attention` (dynamic token count).

        All layers share one compiled graph per variant: no precision (nothing quantized), all quantized,
        a mixed step, one token. Attention stays eager (the cuDNN/flash kernels and our Triton decode
        kernel gain nothing from it).
        """
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
        for layer in self.model.layers:
            layer.pre_attention = compile_exact(layer.pre_attention)
            layer.post_attention = compile_exact(layer.post_attention)
