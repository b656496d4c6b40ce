"""Device names as users give them ("auto", "cpu", "cuda", "cuda:1")."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """"auto" is the first GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
