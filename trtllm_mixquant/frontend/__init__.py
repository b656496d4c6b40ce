"""The protocol-neutral front end, between the servers and the engines.

It owns what every server needs and no protocol defines: the `AsyncEngine` interface and its
in-process implementation (`LocalEngine`; the disaggregated one is `disagg.Orchestrator`), text in
and out (`text`: encoding, incremental detokenization, stop strings), chat prompts (`chat`: OpenAI
messages through the model's chat template, tools and tool_choice), reply parsing (`tool_parser`:
content, `<think>` reasoning, `<tool_call>` calls) and `TextGeneration`, a request read as text.
Errors are the domain errors of `trtllm_mixquant.errors`; each server maps them to its protocol.
"""
