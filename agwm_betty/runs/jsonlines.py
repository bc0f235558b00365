"""JSON-lines files (a user's data, runs.jsonl, curves files): one JSON object a line, read with
errors that name the file and the line."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def read_objects(path: str | Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line; a line that is not a JSON object raises `error`
    naming the file and the line. A leading byte-order mark is skipped."""
    with open(path, encoding="utf-8-sig") as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise error(f"{path}, line {lineno}: not valid JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise error(f"{path}, line {lineno}: expected a JSON object, got {obj!r:.60}")
            yield lineno, obj
