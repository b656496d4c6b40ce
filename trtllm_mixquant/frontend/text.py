"""Text in and out of an engine: encoding prompts, and turning a reply's token ids into text pieces
(incremental detokenization, the ending EOS or stop token left out, stop strings applied).

Engines stop on tokens only; stop strings are found here, once, for every front door.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trtllm_mixquant.engine.sampling import SamplingParams
from trtllm_mixquant.errors import InvalidRequest
from trtllm_mixquant.frontend.detokenizer import Detokenizer, hidden_token_ids
from trtllm_mixquant.frontend.text_match import StopStrings


@dataclass
class Piece:
    text: str
    finish_reason: str | None = None  # on the last piece: "stop" (EOS, stop token or stop string) or "length"
    logprobs: list = field(default_factory=list)  # (token id, engine.sampler.TokenLogprobs) of its tokens, if asked


class TextStream:
    """One reply: `push` each event's new token ids; `stopped` once a stop string ended the text."""

    def __init__(self, codec: TextCodec, params: SamplingParams):
        self.codec, self.params = codec, params
        self.detok = Detokenizer(codec.tokenizer, codec.hidden_ids)
        self.stops = StopStrings(params.stop)

    @property
    def stopped(self) -> bool:
        return self.stops.hit

    def push(self, ids: list[int], finish_reason: str | None) -> Piece:
        ids = self.codec.content(ids, finish_reason, self.params)
        text = self.stops.push(self.detok.push(ids))
        if finish_reason and not self.stops.hit:
            text += self.stops.push(self.detok.flush())
            text += self.stops.flush()
        return Piece(text, "stop" if self.stops.hit else finish_reason)


class TextCodec:
    """An engine folder's tokenizer as the front ends use it."""

    def __init__(self, tokenizer, eos_ids: set[int]):
        self.tokenizer, self.eos_ids = tokenizer, eos_ids
        self.hidden_ids = hidden_token_ids(tokenizer)
        self.vocab_size = len(tokenizer)
        # No token covers more characters than its longest vocabulary entry (byte-level BPE: one
        # character per byte); twice that leaves room for normalizers that shorten text.
        self.max_chars_per_token = 2 * max(len(t) for t in tokenizer.get_vocab())

    @classmethod
    def load(cls, folder: str | Path) -> TextCodec:
        from trtllm_mixquant.engine.tokenizer import load_tokenizer_and_eos

        return cls(*load_tokenizer_and_eos(folder))

    def encode(self, text: str, param: str = "prompt") -> list[int]:
        """Tokens of `text`, without special tokens added (as `LLM` and the servers tokenize)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidRequest(f"{param} is not valid Unicode text: it holds a lone surrogate "
                                 f"({text[e.start:e.end]!a} at character {e.start})", param=param) from None
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]  # lengths: RequestRules

    def check_size(self, num_chars: int, max_tokens: int, param: str = "prompt") -> None:
        """Refuse, without tokenizing, text that cannot fit in `max_tokens` tokens."""
        if num_chars > max_tokens * self.max_chars_per_token:
            raise InvalidRequest(f"{param} has {num_chars} characters, more than the engine's maximum sequence length "
                                 f"of {max_tokens} tokens can hold", param=param)

    def check_ids(self, ids: list[int], param: str = "prompt") -> list[int]:
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise InvalidRequest(f"{param} token ids must be in [0, {self.vocab_size})", param=param)
        return list(ids)

    def content(self, ids: list[int], finish_reason: str | None, params: SamplingParams) -> list[int]:
        """A reply's ids (or its last event's) without the EOS or stop token that ended it."""
        if finish_reason == "stop" and ids and ids[-1] in self.eos_ids | set(params.stop_token_ids):
            return ids[:-1]
        return ids

    def stream(self, params: SamplingParams) -> TextStream:
        return TextStream(self, params)
