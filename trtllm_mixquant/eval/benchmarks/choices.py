"""Read the chosen letter out of a multiple-choice reply.

In order: a stated answer ("The correct answer is (C)", "Answer: d", as LongBench v2 asks, with
markdown bold removed), bold letters ("**B**"), a reply that is only a letter, parenthesised letters
("(B)"). Several different letters at the deciding step make the reply ambiguous: None.
"""

from __future__ import annotations

import re


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The chosen letter, upper case; None when the reply names none or is ambiguous."""
    up, low = letters.upper(), letters.lower()
    plain = text.replace("*", "")
    choice = rf"\(([{up}{low}])\)|([{up}])(?![A-Za-z0-9])|([{low}])(?=[.)]?\s*$)"  # (b), B, or a final b
    stated = re.compile(rf"(?i:answer|option|choice)\s*(?i:is|:)\s*:?\s*({choice})", re.MULTILINE)
    matches = list(stated.finditer(plain))
    if matches:
        last = matches[-1]
        alternative = re.match(rf"\s*(?:or|and|/|,)\s*\(?[{up}]\)?(?![A-Za-z0-9])", plain[last.end():])
        return None if alternative else next(g for g in last.groups()[1:] if g).upper()
    for pattern in (rf"\*\*\s*\(?([{up}])\)?[.:)]?\s*\*\*", rf"^\s*\(?([{up}{low}])\)?[.:]?\s*$", rf"\(([{up}])\)"):
        found = {letter.upper() for letter in re.findall(pattern, text)}
        if found:
            return found.pop() if len(found) == 1 else None
    return None
