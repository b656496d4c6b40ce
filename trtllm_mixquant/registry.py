"""A name -> implementation table whose entries are import paths ("package.module:attribute").

Entries are imported on first use, so registering one costs nothing (no torch import for `--help`),
and a name can be handed to a spawned process as its import path (`target`), which resolves there
without the registration having to be repeated.
"""

from __future__ import annotations

import importlib
from typing import Any


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind, self.entries = kind, dict(entries)

    def register(self, name: str, target: str) -> None:
        """target: "package.module:attribute"."""
        if ":" not in target:
            raise ValueError(f"a {self.kind} is registered as 'package.module:attribute' (got {target!r})")
        self.entries[name] = target

    def target(self, name: str) -> str:
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self.entries))}")
        return self.entries[name]

    def resolve(self, name_or_target: str) -> Any:
        """The implementation of a registered name, or of an import path given directly."""
        target = name_or_target if ":" in name_or_target else self.target(name_or_target)
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)
