"""Spec of the extension point for hypergradients: a user's function joins the built-ins by name
(`register_hypergradient`) or as package.module:function (`--hypergradient`), and everything that
takes a hypergradient name (Config, the search, the signal probe, `alpha_hypergradient`, the CLI
and its record) takes it."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from betty.hypergradient import jvp_fn_mapping

import user_hypergradient
from agwm_betty import Config, apply_mixup, register_hypergradient, search_phase
from agwm_betty.cli.agwm_glue import main as glue_main
from agwm_betty.core import registry as names
from agwm_betty.core.diagnostics import alpha_hypergradient
from agwm_betty.core.hypergradients import BETTY_TYPES, darts_paper, resolve_hypergradient
from synthetic import synthetic_task
from test_hypergradients import SGD, TRAIN, VAL, rel_err, tiny_bert64
from tiny_models import tiny_model
from user_hypergradient import SCALE, scaled_darts

ROOT = Path(__file__).resolve().parents[1]
SPEC = "user_hypergradient:scaled_darts"


@pytest.fixture
def registry():
    """Betty's mapping and our names as they were before the test registered anything."""
    types, mapping, registered = dict(BETTY_TYPES), dict(jvp_fn_mapping), dict(names._registered)
    yield
    for now, before in ((BETTY_TYPES, types), (jvp_fn_mapping, mapping), (names._registered, registered)):
        now.clear()
        now.update(before)


@pytest.mark.parametrize("name", ["scaled-darts", SPEC])
def test_alpha_hypergradient_gives_the_user_function_implicit_term(registry, name):
    if name == "scaled-darts":
        register_hypergradient(name, scaled_darts)
    paper = alpha_hypergradient(tiny_bert64(), TRAIN, VAL, Config(**SGD, hypergradient="darts-paper"))
    got = alpha_hypergradient(tiny_bert64(), TRAIN, VAL, Config(**SGD, hypergradient=name))
    assert rel_err(got["implicit"], {k: SCALE * g for k, g in paper["implicit"].items()}) < 1e-9
    assert rel_err(got["direct"], paper["direct"]) == 0
    assert rel_err(got["total"], {k: got["direct"][k] + got["implicit"][k] for k in got["direct"]}) < 1e-12
    assert max(float(g.abs().max()) for g in got["implicit"].values()) > 0


def tiny_search(tokenizer, hypergradient: str):
    torch.manual_seed(0)
    model = apply_mixup(tiny_model("bert").train())
    cfg = Config(K=1, search_epochs=1, batch_size=8, progress=False, diagnostic_points=2, alpha_lr=1e-2,
                 hypergradient=hypergradient)
    return model, search_phase(model, synthetic_task(40), tokenizer, cfg)


def test_a_search_runs_the_user_function_registered_either_way(registry, tokenizer):
    register_hypergradient("scaled-darts", scaled_darts)
    runs = {name: tiny_search(tokenizer, name) for name in ("scaled-darts", SPEC, "darts-paper")}
    alphas = {name: torch.cat([a.flatten() for a in result.split_alphas[0].values()]) for name, (_, result)
              in runs.items()}
    assert torch.equal(alphas["scaled-darts"], alphas[SPEC])  # one function, two names
    assert not torch.equal(alphas[SPEC], alphas["darts-paper"])  # and not the built-in it scales
    assert ((alphas[SPEC] >= 0) & (alphas[SPEC] <= 1)).all()
    probe = runs[SPEC][1].signal[0]  # the signal probe measured through the user function too
    assert [r["step"] for r in probe] == [1, 4] and all(r["implicit_norm"] > 0 for r in probe)


def test_a_path_is_checked_by_config_validation_and_resolved_where_the_outer_problem_is_built(registry):
    cfg = Config(hypergradient=SPEC).validate()
    assert names.registered(SPEC) is None and not any(k.endswith(SPEC) for k in jvp_fn_mapping)  # checked only
    assert cfg.to_dict()["hypergradient"] == SPEC  # what the record keeps, to run it again
    from agwm_betty.core.problems import problem_configs

    inner, outer = problem_configs(cfg)
    assert inner.type == outer.type == resolve_hypergradient(SPEC)
    assert jvp_fn_mapping[inner.type] is user_hypergradient.scaled_darts is names.registered(SPEC)


def test_registering_the_same_function_again_is_harmless_and_another_one_is_refused(registry):
    register_hypergradient("scaled-darts", scaled_darts)
    register_hypergradient("scaled-darts", scaled_darts)
    with pytest.raises(ValueError, match="already registered"):
        register_hypergradient("scaled-darts", darts_paper)
    assert jvp_fn_mapping[resolve_hypergradient("scaled-darts")] is scaled_darts


@pytest.mark.parametrize("name", ["darts-paper", "darts", "cg", "first-order", "reinforce"])
def test_registering_over_a_built_in_name_raises(registry, name):
    before = jvp_fn_mapping.get(BETTY_TYPES.get(name, name))
    with pytest.raises(ValueError, match="built in"):
        register_hypergradient(name, scaled_darts)
    assert names.registered(name) is None and jvp_fn_mapping.get(BETTY_TYPES.get(name, name)) is before


def test_a_function_without_betty_s_four_arguments_is_refused(registry):
    with pytest.raises(ValueError, match=r"\(vector, curr, prev, sync\)"):
        register_hypergradient("two-args", lambda vector, curr: vector)


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_here:scaled_darts", "cannot import 'no_such_module_here'"),
    ("user_hypergradient:no_such_function", "has no attribute 'no_such_function'"),
    ("user_hypergradient:SCALE", "a float is not callable"),
    ("user_hypergradient.scaled_darts", "unknown hypergradient.*package.module:function"),
    ("user_hypergradient:", "give it as package.module:function"),
])
def test_a_bad_path_is_one_line_on_stderr_and_exit_2(registry, capsys, tmp_path, spec, message):
    assert glue_main(["--hypergradient", spec, "--output", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1, err
    assert not (tmp_path / "runs.jsonl").exists()


def test_the_cli_runs_a_path_from_the_current_directory_and_records_it(glue_dir, tmp_path):
    # cwd = tests/, where the module is: the CLI finds it there, as `python -m` would
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "glue.py"), "--hypergradient", SPEC, "--tasks", "rte",
         "--n", "16", "--seeds", "1", "--methods", "agwm", "--max-steps", "1", "--K", "1", "--batch-size", "8",
         "--epochs", "0", "--no-progress", "--data-dir", str(glue_dir), "--output", str(tmp_path)],
        capture_output=True, text=True, cwd=Path(__file__).parent, timeout=900)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert record["hparams"]["hypergradient"] == SPEC


def test_the_readme_example_is_the_tested_module():
    source = Path(user_hypergradient.__file__).read_text()
    code = source[source.index("from agwm_betty"):]  # the module without its docstring
    readme = (ROOT / "README.md").read_text()
    assert code.strip() in readme
    assert "--hypergradient mymod:scaled_darts" in readme
