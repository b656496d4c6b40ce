"""Incremental detokenization: text pieces whose concatenation equals decoding all the ids at once."""

from __future__ import annotations

from typing import Any

# Tokens the reply parser reads. Qwen3's tokenizer marks them non-special; tokenizers that mark them
# special (our byte-level test tokenizer) must still show them in the text.
MARKERS = ("<tool_call>", "</tool_call>", "<think>", "</think>")


def hidden_token_ids(tokenizer: Any) -> set[int]:
    """Ids left out of the text, as `skip_special_tokens=True` does, except the markers."""
    return {i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special and tok.content not in MARKERS}


class Detokenizer:
    """Decode a growing list of token ids piece by piece.

    Decodes only a window (the ids since the last emitted piece, plus the piece before it, so that
    decoders that treat the first token specially agree) and holds text back while it ends in an
    incomplete UTF-8 sequence (U+FFFD), e.g. a byte-level token that is half of a character.
    """

    def __init__(self, tokenizer: Any, hidden: set[int]):
        self.tokenizer, self.hidden = tokenizer, hidden
        self.ids: list[int] = []
        self.prefix = self.read = 0  # ids[prefix:read] was decoded last time; ids[read:] are new

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _new_text(self, final: bool) -> str:
        before = self._decode(self.ids[self.prefix:self.read])
        text = self._decode(self.ids[self.prefix:])
        if len(text) <= len(before) or (text.endswith("\ufffd") and not final):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(before):]

    def push(self, token_ids: list[int]) -> str:
        """Add generated ids; return the new stable text (maybe empty)."""
        self.ids += [i for i in token_ids if i not in self.hidden]
        return self._new_text(final=False)

    def flush(self) -> str:
        """At the end: the text held back (an unfinished character shows as U+FFFD, as in a full decode)."""
        return self._new_text(final=True)
