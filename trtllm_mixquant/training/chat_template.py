"""The Jinja chat template shipped in `tokenizer_config.json`.

It renders what `trtllm_mixquant.agent_tasks.chat_format.render_chat` does (a test holds the two together):
Qwen3 layout, tools listed as JSON lines inside `<tools>` in the system turn, assistant tool calls as
`<tool_call>` blocks, and consecutive `tool` messages grouped into one user turn of `<tool_response>` blocks.
"""

from __future__ import annotations

import json

from trtllm_mixquant.agent_tasks.chat_format import TOOLS_POSTAMBLE, TOOLS_PREAMBLE

_TEMPLATE = """
{%- macro tool_call_json(call) -%}
    {%- set fn = call.function if call.function is defined else call -%}
    {{- '<tool_call>\\n{"name": ' + fn.name | tojson + ', "arguments": ' -}}
    {%- if fn.arguments is string -%}{{- fn.arguments -}}{%- else -%}{{- fn.arguments | tojson -}}{%- endif -%}
    {{- '}\\n</tool_call>' -}}
{%- endmacro -%}
{%- set has_system = messages and messages[0].role == 'system' -%}
{%- if tools or has_system -%}
    {{- '<|im_start|>system\\n' -}}
    {%- if has_system -%}{{- messages[0].content -}}{%- endif -%}
    {%- if tools -%}
        {%- if has_system -%}{{- '\\n\\n' -}}{%- endif -%}
        {{- PREAMBLE -}}
        {%- for tool in tools -%}{{- '\\n' + tool | tojson -}}{%- endfor -%}
        {{- POSTAMBLE -}}
    {%- endif -%}
    {{- '<|im_end|>\\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.role == 'assistant' -%}
        {%- set content = message.content if message.content is string else '' -%}
        {{- '<|im_start|>assistant\\n' + content -}}
        {%- for call in (message.tool_calls or []) -%}
            {%- if content or not loop.first -%}{{- '\\n' -}}{%- endif -%}
            {{- tool_call_json(call) -}}
        {%- endfor -%}
        {{- '<|im_end|>\\n' -}}
    {%- elif message.role == 'tool' -%}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' -}}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}
    {%- elif not (loop.first and message.role == 'system') -%}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}
"""

CHAT_TEMPLATE = (
    _TEMPLATE.strip()
    .replace("PREAMBLE", json.dumps(TOOLS_PREAMBLE))
    .replace("POSTAMBLE", json.dumps(TOOLS_POSTAMBLE))
)
