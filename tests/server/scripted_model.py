"""A tiny model whose greedy reply is scripted, for testing tool calls end to end over HTTP.

Its attention and MLP outputs are (nearly) zero, so each next token depends only on the current
token: a bigram table written into the embeddings and the LM head. After `assistant\\n` the reply is
`<think>hm</think><tool_call>CALL</tool_call><|im_end|>`, CALL being one added token holding a
Hermes-style JSON call.
The tokenizer's chat template renders tools, reasoning, assistant tool calls and tool results Qwen3-style.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from trtllm_mixquant.random_model import write_random_model

CALL = '\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
SCRIPT = [("\n", "<think>"), ("<think>", "h"), ("h", "m"), ("m", "</think>"), ("</think>", "<tool_call>"),
          ("<tool_call>", CALL), (CALL, "</tool_call>"),
          ("</tool_call>", "<|im_end|>")]
CHAT_TEMPLATE = """
{%- if tools %}<|im_start|>system
# Tools
<tools>{% for t in tools %}
{{ t | tojson }}{% endfor %}
</tools><|im_end|>
{% endif %}
{%- for m in messages %}
{%- if m.role == 'assistant' %}<|im_start|>assistant
{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}{{ m.content }}{% for c in m.tool_calls or [] %}<tool_call>
{"name": {{ c.function.name | tojson }}, "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif m.role == 'tool' %}<|im_start|>user
<tool_response>
{{ m.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}
""".strip()


def write_scripted_model(out: Path) -> Path:
    write_random_model(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.add_tokens([CALL])
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    def token(text: str) -> int:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (text, ids)
        return ids[0]

    weights = load_file(out / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    for name, w in weights.items():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            weights[name] = (torch.randn(w.shape, generator=g) * 1e-3).to(w.dtype)
    embed = torch.randn(weights["model.embed_tokens.weight"].shape, generator=g)
    head = torch.zeros_like(embed)
    for current, following in SCRIPT:
        e = embed[token(current)]
        head[token(following)] += 4 * e / e.norm()
    weights["model.embed_tokens.weight"] = embed.to(torch.bfloat16)
    weights["lm_head.weight"] = head.to(torch.bfloat16)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out
