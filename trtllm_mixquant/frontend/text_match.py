"""Finding strings in text that arrives in pieces: partial matches to hold back, and stop strings."""

from __future__ import annotations


def partial_match_len(text: str, needles: tuple[str, ...] | list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `needles` (0 if none).

    That many characters must be held back: the next piece may complete a needle.
    """
    longest = max((len(n) for n in needles), default=0)
    for k in range(min(len(text), longest - 1), 0, -1):
        tail = text[-k:]
        if any(n.startswith(tail) for n in needles):
            return k
    return 0


class StopStrings:
    """Apply OpenAI `stop` strings to streamed text: the text before the first stop string is emitted,
    the stop string and anything after it are not."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.text = ""
        self.sent = 0  # characters of `text` already returned
        self.hit = False

    def push(self, piece: str) -> str:
        """Add a piece; return the text that is now safe to emit. Sets `hit` at the first stop string."""
        if self.hit:
            return ""
        self.text += piece
        hits = [i for s in self.stop if (i := self.text.find(s, self.sent)) >= 0]
        if hits:
            self.hit = True
            end = min(hits)
        else:
            end = len(self.text) - partial_match_len(self.text[self.sent:], self.stop)
        out = self.text[self.sent:end]
        self.sent = end
        return out

    def flush(self) -> str:
        """At the end of the reply: what was held back as a possible start of a stop string."""
        if self.hit:
            return ""
        out = self.text[self.sent:]
        self.sent = len(self.text)
        return out
