"""`trtllm-mixquant eval`: does quantized prefilling keep decoding precise, on your model and data?"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import logging
from pathlib import Path

from trtllm_mixquant.engine.config import add_fp8_attention_argument
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.help_format import HelpFormatter

DESCRIPTION = """\
Compare bf16 (BF16 everywhere), quantized (the context engine's precision everywhere) and mixquant
(quantized prefill, BF16 decode) on one or more engine folders (e.g. one with an NVFP4 and one with
an FP8 context engine). Prints tables with 95% bootstrap intervals and writes results.json and
results.png into --out.

tasks:
  quant-error   continuation NLL, KL against BF16 and greedy agreement on plain text, by context length
  agentic       exact tool call / final answer on held-out synthetic agent tasks, by context length
  agentic-long  the same on the tasks whose success hangs on long exact output (chain: every
                station of a route; order: every line of an order), whole-task accuracy by
                output length, and the share of quantized decoding's loss mixquant recovers
  NAME=PATH     a benchmark file in its published schema: math500, aime2024, aime2025, gsm8k,
                longbench_v2, bfcl (e.g. math500=~/data/math500.jsonl); in-process, or against any
                OpenAI-compatible server with --endpoint
"""
DEFAULT_TEXT_PACKAGES = ("sympy", "networkx")  # held out from the shipped model's training data


def default_text(max_bytes: int) -> str:
    """Python sources of packages the shipped model never saw, read from this environment."""
    chunks, size = [], 0
    for name in DEFAULT_TEXT_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for path in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            chunks.append(text)
            size += len(text)
            if size >= max_bytes:
                return "\n".join(chunks)
    if not chunks:
        raise SystemExit("no default text found (sympy/networkx not installed); pass --text FILE")
    return "\n".join(chunks)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trtllm-mixquant eval", description=DESCRIPTION,
                                formatter_class=HelpFormatter)
    p.add_argument("engine_dirs", nargs="+", type=Path, help="build.py output folders")
    p.add_argument("--modes", default="bf16,quantized,mixquant")
    p.add_argument("--tasks", default="quant-error,agentic", help="comma-separated (see above)")
    p.add_argument("--lengths", default="256,512,1024,2048", help="prompt lengths in tokens")
    p.add_argument("--samples", type=int, default=16, help="text windows per length (quant-error)")
    p.add_argument("--continuation", type=int, default=64, help="continuation tokens scored per window")
    p.add_argument("--greedy-tokens", type=int, default=32, help="greedy tokens compared per window")
    p.add_argument("--agent-tasks", type=int, default=20, help="held-out agent tasks per length")
    p.add_argument("--agent-max-tokens", type=int, default=320,
                   help="tokens an agent reply may take (the longest order call of the long-output tasks ~250)")
    p.add_argument("--text", type=Path, action="append", help="text file(s) for quant-error (default: held-out Python)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="for benchmarks")
    p.add_argument("--endpoint", default=None,
                   help="run the benchmark tasks against this OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1) "
                        "instead of the engine in-process; the mode goes in the request's `mixquant` field")
    p.add_argument("--api-key", default=None, help="for --endpoint")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight with --endpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("eval-results"))
    p.add_argument("--device", default="auto")
    add_fp8_attention_argument(p, "off")
    return p


def evaluate_engine(args, engine_dir: Path, modes: list[str], tasks: list[str]) -> tuple[dict, list[dict], dict]:
    from trtllm_mixquant import LLM
    from trtllm_mixquant.agent_tasks import LONG_FAMILIES
    from trtllm_mixquant.eval.agentic import agentic_accuracy, held_out_tasks
    from trtllm_mixquant.eval.quant_error import quantization_error, text_windows
    from trtllm_mixquant.eval.report import summarize

    llm = LLM(engine_dir, mode="mixquant", device=args.device, fp8_attention=args.fp8_attention)
    lengths = [int(x) for x in args.lengths.split(",")]
    records = []
    if "quant-error" in tasks:
        text = "\n".join(p.read_text() for p in args.text) if args.text else default_text(4 << 20)
        windows = text_windows(llm.tokens(text), lengths, args.continuation, args.samples, args.seed)
        records += quantization_error(llm, windows, modes, args.greedy_tokens)
    for task, families, prefix in (("agentic", None, ""), ("agentic-long", LONG_FAMILIES, "long_")):
        if task in tasks:
            held_out = held_out_tasks(llm.tokenizer, lengths, args.agent_tasks, args.seed, families)
            records += [{(prefix + k if k in ("correct", "task_correct") else k): v for k, v in r.items()}
                        for r in agentic_accuracy(llm, held_out, modes, args.agent_max_tokens)]
    benchmarks = {}
    for task in (t for t in tasks if "=" in t):
        benchmarks.update(run_benchmark_task(llm, task, modes, args))
    return summarize(records, args.seed), records, benchmarks


def run_benchmark_task(llm, task: str, modes: list[str], args) -> dict:
    from trtllm_mixquant.eval.benchmarks import (
        CallableClient,
        Completion,
        OpenAIEndpointClient,
        TokenCodec,
        load_benchmark,
        run_benchmark,
    )

    name, path = task.split("=", 1)
    options = {}
    if name == "longbench_v2":
        options = {"codec": TokenCodec.from_hf(llm.tokenizer),
                   "max_prompt_tokens": llm.dirs.max_seq_len - args.max_new_tokens - 64}
    items = load_benchmark(name, Path(path).expanduser(), **options)
    out = {}
    for mode in modes:
        if args.endpoint:
            client = OpenAIEndpointClient(args.endpoint, api_key=args.api_key, extra_body={"mixquant": {"mode": mode}})
            concurrency = args.concurrency
        else:
            def complete(messages, tools, params, mode=mode):
                result = llm.chat(messages, tools=tools, params=params, mode=mode)
                return Completion(result.text, finish_reason=result.finish_reason)
            client, concurrency = CallableClient(complete), 1  # the in-process engine runs one request at a time
        params = SamplingParams(max_tokens=args.max_new_tokens)
        result = run_benchmark(items, client, params, concurrency=concurrency, seed=args.seed, name=f"{name}/{mode}")
        out[f"{name}/{mode}"] = result.to_dict()
        print(f"{name} {mode}: {result.accuracy}")
    return out


def check_lengths(args) -> None:
    """Refuse, before any engine loads, quant-error windows that the engines cannot hold."""
    from trtllm_mixquant.engine.engine_dirs import resolve_engine_dirs

    need = max(args.continuation, args.greedy_tokens)
    for engine_dir in args.engine_dirs:
        limit = resolve_engine_dirs(engine_dir).max_seq_len
        too_long = [n for n in (int(x) for x in args.lengths.split(",")) if n + need > limit]
        if too_long:
            sys.exit(f"error: quant-error prompts of {too_long} tokens plus {need} scored tokens exceed the maximum "
                     f"sequence length of {engine_dir} ({limit}); use --lengths up to {limit - need}")


def main(argv: list[str] | None = None) -> int:
    from trtllm_mixquant.eval.report import (by_output_length, format_recovery, format_table, paired_recovery, plot,
                                             plot_by_output_length)

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    can_plot = importlib.util.find_spec("matplotlib") is not None
    if not can_plot:
        print("note: results.png needs matplotlib, which is not installed (pip install 'trtllm-mixquant[eval]'); "
              "the tables and results.json are written without it")
    modes, tasks = args.modes.split(","), args.tasks.split(",")
    if "quant-error" in tasks:
        check_lengths(args)
    args.out.mkdir(parents=True, exist_ok=True)
    summaries, results, lengths = {}, {}, {}
    for engine_dir in args.engine_dirs:
        summary, records, benchmarks = evaluate_engine(args, engine_dir, modes, tasks)
        label = f"{engine_dir.name}/{json.loads((engine_dir / 'context' / 'engine.json').read_text())['precision']}"
        summaries[label] = summary
        recovery = {suite: paired_recovery(records, args.seed, metric)
                    for suite, metric in (("agentic", "task_correct"), ("agentic-long", "long_task_correct"))
                    if suite in tasks}
        lengths[label] = by_output_length(records, args.seed)
        results[label] = {"summary": summary, "recovery": recovery, "by_output_length": lengths[label],
                          "records": records, "benchmarks": benchmarks}
        print(format_table(f"\n== {label} (seed {args.seed}) ==", summary))
        for suite, r in recovery.items():
            print(format_recovery(f"{label} {suite}", r))
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": results}, indent=1))
    written = [args.out / "results.json"]
    if any(summaries.values()) and can_plot:
        plot(summaries, args.out / "results.png")
        written.append(args.out / "results.png")
        if any(lengths.values()):
            plot_by_output_length(lengths, args.out / "by_output_length.png")
            written.append(args.out / "by_output_length.png")
    print("\nwrote " + " and ".join(map(str, written)))
    return 0
