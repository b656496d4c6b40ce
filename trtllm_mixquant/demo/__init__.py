"""The first thing a newcomer runs: `trtllm-mixquant demo` (an agent session on the shipped model,
its tool calls and answers, and per turn what was prefilled quantized, reused from the prefix cache,
and how long each precision took) and `trtllm-mixquant chat` (the same agent, interactively).

`world` is the toy world the shipped model's three tools act on; `agent` the loop that runs a
question to its final answer over any `AsyncEngine`."""
