"""Synthetic tool-using agent tasks in the Qwen3 chat format: training data and exact-answer evaluation."""

from trtllm_mixquant.agent_tasks.chat_format import parse_assistant_text, render_chat, render_parts
from trtllm_mixquant.agent_tasks.generator import FAMILIES, LONG_FAMILIES, approx_token_count, generate_task, generate_tasks
from trtllm_mixquant.agent_tasks.task import AgentTask, DecisionPoint
from trtllm_mixquant.agent_tasks.tools import SYSTEM_PROMPT, TOOLS, calculate

__all__ = [
    "FAMILIES", "LONG_FAMILIES", "SYSTEM_PROMPT", "TOOLS", "AgentTask", "DecisionPoint", "approx_token_count", "calculate",
    "generate_task", "generate_tasks", "parse_assistant_text", "render_chat", "render_parts",
]
