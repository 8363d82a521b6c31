"""Strict JSON for everything the package writes: NaN and infinities become ``null`` (JSON has neither; Python's
``json`` would write the non-standard ``NaN`` that other parsers, the Hub's among them, reject), numpy scalars and
arrays become Python numbers and lists, and the encoder runs with ``allow_nan=False`` so nothing slips through."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

__all__ = ["to_jsonable", "dumps", "dump_json"]


def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts: NaN/inf -> ``None``; numpy (and torch)
    scalars -> Python numbers; arrays -> nested lists; tuples/sets -> lists; paths -> strings; dataclasses -> dicts.
    Mapping keys become strings as ``json`` would make them. Anything else is returned unchanged (and ``json`` then
    raises its usual ``TypeError``)."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {(k if isinstance(k, str) else str(to_jsonable(k))): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    # numpy / torch: arrays and tensors have .tolist(), scalars .item() (both give Python numbers)
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    return obj


def dumps(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``json.dumps`` of :func:`to_jsonable` ``(obj)`` with ``allow_nan=False``."""
    return json.dumps(to_jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=False)


def dump_json(obj: Any, path: str | os.PathLike, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write :func:`dumps` ``(obj)`` (and a final newline) to ``path`` atomically: a temporary file in the same
    folder renamed into place, so a reader never sees half a file. Returns the path."""
    path = Path(path)
    text = dumps(obj, indent=indent, sort_keys=sort_keys) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
