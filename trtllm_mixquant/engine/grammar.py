"""Structured outputs: a request's `Guide` compiled by xgrammar (the grammar engine vLLM and SGLang
use) into a matcher that says, before each token, which tokens may come next.

One `GrammarCompiler` per engine, and one in the server, which compiles each guide once before it
accepts the request, so that a guide the grammar engine cannot compile is refused with its reason.
Compiled grammars are cached by their guide. Imported only when a request carries a guide.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import torch
import xgrammar

from trtllm_mixquant.engine.sampling import Guide
from trtllm_mixquant.errors import InvalidRequest

JSON_SEPARATORS = (", ", ": ")  # what chat templates' `tojson` writes, so what models are trained on


def _bounded_strings_as_patterns(node: Any) -> Any:
    """xgrammar 0.2.9 writes a string with minLength/maxLength as a bounded run of any character but
    quote, backslash, CR and LF, which lets other control characters into the JSON (invalid:
    `json.loads` and pydantic refuse it; a random model found it). The same bounds as a pattern over
    the decoded string keep them out (and escapes, which such a pattern does not match)."""
    if isinstance(node, list):
        return [_bounded_strings_as_patterns(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _bounded_strings_as_patterns(v) for k, v in node.items()}
    bounded = "minLength" in node or "maxLength" in node
    if node.get("type") == "string" and bounded and not {"pattern", "format", "enum", "const"} & node.keys():
        low, high = int(node.pop("minLength", 0)), node.pop("maxLength", None)
        node["pattern"] = f"^[^\\x00-\\x1f]{{{low},{'' if high is None else int(high)}}}$"
    return node


def _json_grammar(schema: str | dict[str, Any]) -> xgrammar.Grammar:
    try:
        schema = json.loads(schema) if isinstance(schema, str) else schema
    except json.JSONDecodeError as e:
        raise ValueError(f"the schema is not valid JSON ({e})") from None
    text = json.dumps(_bounded_strings_as_patterns(schema))
    return xgrammar.Grammar.from_json_schema(text, any_whitespace=False, separators=JSON_SEPARATORS)


def tool_call_guide(schema: dict[str, Any], begin: str, end: str, reasoning: tuple[str, str] | None) -> Guide:
    """One call: JSON matching `schema` between the call tags `begin` and `end`, after an optional
    reasoning block (`reasoning`: its opening and closing tags) and the newlines models put after it."""
    call = {"type": "tag", "begin": begin, "content": {"type": "grammar", "grammar": str(_json_grammar(schema))},
            "end": end}
    elements = [call]
    if reasoning:
        think = {"type": "tag", "begin": reasoning[0], "content": {"type": "any_text"}, "end": reasoning[1]}
        gap = {"type": "or", "elements": [{"type": "const_string", "value": v} for v in ("\n\n", "\n", "")]}
        elements = [{"type": "or", "elements": [{"type": "sequence", "elements": [think, gap]},
                                                {"type": "const_string", "value": ""}]}, call]
    return Guide("structural_tag", json.dumps({"type": "structural_tag",
                                               "format": {"type": "sequence", "elements": elements}}))


class GrammarCompiler:
    """Guides compiled for one tokenizer whose logits have `vocab_size` columns."""

    def __init__(self, tokenizer, vocab_size: int, stop_ids: set[int]):
        self.info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.compiler = xgrammar.GrammarCompiler(self.info, max_threads=1)
        self.stop_ids = sorted(stop_ids)
        self.compile = lru_cache(maxsize=256)(self._compile)

    def _compile(self, guide: Guide) -> xgrammar.CompiledGrammar:
        """Raises InvalidRequest with the grammar engine's reason."""
        try:
            if guide.kind == "json":
                grammar = _json_grammar(guide.spec) if guide.spec else xgrammar.Grammar.builtin_json_grammar()
            elif guide.kind == "regex":
                grammar = xgrammar.Grammar.from_regex(guide.spec)
            elif guide.kind == "ebnf":
                grammar = xgrammar.Grammar.from_ebnf(guide.spec)
            else:
                grammar = xgrammar.Grammar.from_structural_tag(guide.spec)
            return self.compiler.compile_grammar(grammar)
        except (RuntimeError, ValueError) as e:  # xgrammar's own message says what it could not read
            reason = re.sub(r"^\[[\d:]+\] \S+: ", "", str(e).strip().splitlines()[-1])  # its source line dropped
            raise InvalidRequest(f"the {guide.kind} guide cannot be compiled: {reason}") from None

    def matcher(self, guide: Guide) -> GrammarMatcher:
        return GrammarMatcher(xgrammar.GrammarMatcher(self.compile(guide), override_stop_tokens=self.stop_ids),
                              self.info.vocab_size)


class GrammarMatcher:
    """One reply's progress through its grammar."""

    def __init__(self, matcher: xgrammar.GrammarMatcher, vocab_size: int):
        self.matcher, self.vocab_size = matcher, vocab_size
        self.bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)  # [1, ceil(V / 32)] int32, refilled each step

    def mask(self, logits: torch.Tensor) -> None:
        """Set the logits [V] of tokens the grammar forbids next to -inf, in place."""
        self.matcher.fill_next_token_bitmask(self.bitmask)
        xgrammar.apply_token_bitmask_inplace(logits.view(1, -1), self.bitmask.to(logits.device),
                                             vocab_size=self.vocab_size)

    def accept(self, token: int) -> bool:
        """Advance by one sampled token; True once the grammar is complete (its stop token taken)."""
        if not self.matcher.accept_token(token):
            raise AssertionError(f"token {token} was sampled outside the grammar's mask")
        return self.matcher.is_terminated()
