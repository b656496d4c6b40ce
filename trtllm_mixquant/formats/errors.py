"""The one exception type of the formats package."""

from __future__ import annotations

__all__ = ["FormatError"]


class FormatError(ValueError):
    """Bad input to a quantization format: the message says what is wrong and how to fix it."""
