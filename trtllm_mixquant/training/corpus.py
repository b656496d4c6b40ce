"""Python source text from a site-packages folder, split by top-level package into train and held-out.

Whole packages are held out, so evaluation text comes from code the model never saw. Files are read in
sorted path order, and anything identical to a held-out file is dropped from training.
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

HELD_OUT_PACKAGES = ("networkx", "sympy")
MIN_FILE_BYTES = 200
MAX_FILE_BYTES = 400_000


@dataclass(frozen=True)
class SourceFile:
    package: str  # top-level package (or module) name under site-packages
    path: Path


@dataclass(frozen=True)
class Corpus:
    """Train and held-out source files; texts are loaded on demand."""

    train: list[SourceFile]
    held_out: list[SourceFile]


def default_site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def list_sources(site_packages: Path) -> list[SourceFile]:
    """Every .py file of a sensible size, sorted by path; dist-info and caches skipped."""
    files = []
    for path in sorted(site_packages.rglob("*.py")):
        rel = path.relative_to(site_packages)
        top = rel.parts[0]
        if top.endswith((".dist-info", ".egg-info", ".data")) or "__pycache__" in rel.parts:
            continue
        if path.is_file() and MIN_FILE_BYTES <= path.stat().st_size <= MAX_FILE_BYTES:
            files.append(SourceFile(top.removesuffix(".py"), path))
    return files


def read_text(source: SourceFile) -> str | None:
    """The file's text, or None if it is not UTF-8."""
    try:
        return source.path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def split_corpus(files: list[SourceFile], held_out: tuple[str, ...] = HELD_OUT_PACKAGES) -> Corpus:
    """Split by package; training files with the same bytes as a held-out file are dropped."""
    def digest(f: SourceFile) -> bytes:
        return hashlib.sha1(f.path.read_bytes()).digest()

    test = [f for f in files if f.package in held_out]
    test_sizes = {f.path.stat().st_size for f in test}
    test_hashes = {digest(f) for f in test}
    train = [f for f in files if f.package not in held_out
             and not (f.path.stat().st_size in test_sizes and digest(f) in test_hashes)]
    return Corpus(train, test)


def sample_texts(files: list[SourceFile], max_bytes: int, seed: int) -> list[str]:
    """Texts of files in a seeded random order until `max_bytes` of UTF-8 are gathered."""
    order = list(files)
    random.Random(seed).shuffle(order)
    texts, total = [], 0
    for source in order:
        if total >= max_bytes:
            break
        text = read_text(source)
        if text:
            texts.append(text)
            total += len(text.encode("utf-8"))
    return texts
