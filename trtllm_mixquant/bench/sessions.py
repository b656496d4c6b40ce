"""A multi-turn agent session through the orchestrator: how much prefill the KV reuse saves.

Each turn appends a tool result (a few hundred tokens of records) and the model's reply to the
conversation, whose whole text is the next turn's prompt. Reports the prompt tokens of all turns,
those the context worker actually prefilled, those served from prefix caches, and the KV bytes moved.

    python -m trtllm_mixquant.bench.sessions [ENGINE_DIR] --turns 10
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from trtllm_mixquant.agent_tasks import generate_task
from trtllm_mixquant.disagg.config import OrchestratorConfig
from trtllm_mixquant.disagg.orchestrator import Orchestrator
from trtllm_mixquant.engine.config import EngineConfig
from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.frontend.async_engine import GenerateRequest
from trtllm_mixquant.help_format import HelpFormatter


async def run_session(engine_dir: str, turns: int, devices: list[str]) -> list[dict]:
    orch = Orchestrator(OrchestratorConfig(EngineConfig(Path(engine_dir)), devices=tuple(devices)))
    tokenizer = orch.codec.tokenizer
    await orch.start()
    task = generate_task("session:0", 6000)
    results = [m["content"] for m in task.messages if m["role"] == "tool"]
    messages = [task.messages[0], task.messages[1]]
    rows = []
    try:
        for turn in range(turns):
            messages.append({"role": "tool", "content": results[turn % len(results)][:700]})
            prompt = tokenizer.apply_chat_template(messages, tools=task.tools, add_generation_prompt=True, tokenize=False)
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            before = orch.stats()
            stream = await orch.submit(GenerateRequest(ids, SamplingParams(max_tokens=32), session_id="agent-1"))
            out, _ = await stream.result()
            after = orch.stats()
            messages.append({"role": "assistant", "content": tokenizer.decode(out, skip_special_tokens=True)})
            rows.append({"turn": turn + 1, "prompt": len(ids),
                         "prefilled": after["quantized_prefill_tokens"] - before["quantized_prefill_tokens"],
                         "cached": stream.num_cached_prompt,
                         "kv_bytes": after["kv_bytes_transferred"] - before["kv_bytes_transferred"]})
    finally:
        await orch.shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trtllm-mixquant bench sessions", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("engine_dir", nargs="?", default="engines/tiny-agent")
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--devices", default="cpu", help="comma-separated, context worker first")
    args = p.parse_args(argv)
    rows = asyncio.run(run_session(args.engine_dir, args.turns, args.devices.split(",")))
    print(f"{'turn':>4} {'prompt':>7} {'prefilled':>9} {'cached':>7} {'KV KiB':>8}")
    for r in rows:
        print(f"{r['turn']:>4} {r['prompt']:>7} {r['prefilled']:>9} {r['cached']:>7} {r['kv_bytes'] / 1024:>8.0f}")
    total, done = sum(r["prompt"] for r in rows), sum(r["prefilled"] for r in rows)
    print(f"total prompt tokens {total}, prefilled by the context worker {done} "
          f"({100 * (1 - done / total):.0f}% saved); KV moved {sum(r['kv_bytes'] for r in rows) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
