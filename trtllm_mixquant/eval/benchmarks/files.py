"""Read a dataset file (JSON, JSON lines or Parquet) into records, and pick fields by any accepted name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trtllm_mixquant.eval.benchmarks.core import DatasetError

Record = dict[str, Any]
_MISSING = object()


def read_records(path: str | Path, schema: str) -> list[Record]:
    """Records of a .json (an array, or JSON lines as BFCL ships them), .jsonl or .parquet file.

    schema: the dataset's expected fields, named in every error message.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (expected a {schema} file: .json, .jsonl or .parquet)")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        records = _read_parquet(path)
    elif suffix in (".json", ".jsonl"):
        records = _read_json(path)
    else:
        raise DatasetError(f"{path}: unknown file type {suffix!r} (expected .json, .jsonl or .parquet)")
    if not records:
        raise DatasetError(f"{path}: no records (expected {schema})")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DatasetError(f"{path}: record {i} is a {type(record).__name__}, not an object with {schema}")
    return records


def _read_json(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None  # not one document: read it as JSON lines
    if data is not None:
        return data if isinstance(data, list) else [data]
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    return records


def _read_parquet(path: Path) -> list[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    return pq.read_table(path).to_pylist()


def pick(record: Record, names: tuple[str, ...], where: str, default: Any = _MISSING) -> Any:
    """The value of the first of `names` the record has, matched case-insensitively.

    Without a default, a record that has none of them raises DatasetError naming `where`.
    """
    by_lower = {key.lower(): value for key, value in record.items()}
    for name in names:
        if name.lower() in by_lower and by_lower[name.lower()] is not None:
            return by_lower[name.lower()]
    if default is not _MISSING:
        return default
    raise DatasetError(f"{where}: no {' / '.join(repr(n) for n in names)} field; the record has {sorted(record)}")
