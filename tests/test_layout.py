"""Spec of the package's plan (#46): its folders name their roles, no two modules share a name, the
config and the report load without torch or Betty, and every path that moved still imports, warning
where it went."""
from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import agwm_betty
from agwm_betty._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agwm_betty"
FIXED_RECORDS = Path(__file__).with_name("fixtures") / "fixed_sweep.jsonl"


def test_the_top_level_names_the_roles():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert folders == {"core", "runs", "models", "data", "metrics", "methods", "report", "cli"}
    assert modules == {"__init__", "_version", "_moved", "config", "hf_trainer"}
    for folder in folders:  # the package docstring's table names every part
        assert f"`{folder}/`" in agwm_betty.__doc__


def test_no_two_modules_share_a_name():
    stems = [p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"]
    assert sorted({s for s in stems if stems.count(s) > 1}) == []


def run_fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_package_the_config_and_the_report_load_without_torch_or_betty(tmp_path):
    code = f"""
import sys
import agwm_betty
from agwm_betty import Config
Config(hypergradient="darts").validate()
import agwm_betty.report
from agwm_betty.cli.agwm_report import main
main([{str(FIXED_RECORDS)!r}, "--out", {str(tmp_path / 'report')!r}])
assert not hasattr(Config(), "no_such_setting")
heavy = sorted(m for m in ("torch", "betty", "transformers") if m in sys.modules)
print("HEAVY", heavy)
"""
    result = run_fresh(code)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert (tmp_path / "report" / "tables.md").exists()


def test_a_hypergradient_name_is_checked_without_importing_its_module(tmp_path):
    (tmp_path / "loud.py").write_text("raise SystemExit('imported')\n\ndef fn(vector, curr, prev, sync):\n    pass\n")
    result = subprocess.run([sys.executable, "-c", "from agwm_betty.config import Config\n"
                             "Config(hypergradient='loud:fn').validate()\nprint('checked')"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.stdout.strip() == "checked", result.stderr
    from agwm_betty import Config

    with pytest.raises(ValueError, match="cannot import 'no_such_module_here'"):
        Config(hypergradient="no_such_module_here:fn").validate()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_path_still_imports_with_a_warning_naming_its_new_home(old):
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    message = rf"{old.replace('.', '[.]')} moved to {MOVED[old].replace('.', '[.]')}"
    with pytest.warns(DeprecationWarning, match=message):
        module = importlib.import_module(old)
    assert module is new and module.__spec__.name == MOVED[old]


def test_an_old_submodule_read_as_an_attribute_warns_and_works():
    vars(agwm_betty).pop("sweep", None)  # an import of the old path (above) leaves the attribute set
    with pytest.warns(DeprecationWarning, match="agwm_betty.sweep moved to agwm_betty.runs.sweep"):
        module = agwm_betty.sweep
    assert module is importlib.import_module("agwm_betty.runs.sweep")


def test_an_old_path_warns_at_the_user_s_line_under_the_default_filters(tmp_path):
    script = tmp_path / "old_user.py"
    script.write_text("import agwm_betty.jsonlines\nimport agwm_betty\nagwm_betty.paper_tables\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{script}:1: DeprecationWarning: agwm_betty.jsonlines moved to agwm_betty.runs.jsonlines" in result.stderr
    assert f"{script}:3: DeprecationWarning: agwm_betty.paper_tables moved to" in result.stderr


def test_an_old_program_path_still_runs_with_python_dash_m():
    result = subprocess.run([sys.executable, "-W", "default", "-m", "agwm_betty.cli.weights", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "agwm_betty.cli.weights moved to agwm_betty.cli.agwm_weights" in result.stderr


def test_an_old_submodule_of_a_package_still_reads_as_its_attribute():
    import agwm_betty.data
    import agwm_betty.metrics
    import agwm_betty.report

    vars(agwm_betty.report).pop("records", None)  # an import of the old path (above) leaves the attribute set
    vars(agwm_betty.data).pop("glue", None)
    with pytest.warns(DeprecationWarning, match="agwm_betty.report.records moved to agwm_betty.report.selection"):
        assert agwm_betty.report.records is importlib.import_module("agwm_betty.report.selection")
    with pytest.warns(DeprecationWarning, match="agwm_betty.data.glue moved to agwm_betty.data.glue_source"):
        assert agwm_betty.data.glue is importlib.import_module("agwm_betty.data.glue_source")
    assert agwm_betty.metrics.scores is importlib.import_module("agwm_betty.metrics.scores")


def test_every_public_name_resolves_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in [*agwm_betty.__all__, "BETTY_VERSION", "check_betty"]:  # the two are public before 0.3.0
            assert getattr(agwm_betty, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        agwm_betty.no_such_name  # noqa: B018 (the attribute access is the test)


def test_names_that_left_a_split_module_still_import_from_it_with_a_warning():
    from agwm_betty.runs.run_log import RunLog

    with pytest.warns(DeprecationWarning, match="runs.run_log.RunLog"):
        from agwm_betty.runs.curve_files import RunLog as old
    assert old is RunLog
    from agwm_betty.core.signal_probe import SignalProbe

    with pytest.warns(DeprecationWarning, match="core.signal_probe"):
        from agwm_betty.core.hypergradients import SignalProbe as old_probe
    assert old_probe is SignalProbe
    from agwm_betty.runs.single_run import run_one

    with pytest.warns(DeprecationWarning, match="runs.single_run.run_one"):
        from agwm_betty.runs.experiment import run_one as old_run
    assert old_run is run_one
    from agwm_betty.metrics.scores import compute_metrics

    with pytest.warns(DeprecationWarning, match="metrics.scores.compute_metrics"):
        from agwm_betty.metrics import compute_metrics as old_metric
    assert old_metric is compute_metrics


def test_the_code_cites_pages_of_its_docs_that_exist_never_notes_outside_the_repository():
    import re

    sources = {p: p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}
    assert not [p for p, text in sources.items() if "BETTY_NOTES" in text]
    cited = {(page, anchor) for text in sources.values()
             for page, anchor in re.findall(r"docs/([\w/-]+\.md)#([\w-]+)", text)}
    cited |= {("betty.md", anchor) for text in sources.values()
              for anchor in re.findall(r"docs/betty\.md#pitfall-\d and #(pitfall-\d)", text)}
    assert cited
    for page, anchor in sorted(cited):
        assert f"{{#{anchor}}}" in (ROOT / "docs" / page).read_text(encoding="utf-8"), (page, anchor)


def test_every_dotted_name_the_readme_or_the_changelog_gives_still_resolves():
    import re

    named = set()
    for doc in ("README.md", "CHANGELOG.md"):
        named |= set(re.findall(r"agwm_betty(?:\.[A-Za-z_]\w*)+", (ROOT / doc).read_text(encoding="utf-8")))
    assert len(named) > 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # an old path's warning is tested above
        for name in sorted(named):
            parts = name.split(".")
            cut = next(i for i in range(len(parts), 0, -1) if _is_module(".".join(parts[:i])))
            value = importlib.import_module(".".join(parts[:cut]))
            for attribute in parts[cut:]:
                value = getattr(value, attribute)  # AttributeError names what no longer resolves


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
