"""The recipe's closing table, printed from its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def format_report(m: dict[str, Any], out_dir: Path) -> str:
    bpb, train, data = m["eval"]["bpb"], m["train"], m["data"]
    files = sorted(p for p in out_dir.iterdir() if p.is_file())
    lines = [
        f"== tiny-agent recipe: seed {m['seed']}, {m['device']} ==",
        f"held-out Python ({', '.join(data['held_out_packages'])}; {bpb['text_bytes'] / 1e6:.2f} MB, "
        f"{bpb['files']} files): model {bpb['model']:.3f} bpb | gzip -9 {bpb['gzip']:.3f} bpb | "
        f"ratio {bpb['ratio']:.3f} (target <= 0.75)",
        "agent tasks, greedy BF16 (target >= 80%):",
        f"  {'context':>8} {'tasks':>6} {'points':>7} {'point acc':>10} {'task acc':>9} {'calls':>7} {'answers':>8}",
    ]
    for budget, r in m["eval"]["agent"].items():
        lines.append(f"  {budget:>8} {r['tasks']:>6} {r['decision_points']:>7} {r['accuracy']:>10.1%} "
                     f"{r['task_accuracy']:>9.1%} {r.get('tool_call_accuracy', 0):>7.1%} "
                     f"{r.get('answer_accuracy', 0):>8.1%}")
    lines += [
        f"training: {train['steps']} steps x {train['batch_size']} x {m['model']['context_length']} = "
        f"{train['tokens'] / 1e6:.1f}M tokens in {train['seconds']:.0f}s; final loss {train['final_loss']:.4f} "
        f"(nats/token: code {train['final_code_loss']:.4f}, assistant {train['final_assistant_loss']:.4f}); "
        f"data {data['code_tokens'] / 1e6:.1f}M code + "
        f"{data['agent_tokens'] / 1e6:.1f}M agent tokens",
        f"model: {m['model']['parameters'] / 1e6:.2f}M parameters; checkpoint {out_dir} "
        f"({sum(p.stat().st_size for p in files) / 1e6:.1f} MB in {len(files)} files, largest "
        f"{max(p.stat().st_size for p in files) / 2 ** 20:.1f} MiB)",
        f"timings (s): {m.get('timings_s', {})}",
    ]
    return "\n".join(lines)
