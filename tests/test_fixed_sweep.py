"""Spec of the package's results under refactoring: the fixed tiny sweep (tests/fixed_sweep.py: eight
methods, two seeds) gives its committed records byte for byte, less versions, times and paths."""
import pytest

import fixed_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_fixed_sweep_gives_its_committed_records_byte_for_byte(tmp_path):
    committed = fixed_sweep.FIXTURE.read_text().splitlines()
    records = [fixed_sweep.stable(r, tmp_path) for r in fixed_sweep.run(tmp_path)]
    assert len(records) == len(committed) == 2 * len(fixed_sweep.METHODS)
    for ours, theirs in zip(records, committed, strict=True):
        assert ours == theirs
