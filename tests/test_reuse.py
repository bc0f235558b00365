"""Spec of reusing a search: `--save-alphas` writes each searched alpha beside its record, and
`--alphas-from` runs agwm's finetune phase from it without searching (tiny random BERT)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import agwm_betty.methods.agwm as agwm
import agwm_betty.runs.experiment as experiment
import agwm_betty.runs.single_run as single_run
from agwm_betty.config import Config
from agwm_betty.core import saved_search
from agwm_betty.core.surgery import save_alphas
from agwm_betty.runs import sweep
from agwm_betty.runs.experiment import CustomTask, Experiment
from agwm_betty.runs.single_run import TaskData
from synthetic import SPEC, synthetic_task
from tiny_models import tiny_model

ROOT = Path(__file__).resolve().parents[1]
TASK = CustomTask("unused.csv", "unused.csv", ["text"], "label", name="synthetic")  # data patched in below
CFG = dict(K=2, search_epochs=1, epochs=2, batch_size=8, lr=1e-3, search_lr=1e-3, alpha_lr=0.05, progress=False)


def tiny_plm() -> tuple[torch.nn.Module, list[str]]:
    return tiny_model("bert", num_labels=2).train(), ["classifier"]


@pytest.fixture
def tiny(monkeypatch, tokenizer):
    """Experiments run on a tiny random BERT and an already tokenised synthetic task."""
    monkeypatch.setattr(single_run, "_factory", lambda plm, spec: tiny_plm())
    task = lambda exp, task, tok: TaskData(SPEC, synthetic_task(40, seed=1), synthetic_task(16, seed=9))  # noqa: E731
    for module in (single_run, sweep):
        monkeypatch.setattr(module, "load_task", task)
    monkeypatch.setattr(sweep, "load_tokenizer", lambda plm: tokenizer)
    monkeypatch.setattr(sweep, "subsample", lambda data, n, seed: data.shuffle(seed=seed).select(range(n)))
    monkeypatch.setattr(sweep, "tokenize", lambda data, tok, spec, max_length: data)
    return tokenizer


@pytest.fixture
def finetune_starts(monkeypatch) -> list[dict]:
    """The model state at the start of every finetune phase that agwm runs."""
    starts = []

    def spy(model, *args, **kwargs):
        starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    real = agwm.finetune_phase
    monkeypatch.setattr(agwm, "finetune_phase", spy)
    return starts


def exp(tmp_path: Path, **kw) -> Experiment:
    return Experiment(plm="tiny", custom=TASK, methods=kw.pop("methods", ("agwm",)), n=24, seeds=kw.pop("seeds", (0,)),
                      output=tmp_path / "runs", cfg=Config(**CFG), **kw)


def run(e: Experiment, tokenizer, seed: int = 0):
    """One agwm run of `e` with its record and result (model and saved search)."""
    data = single_run.load_task(e, "synthetic", tokenizer)
    train = sweep.subsample(data.train, e.n, seed)
    return single_run.run_one(e, data, train, data.eval, tokenizer, "synthetic", seed, "agwm")


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_save_alphas_writes_each_searched_alpha_beside_its_record(tiny, tmp_path):
    records = sweep.run_sweep(exp(tmp_path, methods=("vanilla", "agwm"), save_alphas=True), log=lambda *_: None)
    vanilla, searched = sorted(records, key=lambda r: r["method"] != "vanilla")
    assert "alphas_file" not in vanilla  # no alpha, nothing to save
    path = Path(searched["alphas_file"])
    assert path.parent == tmp_path / "runs" / "alphas" and path.is_file()
    saved = saved_search.load(path)
    assert saved.meta == {k: searched[k] for k in ("task", "n", "seed", "plm", "method", "run_id")}
    # the alphas stay fixed in the finetune phase: the saved ones are the run's final ones
    model = tiny_plm()[0]
    from agwm_betty.core.surgery import alpha_summary, apply_mixup

    apply_mixup(model, exclude_modules=("classifier",))
    saved_search.apply(model, saved)
    assert alpha_summary(model)["mean"] == pytest.approx(searched["alphas"]["mean"], abs=1e-7)
    assert saved.task_weights is not None and saved.rng is not None


def test_finetuning_with_a_reused_alpha_gives_the_same_model_as_the_run_that_searched_it(
        tiny, finetune_starts, tmp_path):
    searched_record, searched = run(exp(tmp_path, save_alphas=True), tiny)
    path = single_run.save_search(searched.search, searched_record, tmp_path / "alphas")

    reused_record, reused = run(exp(tmp_path, alphas_from=path, reuse_task_weights=True), tiny)

    searched_start, reused_start = finetune_starts
    assert_same_state(reused_start, searched_start)  # the same seed and searched task weights ...
    assert_same_state(reused.model.state_dict(), searched.model.state_dict())  # ... give the same model
    assert reused_record["metrics"] == searched_record["metrics"]
    assert not torch.equal(reused.model.state_dict()["classifier.weight"], reused_start["classifier.weight"])
    assert "search" not in reused_record["steps"] and "search" not in reused_record["time"]
    assert reused_record["alphas_from"]["task_weights"] is True
    assert reused_record["alphas_from"]["searched_by"] == searched_record["run_id"]
    assert reused_record["run_id"] != searched_record["run_id"]


def test_a_reused_alpha_alone_finetunes_from_the_pretrained_weights(tiny, finetune_starts, tmp_path):
    searched_record, searched = run(exp(tmp_path, save_alphas=True), tiny)
    path = single_run.save_search(searched.search, searched_record, tmp_path / "alphas")
    saved = saved_search.load(path)

    record, result = run(exp(tmp_path, alphas_from=path), tiny)

    start = finetune_starts[1]
    pretrained = tiny_plm()[0].state_dict()
    assert_same_state({k: start[k] for k in pretrained}, pretrained)
    assert_same_state({k: start[k] for k in saved.alphas}, saved.alphas)
    final = result.model.state_dict()
    assert_same_state({k: final[k] for k in saved.alphas}, saved.alphas)  # fixed in the finetune phase
    assert not torch.equal(final["classifier.weight"], pretrained["classifier.weight"])
    assert record["alphas_from"]["task_weights"] is False and record["steps"].keys() == {"finetune"}
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(final[query], searched.model.state_dict()[query])  # W did not start where search left it


def test_a_run_from_a_saved_alpha_is_a_different_run_per_file_and_mode(tiny, tmp_path):
    model = tiny_plm()[0]
    from agwm_betty.core.surgery import apply_mixup

    apply_mixup(model, exclude_modules=("classifier",))
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    saved_search.save(saved_search.capture(model.state_dict(),
                                          {"task": "synthetic", "n": 24, "seed": 0, "plm": "tiny"}), first)
    with torch.no_grad():
        model.bert.encoder.layer[0].attention.self.query.alpha1.mul_(0.5)
    saved_search.save(saved_search.capture(model.state_dict(),
                                          {"task": "synthetic", "n": 24, "seed": 0, "plm": "tiny"}), second)
    ids = {experiment.base_record(exp(tmp_path, **kw), "synthetic", 0, "agwm")["run_id"] for kw in (
        {}, {"alphas_from": first}, {"alphas_from": second}, {"alphas_from": first, "reuse_task_weights": True})}
    assert len(ids) == 4


def test_the_api_save_alphas_file_is_reusable_for_its_alphas_but_has_no_task_weights(tiny, tmp_path):
    model = tiny_plm()[0]
    from agwm_betty.core.surgery import apply_mixup

    apply_mixup(model, exclude_modules=("classifier",))
    save_alphas(model, tmp_path / "alphas.pt")
    e = exp(tmp_path, alphas_from=tmp_path / "alphas.pt")
    assert e.validate() is e
    with pytest.raises(ValueError, match="alphas only"):
        exp(tmp_path, alphas_from=tmp_path / "alphas.pt", reuse_task_weights=True).validate()


@pytest.mark.parametrize("kw, message", [
    (dict(reuse_task_weights=True), "needs --alphas-from"),
    (dict(alphas_from="ALPHAS", methods=("vanilla", "agwm")), "--methods agwm only"),
    (dict(alphas_from="ALPHAS", save_alphas=True), "does none"),
    (dict(alphas_from="ALPHAS", reuse_task_weights=True, seeds=(1,)), "was searched for"),
    (dict(alphas_from="NOT_ALPHAS"), "not a saved alpha"),
    (dict(alphas_from="MISSING"), "no such file"),
])
def test_alphas_from_is_refused_where_it_cannot_mean_what_it_says(kw, message, tmp_path):
    model = tiny_plm()[0]
    from agwm_betty.core.surgery import apply_mixup

    apply_mixup(model, exclude_modules=("classifier",))
    files = {"ALPHAS": tmp_path / "a.pt", "NOT_ALPHAS": tmp_path / "b.pt", "MISSING": tmp_path / "c.pt"}
    saved_search.save(saved_search.capture(model.state_dict(),
                                          {"task": "synthetic", "n": 24, "seed": 0, "plm": "tiny"}),
               files["ALPHAS"])
    torch.save({"weight": torch.zeros(2)}, files["NOT_ALPHAS"])
    if "alphas_from" in kw:
        kw["alphas_from"] = files[kw["alphas_from"]]
    with pytest.raises(ValueError, match=message):
        exp(tmp_path, **kw).validate()


def test_cli_flags_reach_the_experiment_and_a_bad_file_is_one_line(tmp_path):
    from agwm_betty.cli.agwm_glue import build_parser, experiment_from_args

    args = build_parser().parse_args(["--save-alphas", "--output", str(tmp_path)])
    e = experiment_from_args(args)
    assert e.save_alphas and e.alphas_from is None and not e.reuse_task_weights
    e = experiment_from_args(build_parser().parse_args(["--alphas-from", "x.pt", "--reuse-task-weights"]))
    assert e.alphas_from == Path("x.pt") and e.reuse_task_weights and not e.save_alphas

    bad = tmp_path / "bad.pt"
    bad.write_text("not a torch file")
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "glue.py"), "--tasks", "rte", "--seeds", "1",
                           "--alphas-from", str(bad), "--output", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{bad}: not a saved alpha" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_run_keeps_its_searched_state_only_when_asked_to_save_it(tiny, tmp_path):
    _, without = run(exp(tmp_path), tiny)
    _, kept = run(exp(tmp_path, save_alphas=True), tiny)
    assert without.search is None  # no copy of the model's state kept beside it
    assert kept.search is not None and kept.search.alphas and kept.search.task_weights
