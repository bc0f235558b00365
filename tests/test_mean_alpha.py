"""Spec of `--methods mean-alpha`: random-alpha with each layer's alphas set to the means of agwm's
searched ones (same task and seed), and the sweep plumbing that hands agwm's saved search over."""
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from agwm_betty.config import Config
from agwm_betty.core.saved_search import SavedSearch, load
from agwm_betty.core.surgery import alpha_factors, alpha_state_dict, apply_mixup, mixup_layers, module_alpha_means
from agwm_betty.methods import get_method
from agwm_betty.runs import pool
from agwm_betty.runs.experiment import CustomTask, Experiment
from agwm_betty.runs.sweep import run_sweep, sweep_jobs
from tiny_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def searched_alphas(param: str) -> dict[str, torch.Tensor]:
    """A searched agwm's alphas: a pattern inside every layer (spread 0.2 around 0.8)."""
    torch.manual_seed(1)
    model = apply_mixup(tiny_model(), rank=2, init_mean=0.8, init_std=0.2, param=param)
    return alpha_state_dict(model)


@pytest.mark.parametrize("param", ["clamp", "sigmoid"])
def test_each_layer_keeps_agwms_amount_of_mixing_and_loses_its_pattern(param):
    saved = searched_alphas(param)
    agwm = apply_mixup(tiny_model(), rank=2, init_mean=0.8, init_std=0.2, param=param)
    agwm.load_state_dict(saved, strict=False)
    model = apply_mixup(tiny_model(), rank=2, init_mean=1.0, init_std=0.005, param=param)

    said = get_method("mean-alpha").set_alphas(model, SimpleNamespace(searched=SavedSearch(saved)))

    theirs = mixup_layers(agwm)
    assert said["alpha_per_module_from_agwm"] == pytest.approx(module_alpha_means(alpha_factors(agwm)))
    for name, layer in mixup_layers(model).items():
        a, b = layer.mix_coefficients()
        their_a, their_b = theirs[name].mix_coefficients()
        assert torch.allclose(a, a.flatten()[0].expand_as(a), atol=1e-6)  # one constant a layer: no pattern
        assert torch.allclose(b, b.flatten()[0].expand_as(b), atol=1e-6)
        assert a.mean().item() == pytest.approx(their_a.mean().item(), abs=1e-5)  # agwm's amount, both ways
        assert b.mean().item() == pytest.approx(their_b.mean().item(), abs=1e-5)
        assert their_a.std() > 1e-3  # there was a pattern to lose


def test_it_draws_what_random_alpha_draws_so_later_draws_are_random_alphas():
    saved = searched_alphas("clamp")
    states = {}
    for name in ("random-alpha", "mean-alpha"):
        torch.manual_seed(0)
        model = apply_mixup(tiny_model(), rank=2, init_mean=1.0, init_std=0.005)
        get_method(name).set_alphas(model, SimpleNamespace(searched=SavedSearch(saved)))
        states[name] = torch.get_rng_state()
    assert torch.equal(states["random-alpha"], states["mean-alpha"])


def test_without_agwms_search_it_refuses_to_run():
    model = apply_mixup(tiny_model(), rank=1, init_mean=1.0, init_std=0.005)
    with pytest.raises(ValueError, match="agwm's saved search"):
        get_method("mean-alpha").set_alphas(model, SimpleNamespace(searched=None))


def experiment(data: dict, output: Path, **kwargs) -> Experiment:
    options = dict(methods=("mean-alpha", "agwm"), seeds=(0, 1), save_alphas=True)  # listed before agwm on purpose
    options.update(kwargs)
    return Experiment(plm=data["plm"], custom=CustomTask(data["train"], data["dev"], ["text"], "score"), n=12,
                      output=output, cfg=Config(K=1, max_steps=2, search_epochs=1, batch_size=4, device="cpu",
                                                progress=False), **options)


def test_two_workers_run_each_seeds_mean_alpha_from_that_seeds_agwm_search(tiny_regression, tmp_path):
    run_sweep(experiment(tiny_regression, tmp_path, workers=2), log=lambda *_: None)
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    agwm = {r["seed"]: r for r in records if r["method"] == "agwm"}
    mean = {r["seed"]: r for r in records if r["method"] == "mean-alpha"}
    assert sorted(agwm) == sorted(mean) == [0, 1]
    for seed, record in mean.items():
        assert record["search_from"]["searched_by"] == agwm[seed]["run_id"]
        assert record["search_from"]["path"] == agwm[seed]["alphas_file"]
        searched = load(agwm[seed]["alphas_file"])
        factors = {k: v.clamp(0, 1) for k, v in searched.alphas.items()}
        assert record["diagnostics"]["alpha_per_module_from_agwm"] == pytest.approx(module_alpha_means(factors))
        # per layer group, the mean of the effective alpha is agwm's, its spread inside a layer gone
        assert record["alphas"]["per_layer"] == pytest.approx(agwm[seed]["alphas"]["per_layer"], abs=1e-5)
    assert mean[0]["alphas"]["per_layer"] != pytest.approx(mean[1]["alphas"]["per_layer"], abs=1e-7)


def test_it_needs_save_alphas_when_agwm_runs_beside_it(tiny_regression, tmp_path):
    with pytest.raises(ValueError, match="--save-alphas"):
        experiment(tiny_regression, tmp_path, save_alphas=False).validate()


def test_without_agwms_saved_search_the_run_fails_and_says_what_to_run(tiny_regression, tmp_path):
    from agwm_betty.runs.sweep import SweepError

    with pytest.raises(SweepError, match="run agwm with --save-alphas"):
        run_sweep(experiment(tiny_regression, tmp_path, methods=("mean-alpha",), seeds=(0,), save_alphas=False,
                             workers=2), log=lambda *_: None)


def test_a_shard_gets_mean_alpha_right_after_the_agwm_it_needs(tiny_regression, tmp_path):
    exp = experiment(tiny_regression, tmp_path, methods=("vanilla", "mean-alpha", "agwm", "vanilla-matched"),
                     seeds=(0, 1, 2))
    shards = [sweep_jobs(experiment(tiny_regression, tmp_path, methods=exp.methods, seeds=exp.seeds, shard=(i, 2)))
              for i in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(sweep_jobs(exp))  # every run once
    for jobs in shards:
        for position, (task, seed, method) in enumerate(jobs):
            if method == "mean-alpha":
                assert jobs[position - 1] == (task, seed, "agwm")


def wait_for_a_file(job):
    """A pool job: 'first' writes its file late; 'second' fails unless that file is there."""
    path, name = job
    if name == "first":
        time.sleep(1.0)
        Path(path).write_text("ready")
    elif name == "second" and not Path(path).exists():
        raise RuntimeError("started before the job it needs had ended")
    return name


@pytest.mark.parametrize("count", [1, 2])
def test_a_pool_holds_a_job_back_until_the_job_it_needs_has_ended_then_runs_it_before_later_ones(count, tmp_path):
    path = str(tmp_path / "first.txt")
    jobs = [(path, "first"), (path, "second"), (path, "other"), (path, "last")]
    done, failed = [], []
    pool.run_pool(wait_for_a_file, jobs, count, on_done=lambda job, result: done.append(result),
                     on_failed=lambda job, error: failed.append(error), after=[None, 0, None, None])
    assert not failed and sorted(done) == ["first", "last", "other", "second"]
    assert done.index("second") > done.index("first")
    if count == 1:  # released, it goes before the jobs listed after it, not to the end of the list
        assert done == ["first", "second", "other", "last"]
