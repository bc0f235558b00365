"""Spec of the one JSON-lines reader that user data, runs.jsonl and curves files share."""
from __future__ import annotations

import re

import pytest

from agwm_betty.data import DataError
from agwm_betty.runs.jsonlines import read_objects


def test_objects_come_with_their_line_numbers_skipping_blank_lines_and_a_bom(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"b": 2}\n')
    assert list(read_objects(path)) == [(1, {"a": 1}), (4, {"b": 2})]


@pytest.mark.parametrize("text, said", [('{"a": 1}\nnot json\n', "line 2: not valid JSON"),
                                        ('{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object, got [1, 2]")])
def test_a_bad_line_raises_the_callers_error_naming_file_and_line(tmp_path, text, said):
    path = tmp_path / "x.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"x.jsonl, {said}")):
        list(read_objects(path, error=DataError))
