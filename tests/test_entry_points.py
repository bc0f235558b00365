"""Spec of the commands `pip install .` gives: agwm-glue and agwm-report are the two experiment
scripts (one implementation in agwm_betty/cli, the scripts are thin wrappers around it)."""
from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

from agwm_betty.cli import agwm_glue, agwm_report

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"agwm-glue": "agwm_betty.cli.agwm_glue:main", "agwm-report": "agwm_betty.cli.agwm_report:main"}
SCRIPTS = {"agwm-glue": ROOT / "experiments" / "glue.py", "agwm-report": ROOT / "experiments" / "report.py"}


def declared_console_scripts() -> dict[str, str]:
    """name -> target of the console scripts in setup.py's setup(entry_points=...)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    return dict(tuple(part.strip() for part in line.split("=")) for line in entry_points["console_scripts"])


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*argv], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_setup_declares_both_commands_and_their_targets_are_callable():
    assert declared_console_scripts() == COMMANDS
    for target in COMMANDS.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_the_installed_package_has_them_as_console_scripts():
    dist = importlib.metadata.distribution("agwm-betty")
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert {name: ep.value for name, ep in scripts.items()} == COMMANDS
    assert scripts["agwm-glue"].load() is agwm_glue.main and scripts["agwm-report"].load() is agwm_report.main


def test_the_experiment_scripts_call_the_same_mains():
    for module, script in ((agwm_glue, SCRIPTS["agwm-glue"]), (agwm_report, SCRIPTS["agwm-report"])):
        assert runpy.run_path(str(script), run_name="imported")["main"] is module.main


def test_each_command_answers_as_its_script_does(tmp_path):
    bin_dir = Path(sys.executable).parent
    command, script = (run(str(bin_dir / "agwm-glue"), "--help"),
                       run(sys.executable, str(SCRIPTS["agwm-glue"]), "--help"))
    assert command.returncode == script.returncode == 0
    assert "--alphas-from" in command.stdout
    same = [" ".join(out.replace(f"usage: {prog} ", "usage: PROG ").split())
            for out, prog in ((command.stdout, "agwm-glue"), (script.stdout, "glue.py"))]
    assert same[0] == same[1]  # the same parser; only the program name (and so the wrapping) differs

    missing = str(tmp_path / "none.jsonl")
    command, script = (run(str(bin_dir / "agwm-report"), missing),
                       run(sys.executable, str(SCRIPTS["agwm-report"]), missing))
    assert command.returncode == script.returncode == 2
    assert command.stderr == script.stderr == f"error: {missing}: no such file\n"


def readme_calls(script: str) -> list[list[str]]:
    """Arguments of each `python experiments/<script>` call in the README's bash blocks."""
    calls = []
    for block in (ROOT / "README.md").read_text(encoding="utf-8").split("```bash")[1:]:
        for line in block.split("```")[0].replace("\\\n", " ").splitlines():
            for command in line.split("&&"):
                words = shlex.split(os.path.expandvars(command), comments=True)
                if f"experiments/{script}" in words:
                    calls.append(words[words.index(f"experiments/{script}") + 1:])
    return calls


def test_the_readme_commands_are_valid_calls_of_todays_scripts(monkeypatch):
    import user_hypergradient

    monkeypatch.setitem(sys.modules, "mymod", user_hypergradient)  # the README's mymod.py is this module
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")  # the SLURM array example, as its 4th task of 16
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "16")
    experiments = readme_calls("glue.py")
    assert experiments and readme_calls("report.py")
    for argv in experiments:  # flags, names and values as the CLI checks them before loading anything
        agwm_glue.experiment_from_args(agwm_glue.build_parser().parse_args(argv)).validate()
    for argv in readme_calls("report.py"):
        agwm_report.parse_args(argv)
