"""`trtllm-mixquant demo` and `trtllm-mixquant chat`: the shipped agent model at work, in-process."""

from __future__ import annotations

import time

from trtllm_mixquant.engine.config import engine_config_from_args
from trtllm_mixquant.generate_cli import check_engine_dir, engine_parser, setup_logging

EXIT_WORDS = ("exit", "quit", "/exit", "/quit")


def start_engine(args, status) -> tuple:
    """A LocalEngine of the command's engine folder, started on a loop thread."""
    from trtllm_mixquant.frontend.loop_thread import LoopThread
    from trtllm_mixquant.frontend.local_engine import LocalEngine

    check_engine_dir(args.engine_dir)
    setup_logging(args)
    start = time.perf_counter()
    status(f"loading {args.engine_dir} ...")
    engine = LocalEngine(engine_config_from_args(args, args.engine_dir))
    loop = LoopThread()
    loop.run(engine.start())
    layout = engine.backend.layout
    status(f"ready in {time.perf_counter() - start:.1f} s: context engine {engine.precision}, generation engine "
           f"bf16, on {engine.config.device if engine.config.device != 'auto' else engine.backend.kv_cache.k.device} "
           f"in {layout.dtype}")
    return engine, loop


def prompt_cost(turn, precision: str) -> str:
    precise = turn.prompt_tokens - turn.cached_tokens - turn.quantized_tokens
    times = "  ".join(f"{mode} {seconds:.2f} s" for mode, seconds in turn.seconds.items())
    return (f"{turn.prompt_tokens:,} prompt tokens: {turn.cached_tokens:,} from the prefix cache, "
            f"{turn.quantized_tokens:,} prefilled {precision}, {precise:,} bf16 | {times}")


def demo_main(argv: list[str]) -> int:
    p = engine_parser("trtllm-mixquant demo", "Agent tasks on the shipped model: its tool calls and answers, and per "
                      "turn what was prefilled quantized, reused from the prefix cache, and the time per mode.")
    p.add_argument("--tasks", type=int, default=3, help="held-out agent tasks to run")
    p.add_argument("--context", type=int, default=1024, help="tokens each task's tool results fill its context to")
    p.add_argument("--modes", default="mixquant,bf16", help="comma-separated; the first drives the conversation")
    args = p.parse_args(argv)
    from trtllm_mixquant.agent_tasks import generate_tasks
    from trtllm_mixquant.demo.agent import ask, new_conversation
    from trtllm_mixquant.demo.world import ToyWorld

    engine, loop = start_engine(args, print)
    modes = tuple(args.modes.split(","))
    world, right, totals = ToyWorld(), 0, [0, 0, 0]
    tasks = generate_tasks("demo", 0, args.tasks, args.context, lambda t: len(engine.codec.encode(t)))
    for i, task in enumerate(tasks, 1):
        world.record(task)
        question = task.messages[1]["content"]
        print(f"\n[{i}/{len(tasks)}] {question}")
        for turn in loop.iterate(ask(engine, new_conversation(), question, world, modes)):
            if turn.answer is None:
                first = turn.result.splitlines()[0] if turn.result else ""
                print(f"  tool call  {turn.call_text}\n             -> {first} ({len(turn.result):,} characters)")
            else:
                ok = turn.answer == task.answer
                right += ok
                print(f"  answer     {turn.answer}" + ("  (correct)" if ok else f"  (expected: {task.answer})"))
            print(f"             {prompt_cost(turn, engine.precision)}")
            for k, v in enumerate((turn.prompt_tokens, turn.cached_tokens, turn.quantized_tokens)):
                totals[k] += v
    prompt, cached, quantized = totals
    print(f"\n{right} of {len(tasks)} tasks answered exactly. {prompt:,} prompt tokens in all: {cached:,} "
          f"({100 * cached / max(prompt, 1):.0f}%) reused from the prefix cache, {quantized:,} prefilled {engine.precision}.")
    if engine.backend.kv_cache.k.device.type == "cpu":
        print(f"On a CPU the {engine.precision} GEMMs are emulated (slower than BF16); the speed-up needs a GPU "
              "(README: Measured).")
    loop.run(engine.shutdown())
    return 0


BANNER = """\
trtllm-mixquant chat: the shipped tiny-agent model ({precision} prefill, BF16 decode) with its three
tools, lookup (tables inventory, employees, accounts), calculator and search (a project report),
over a toy world whose facts follow from each key. It answers questions of the shapes it was
trained on, for example:
{examples}
It is an 18M-parameter test fixture, not an assistant: other questions get nonsense.
/reset clears the conversation; exit, /exit, Ctrl-D or Ctrl-C quit; Ctrl-C while it answers stops the reply."""


def chat_main(argv: list[str]) -> int:
    p = engine_parser("trtllm-mixquant chat", "Chat with the shipped agent model and its tools.")
    args = p.parse_args(argv)
    from trtllm_mixquant.demo.agent import ask, new_conversation
    from trtllm_mixquant.demo.world import ToyWorld

    try:
        engine, loop = start_engine(args, print)
    except KeyboardInterrupt:
        return 130
    world = ToyWorld()
    print(BANNER.format(precision=engine.precision, examples="\n".join(f"  {q}" for q in world.examples())))
    messages = new_conversation()
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if line.lower() in EXIT_WORDS:
            break
        if line == "/reset":
            messages = new_conversation()
            continue
        if not line:
            continue
        print("assistant> ", end="", flush=True)
        try:
            for turn in loop.iterate(ask(engine, messages, line, world, (args.mode,),
                                         on_text=lambda text: print(text, end="", flush=True))):
                if turn.call:
                    print(f"[{turn.call_text}] ", end="", flush=True)
            print()
        except KeyboardInterrupt:
            print(" (stopped)")
            messages = new_conversation()
    loop.run(engine.shutdown())
    return 0
