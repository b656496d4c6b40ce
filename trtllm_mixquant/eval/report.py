"""Aggregate per-item records into estimates with bootstrap intervals, a table, JSON and a plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from trtllm_mixquant.eval.benchmarks.stats import bootstrap_mean

# metric -> (label, higher is better)
METRICS = {"nll": ("continuation NLL (nats/token)", False), "kl": ("KL vs BF16 (nats/token)", False),
           "agreement": ("greedy tokens before divergence", True), "correct": ("agentic exact match", True)}


def summarize(records: list[dict], seed: int) -> dict[str, dict[str, dict[int, dict]]]:
    """metric -> mode -> length -> Estimate dict, plus length -1 for all lengths together."""
    groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in records:
        for metric in METRICS:
            if metric in r:
                groups[metric, r["mode"], r["length"]].append(r[metric])
                groups[metric, r["mode"], -1].append(r[metric])
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (metric, mode, length), values in sorted(groups.items()):
        out[metric][mode][length] = bootstrap_mean(values, seed).to_dict()
    return {m: dict(v) for m, v in out.items()}


def gap_recovered(summary: dict, metric: str, length: int) -> float | None:
    """Share of the bf16-to-quantized gap that mixquant closes: 1.0 = as good as BF16, 0.0 = no better.

    None when there is no gap to speak of: BF16's value lies inside quantized's 95% interval.
    """
    modes = summary.get(metric, {})
    if not {"bf16", "quantized", "mixquant"} <= modes.keys() or length not in modes["bf16"]:
        return None
    b, q, mq = (modes[m][length]["value"] for m in ("bf16", "quantized", "mixquant"))
    if modes["quantized"][length]["low"] <= b <= modes["quantized"][length]["high"]:
        return None
    return (q - mq) / (q - b)


def format_table(title: str, summary: dict) -> str:
    lines = [title]
    for metric, by_mode in summary.items():
        label, _ = METRICS[metric]
        modes = list(by_mode)
        lengths = sorted(next(iter(by_mode.values())))
        lines.append(f"\n{label}  (mean [95% bootstrap CI], n per cell)")
        lines.append(f"{'context':>8} " + " ".join(f"{m:>32}" for m in modes) + f" {'gap recovered':>14}")
        for length in lengths:
            cells = []
            for mode in modes:
                e = by_mode[mode][length]
                cells.append(f"{e['value']:.4f} [{e['low']:.4f},{e['high']:.4f}] n={e['n']}".rjust(32))
            rec = gap_recovered(summary, metric, length)
            tag = "all" if length == -1 else str(length)
            lines.append(f"{tag:>8} " + " ".join(cells) + f" {'no gap' if rec is None else f'{100 * rec:.0f}%':>14}")
    return "\n".join(lines)


def plot(summaries: dict[str, dict], path: Path) -> None:
    """One panel per metric, context length on x, one line per engine and mode, CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({m for s in summaries.values() for m in s}, key=list(METRICS).index)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for engine, summary in summaries.items():
            for mode, by_length in summary.get(metric, {}).items():
                xs = sorted(x for x in by_length if x != -1)
                ys = [by_length[x]["value"] for x in xs]
                err = [[y - by_length[x]["low"] for x, y in zip(xs, ys)], [by_length[x]["high"] - y for x, y in zip(xs, ys)]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{engine}: {mode}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length (tokens)")
        ax.set_title(METRICS[metric][0])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
