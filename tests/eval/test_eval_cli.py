"""`trtllm-mixquant eval` end to end on a tiny engine: tables, JSON and plot, and self-consistency."""

from __future__ import annotations

import json

from trtllm_mixquant.eval.cli import main
from trtllm_mixquant.eval.quant_error import first_divergence, kl_divergence, text_windows
from trtllm_mixquant.eval.report import gap_recovered

import torch


def test_eval_writes_results_and_bf16_is_its_own_reference(tiny_engines, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("def f(x):\n    return x * 2\n" * 200)
    out = tmp_path / "out"
    rc = main([str(tiny_engines("qwen3")), "--text", str(text), "--lengths", "32,64", "--samples", "2",
               "--continuation", "8", "--greedy-tokens", "6", "--agent-tasks", "2", "--agent-max-tokens", "8",
               "--out", str(out), "--tasks", "quant-error,agentic,agentic-long"])
    assert rc == 0 and (out / "results.png").stat().st_size > 1000 and (out / "by_output_length.png").is_file()
    result = next(iter(json.loads((out / "results.json").read_text())["results"].values()))
    summary = result["summary"]
    assert set(summary["long_task_correct"]) == {"bf16", "quantized", "mixquant"}
    assert set(result["by_output_length"]) == {"chain", "order"}
    assert {r["family"] for r in result["records"] if "long_task_correct" in r} == {"chain", "order"}
    assert set(result["recovery"]) == {"agentic", "agentic-long"}
    assert summary["kl"]["bf16"]["-1"]["value"] == 0.0
    assert summary["agreement"]["bf16"]["-1"]["value"] == 6
    assert summary["kl"]["quantized"]["-1"]["value"] > 0
    assert set(summary["correct"]) == {"bf16", "quantized", "mixquant"}
    assert "gap recovered" in capsys.readouterr().out


def test_helpers():
    assert first_divergence([1, 2, 3], [1, 2, 4]) == 2 and first_divergence([1, 2], [1, 2]) == 2
    p = torch.log_softmax(torch.randn(3, 10), -1)
    assert torch.allclose(kl_divergence(p, p), torch.zeros(3))
    assert (kl_divergence(p, torch.log_softmax(torch.randn(3, 10), -1)) > 0).all()
    windows = text_windows(list(range(100)), [10, 20], 5, 3, seed=1)
    assert [w.length for w in windows] == [10, 10, 10, 20, 20, 20]
    assert all(w.continuation[0] == w.prompt[-1] + 1 for w in windows)
    summary = {"nll": {m: {-1: {"value": v, "low": v - 0.1, "high": v + 0.1}}
                       for m, v in (("bf16", 1.0), ("quantized", 2.0), ("mixquant", 1.2))}}
    assert abs(gap_recovered(summary, "nll", -1) - 0.8) < 1e-9
    summary["nll"]["quantized"][-1]["low"] = 0.9  # BF16 inside quantized's interval: no gap to recover
    assert gap_recovered(summary, "nll", -1) is None


def test_gsm8k_benchmark_task_runs_in_process(tiny_engines, tmp_path):
    """A benchmark file in its published schema, scored per mode (the tiny random model gets 0)."""
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}) + "\n")
    out = tmp_path / "out"
    assert main([str(tiny_engines("qwen3")), "--tasks", f"gsm8k={data}", "--modes", "bf16,mixquant",
                 "--max-new-tokens", "4", "--out", str(out)]) == 0
    benchmarks = next(iter(json.loads((out / "results.json").read_text())["results"].values()))["benchmarks"]
    assert set(benchmarks) == {"gsm8k/bf16", "gsm8k/mixquant"}
    assert benchmarks["gsm8k/bf16"]["records"][0]["id"] and benchmarks["gsm8k/bf16"]["accuracy"]["n"] == 1


def test_windows_longer_than_the_engines_allow_are_refused_before_loading(tiny_engines, tmp_path):
    import pytest

    with pytest.raises(SystemExit, match=r"use --lengths up to 2016"):
        main([str(tiny_engines("qwen3")), "--lengths", "64,2048", "--continuation", "32", "--out", str(tmp_path),
              "--tasks", "quant-error"])
    assert not any(tmp_path.iterdir())
