"""Aggregate per-item records into estimates with bootstrap intervals, a table, JSON and a plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from trtllm_mixquant.eval.benchmarks.stats import bootstrap_mean

# metric -> (label, higher is better)
METRICS = {"nll": ("continuation NLL (nats/token)", False), "kl": ("KL vs BF16 (nats/token)", False),
           "agreement": ("greedy tokens before divergence", True), "correct": ("agentic exact match", True),
           "task_correct": ("agentic whole-task exact match", True),
           "long_correct": ("long-output tasks: decision points", True),
           "long_task_correct": ("long-output tasks: whole-task exact match", True)}


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


def paired_recovery(records: list[dict], seed: int, metric: str = "task_correct", resamples: int = 1000) -> dict:
    """Over the same tasks in each mode: BF16's lead over quantized (points lost by quantizing
    everything), mixquant's lead over quantized, and the fraction of the loss mixquant recovers, with
    paired bootstrap intervals (tasks resampled together across modes)."""
    import numpy as np

    by_task: dict[str, dict[str, float]] = defaultdict(dict)
    for r in records:
        if metric in r:
            by_task[r["task"]][r["mode"]] = r[metric]
    rows = [v for v in by_task.values() if {"bf16", "mixquant", "quantized"} <= v.keys()]
    if not rows:
        return {}
    b, mq, q = (np.array([v[m] for v in rows]) for m in ("bf16", "mixquant", "quantized"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(rows), size=(resamples, len(rows)))
    loss, gain = b[idx].mean(1) - q[idx].mean(1), mq[idx].mean(1) - q[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = gain / loss
    fraction = fraction[np.isfinite(fraction)]

    def estimate(point: float, samples) -> dict:
        low, high = np.percentile(samples, [2.5, 97.5]) if len(samples) else (float("nan"),) * 2
        return {"value": float(point), "low": float(low), "high": float(high), "n": len(rows)}
    point_loss, point_gain = float(b.mean() - q.mean()), float(mq.mean() - q.mean())
    return {"bf16_minus_quantized": estimate(point_loss, loss), "mixquant_minus_quantized": estimate(point_gain, gain),
            "recovered": estimate(point_gain / point_loss if point_loss else float("nan"), fraction),
            "accuracy": {m: float(v.mean()) for m, v in (("bf16", b), ("mixquant", mq), ("quantized", q))}}


def by_output_length(records: list[dict], seed: int) -> dict[str, dict[str, dict[int, dict]]]:
    """family -> mode -> size (stations or order lines) -> whole-task accuracy of the long-output tasks."""
    groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in records:
        if "long_task_correct" in r:
            groups[r["family"], r["mode"], r["size"]].append(r["long_task_correct"])
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (family, mode, size), values in sorted(groups.items()):
        out[family][mode][size] = bootstrap_mean(values, seed).to_dict()
    return {f: dict(v) for f, v in out.items()}


def format_recovery(title: str, recovery: dict) -> str:
    if not recovery:
        return ""
    r = recovery
    cell = lambda e, scale=100: f"{scale * e['value']:.1f} [{scale * e['low']:.1f}, {scale * e['high']:.1f}]"  # noqa: E731
    acc = ", ".join(f"{m} {100 * v:.1f}%" for m, v in r["accuracy"].items())
    return (f"\n{title} (whole tasks, n={r['bf16_minus_quantized']['n']}; {acc})\n"
            f"  points lost by quantized decoding (bf16 - quantized): {cell(r['bf16_minus_quantized'])}\n"
            f"  points mixquant wins back (mixquant - quantized):     {cell(r['mixquant_minus_quantized'])}\n"
            f"  share of the loss recovered:                          {cell(r['recovered'])} %")


def plot_by_output_length(lengths: dict[str, dict], path: Path) -> None:
    """Whole-task accuracy against output length (stations or order lines), a panel per engine and
    family of long-output tasks, a line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(engine, family, by_mode) for engine, fams in lengths.items() for family, by_mode in fams.items()
              if family in ("chain", "order")]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (engine, family, by_mode) in zip(axes[0], panels):
        for i, (mode, by_size) in enumerate(by_mode.items()):
            sizes = sorted(by_size, key=int)
            xs = [int(x) + 0.08 * (i - 1) for x in sizes]  # side by side: equal modes would hide each other
            ys = [100 * by_size[x]["value"] for x in sizes]
            err = [[y - 100 * by_size[x]["low"] for x, y in zip(sizes, ys)],
                   [100 * by_size[x]["high"] - y for x, y in zip(sizes, ys)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=mode)
        ax.set_xticks(sorted({int(x) for by_size in by_mode.values() for x in by_size}))
        ax.set_ylim(-5, 105)
        ax.set_xlabel("stations visited" if family == "chain" else "order lines")
        ax.set_ylabel("whole-task exact match (%)")
        ax.set_title(f"{engine}: {family}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
