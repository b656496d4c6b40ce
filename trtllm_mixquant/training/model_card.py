"""The model card (README.md) of the trained checkpoint, filled in from the recipe's measured metrics."""

from __future__ import annotations

from typing import Any


def agent_table(agent: dict[str, dict[str, float]]) -> str:
    rows = ["| context (tokens) | tasks | decision points | all decision points | tool calls | final answers "
            "| whole tasks |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for budget, r in agent.items():
        rows.append(f"| {budget} | {r['tasks']} | {r['decision_points']} | {r['accuracy']:.1%} "
                    f"| {r.get('tool_call_accuracy', 0):.1%} | {r.get('answer_accuracy', 0):.1%} "
                    f"| {r['task_accuracy']:.1%} |")
    return "\n".join(rows)


def family_table(agent: dict[str, dict]) -> str:
    """Whole-task accuracy per task family and context length."""
    families = sorted({f for r in agent.values() for f in r.get("family_task_accuracy", {})})
    if not families:
        return ""
    rows = ["| context (tokens) | " + " | ".join(families) + " |", "| ---: |" + " ---: |" * len(families)]
    for budget, r in agent.items():
        cells = [f"{r['family_task_accuracy'][f]:.0%}" if f in r["family_task_accuracy"] else "" for f in families]
        rows.append(f"| {budget} | " + " | ".join(cells) + " |")
    return ("Whole tasks by family (`chain` and `order` hang on long exact output: every station of a route, "
            "every line of an order):\n\n" + "\n".join(rows))


def render_model_card(m: dict[str, Any]) -> str:
    """README.md text for the metrics dict written by `trtllm_mixquant.training.recipe`."""
    model, data, train, ev = m["model"], m["data"], m["train"], m["eval"]
    bpb = ev["bpb"]
    longest, at_longest = list(ev["agent"].items())[-1]
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
---
# tiny-agent

A {model['parameters'] / 1e6:.1f}M-parameter Qwen3 model (`Qwen3ForCausalLM`, BF16) trained from scratch by
`python -m trtllm_mixquant.training.recipe --seed {m['seed']}` so that trtllm-mixquant has a real model
to serve and to measure Mix-Quant accuracy on, with no download.

- Architecture: {model['num_layers']} layers, hidden {model['hidden_size']}, intermediate {model['intermediate_size']},
  {model['num_heads']} query heads / {model['num_kv_heads']} KV heads of {model['head_dim']}, tied embeddings,
  vocabulary {model['vocab_size']} (byte-level BPE, single digits), context {model['context_length']} tokens.
- Chat format: Qwen3 (`<|im_start|>`/`<|im_end|>`), tools listed in `<tools>`, calls as
  `<tool_call>{{"name": ..., "arguments": ...}}</tool_call>`, results as `<tool_response>` (template in
  `tokenizer_config.json`).

## Training data
- Python source files ({data['code_bytes'] / 1e6:.0f} MB, {data['code_tokens'] / 1e6:.1f}M tokens) from the
  site-packages of the training machine (PyTorch, JAX, transformers, SciPy, pandas and the rest of its
  image), with the packages {', '.join(data['held_out_packages'])} held out entirely.
- {data['agent_tasks']} synthetic agent transcripts ({data['agent_tokens'] / 1e6:.1f}M tokens) from
  `trtllm_mixquant.agent_tasks`: a user question, `lookup` / `calculator` / `search` / `order` calls, long tool
  results full of distractor rows and passages, and an exact final answer; two of the five families need long
  exact output (`chain`: follow a route's next stations and list every stop; `order`: one order call that copies
  every looked-up price). Loss weights: assistant turns
  {train['assistant_weight']}, other transcript text {train['context_weight']}, Python 1.

## Training
{train['steps']} steps of {train['batch_size']} x {model['context_length']} tokens ({train['tokens'] / 1e6:.0f}M
tokens) in {train['seconds']:.0f} s on one {m['device']}; AdamW (lr {train['lr']}, cosine), bf16 autocast.
Final training loss {train['final_loss']:.3f} (weighted); {train['final_code_loss']:.3f} nats per Python token and
{train['final_assistant_loss']:.3f} per assistant-turn token (means over the last {train['log_every']} steps).

## Evaluation (held-out)
- Python from the held-out packages ({bpb['text_bytes'] / 1e6:.1f} MB, {bpb['files']} files): **{bpb['model']:.3f}
  bits per byte**, against {bpb['gzip']:.3f} for `gzip -9` on the same text (ratio {bpb['ratio']:.2f}).
- Synthetic agent tasks from seeds never trained on, padded to each context length with the trained
  tokenizer, greedy decoding in BF16. Each assistant turn (a decision point) is scored after the correct
  conversation so far: the exact tool call (name and JSON arguments) or the exact final answer. A whole
  task counts only when all its decision points are right.

{agent_table(ev['agent'])}

{family_table(ev['agent'])}

## Not good for
Anything but the above: it knows no facts, follows no instructions beyond the four tools and question
shapes it was trained on, writes plausible-looking but unreliable Python, and has seen no natural language
beyond docstrings and comments. Even on its own task shapes, {1 - at_longest['answer_accuracy']:.0%} of its final
answers at {longest} tokens copy a value from the wrong row or passage. It is a test fixture for serving and
quantization, not an assistant.
"""
