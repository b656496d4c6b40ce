"""The synthetic world behind the tools: table rows (for `lookup`) and report passages (for `search`).

Rows are JSON lines; numbers are written as decimal text so values copy exactly (no float rounding).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from trtllm_mixquant.agent_tasks import vocab
from trtllm_mixquant.agent_tasks.chat_format import to_json

Row = dict[str, str]  # field -> value as written (numbers unquoted, see `format_row`)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}"


def _money(top: int) -> Callable[[random.Random], str]:
    def make(rng: random.Random) -> str:
        cents = rng.randrange(100, top * 100)
        return f"{cents // 100}.{cents % 100:02d}"
    return make


def _integer(lo: int, hi: int, step: int = 1) -> Callable[[random.Random], str]:
    return lambda rng: str(rng.randrange(lo, hi, step))


def _date(rng: random.Random) -> str:
    return f"{rng.randrange(1995, 2025)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


@dataclass(frozen=True)
class Table:
    """A table `lookup` reads: keys like SKU-04213 and named fields, some numeric."""

    name: str
    key_field: str
    key_prefix: str
    key_digits: int
    makers: dict[str, Callable[[random.Random], str]]
    labels: dict[str, str]
    numeric: tuple[str, ...]

    def random_key(self, rng: random.Random) -> str:
        return f"{self.key_prefix}{rng.randrange(10 ** self.key_digits):0{self.key_digits}d}"

    def near_key(self, rng: random.Random, key: str) -> str:
        """A key one digit away from `key` (a distractor that must not be confused with it)."""
        digits = list(key[len(self.key_prefix):])
        i = rng.randrange(len(digits))
        digits[i] = rng.choice([d for d in "0123456789" if d != digits[i]])
        return self.key_prefix + "".join(digits)

    def make_row(self, rng: random.Random, key: str) -> Row:
        return {self.key_field: key, **{field: make(rng) for field, make in self.makers.items()}}

    def format_row(self, row: Row) -> str:
        """One JSON line; numeric fields unquoted."""
        items = [f"{to_json(f)}: {v if f in self.numeric else to_json(v)}" for f, v in row.items()]
        return "{" + ", ".join(items) + "}"


TABLES: dict[str, Table] = {
    "inventory": Table(
        "inventory", "sku", "SKU-", 5,
        {"name": lambda r: f"{r.choice(vocab.ADJECTIVES)} {r.choice(vocab.NOUNS)}", "price": _money(1000),
         "stock": _integer(0, 5000), "warehouse": lambda r: r.choice(vocab.CITIES)},
        {"name": "product name", "price": "unit price", "stock": "stock level", "warehouse": "warehouse"},
        ("price", "stock"),
    ),
    "employees": Table(
        "employees", "id", "EMP-", 4,
        {"name": _person, "department": lambda r: r.choice(vocab.DEPARTMENTS), "salary": _integer(30000, 180000, 50),
         "office": lambda r: r.choice(vocab.CITIES), "extension": _integer(1000, 10000)},
        {"name": "name", "department": "department", "salary": "salary", "office": "office",
         "extension": "phone extension"},
        ("salary", "extension"),
    ),
    "routes": Table(
        "routes", "station", "ST-", 4,
        {"name": lambda r: r.choice(vocab.CITIES), "next": lambda r: f"ST-{r.randrange(10000):04d}",
         "platform": _integer(1, 30)},
        {"name": "name", "next": "next station", "platform": "platform"},
        ("platform",),
    ),
    "accounts": Table(
        "accounts", "account", "ACC-", 6,
        {"owner": _person, "balance": _money(100000), "branch": lambda r: r.choice(vocab.CITIES), "opened": _date},
        {"owner": "owner", "balance": "balance", "branch": "branch", "opened": "opening date"},
        ("balance",),
    ),
}

PROJECT_FIELDS = {"leader": _person, "year": _integer(1985, 2024), "budget": _integer(10000, 10000000),
                  "site": lambda r: r.choice(vocab.CITIES)}
_PASSAGES = (
    "Project {name} began in {year} at the {site} site under {leader}, with a budget of {budget} credits.",
    "Led by {leader}, project {name} started in {year} and was based in {site}; its budget was {budget} credits.",
    "In {year} the {site} office opened project {name}. {leader} led it on a budget of {budget} credits.",
)
_MENTIONS = (
    "Project {name} reused tooling from project {other} after {year}.",
    "Staff from project {other} joined project {name} in {year}.",
)


def random_codename(rng: random.Random) -> str:
    return f"{rng.choice(vocab.CODENAMES)}-{rng.randrange(1, 100)}"


def make_project(rng: random.Random, name: str) -> Row:
    return {"name": name, **{field: make(rng) for field, make in PROJECT_FIELDS.items()}}


def format_passage(rng: random.Random, project: Row) -> str:
    """A report passage stating every field of `project`, with 0 to 2 filler sentences."""
    fillers = rng.sample(vocab.FILLER_SENTENCES, rng.randrange(3))
    return " ".join([rng.choice(_PASSAGES).format(**project), *fillers])


def format_mention(rng: random.Random, name: str, other: str) -> str:
    """A passage that names project `other` in passing but states none of its facts."""
    return rng.choice(_MENTIONS).format(name=name, other=other, year=rng.randrange(1985, 2024))
