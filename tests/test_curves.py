"""Spec of a run's curves (agwm_betty.runs.curve_files): the curves file every run writes, TensorBoard through
Betty's logger in the run's own directory, --report-to and --log-every."""
import json
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import agwm_betty.runs.experiment as experiment
import agwm_betty.runs.single_run as single_run
from agwm_betty.config import Config
from agwm_betty.core.surgery import apply_mixup
from agwm_betty.runs import curve_files, run_log
from agwm_betty.runs.curve_files import Curve, read_curves
from agwm_betty.runs.run_log import RunLog, hypergradient_norms
from synthetic import SPEC, synthetic_task
from tiny_models import tiny_model

LOG_EVERY = 2
TINY = dict(K=2, max_steps=4, batch_size=8, log_every=LOG_EVERY, diagnostic_points=0, progress=False)
GROUPS = ("layer.0", "layer.1", "pooler")  # the tiny BERT's mixed layer groups


def tiny_run(root: Path, tokenizer, method: str, report_to: str, **cfg) -> tuple[dict, Path]:
    """One run of `method` on the synthetic task with a tiny BERT, recorded under root/out, its
    working directory root/cwd; returns (record, output folder)."""
    out, cwd = root / "out", root / "cwd"
    cwd.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(single_run, "_factory", lambda plm, spec: (tiny_model("bert").train(), ["classifier"]))
        exp = experiment.Experiment(methods=(method,), seeds=(0,), output=out,
                                    cfg=Config(**{**TINY, **cfg}, report_to=report_to))
        data = single_run.TaskData(SPEC, None, synthetic_task(16, seed=2))
        record, _ = single_run.run_one(exp, data, synthetic_task(40), data.eval, tokenizer, "synthetic", 0, method,
                                       curves=True)
    return record, out


@pytest.fixture(scope="module")
def agwm_tensorboard(tmp_path_factory, tokenizer):
    return tiny_run(tmp_path_factory.mktemp("agwm"), tokenizer, "agwm", "tensorboard")


def scalars(log_dir: Path) -> dict[str, list]:
    """Every scalar series in `log_dir`, read by TensorBoard's own event reader."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


def test_a_tensorboard_run_writes_both_phases_curves_into_its_own_directory(agwm_tensorboard):
    record, out = agwm_tensorboard
    log_dir = out / record["log_dir"]
    assert log_dir == out / "tb" / curve_files.log_name(record) and list(log_dir.glob("events.out.tfevents.*"))
    assert not (out.parent / "cwd" / "betty_tensorboard").exists()  # Betty's default path is never used
    series = scalars(log_dir)
    search_points = record["steps"]["search_per_split"] // LOG_EVERY
    finetune_points = record["steps"]["finetune"] // LOG_EVERY
    assert search_points == finetune_points == 2
    for k in range(2):
        for tag in ("inner/loss", "inner/lr", "outer/loss", "outer/lr", "outer/clamp_share",
                    "outer/hypergradient/direct_norm", "outer/hypergradient/implicit_norm",
                    *(f"outer/alpha/{g}/{stat}" for g in GROUPS for stat in ("mean", "min", "max", "change"))):
            assert [e.step for e in series[f"search/split{k}/{tag}"]] == [2, 4], tag
    for tag in ("finetune/loss", "finetune/lr", "finetune/grad_norm"):
        assert [e.step for e in series[tag]] == [2, 4]
    assert [e.value for e in series["eval/finetune/accuracy"]] == pytest.approx([record["metric"]])
    assert "eval/search/accuracy" in series


def test_the_curves_file_holds_what_tensorboard_shows(agwm_tensorboard):
    record, out = agwm_tensorboard
    assert record["curves_file"] == f"curves/{curve_files.log_name(record)}.jsonl"
    written = read_curves(out / record["curves_file"])
    series = scalars(out / record["log_dir"])
    assert set(written) == set(series)
    for tag, events in series.items():
        steps, values = written[tag]
        assert steps == [e.step for e in events]
        assert values == pytest.approx([e.value for e in events], rel=1e-6)


def test_the_outer_level_logs_what_moved(agwm_tensorboard):
    record, out = agwm_tensorboard
    written = read_curves(out / record["curves_file"])
    _, change = written["search/split0/outer/alpha/layer.0/change"]
    _, low = written["search/split0/outer/alpha/layer.0/min"]
    _, high = written["search/split0/outer/alpha/layer.0/max"]
    assert all(c > 0 for c in change) and all(0 <= a <= b <= 1 for a, b in zip(low, high, strict=True))
    _, implicit = written["search/split0/outer/hypergradient/implicit_norm"]
    assert all(v > 0 for v in implicit)  # darts-paper has an implicit term


def test_every_run_writes_its_curves_file_without_a_logger(tmp_path, tokenizer):
    record, out = tiny_run(tmp_path, tokenizer, "vanilla", "none", max_steps=5)
    written = read_curves(out / record["curves_file"])
    assert written["finetune/loss"][0] == [2, 4] and "finetune/grad_norm" in written
    assert not any(tag.startswith("search/") for tag in written)
    assert "log_dir" not in record and not (out / "tb").exists()
    assert not (tmp_path / "cwd" / "betty_tensorboard").exists()


def test_search_statistics_are_taken_at_log_steps_only(tmp_path, tokenizer, monkeypatch):
    import agwm_betty.core.problems as problems

    calls = []
    original = problems.alpha_curves
    monkeypatch.setattr(problems, "alpha_curves", lambda *a: calls.append(1) or original(*a))
    record, _ = tiny_run(tmp_path, tokenizer, "agwm", "none", K=1, max_steps=5)
    assert record["steps"]["search_per_split"] == 5 and len(calls) == 5 // LOG_EVERY


@pytest.mark.parametrize("report_to", ["tensorboard", "wandb"])
def test_a_missing_extra_exits_2_saying_what_to_install(report_to, monkeypatch, capsys, tmp_path, glue_dir):
    from agwm_betty.cli.agwm_glue import main

    monkeypatch.setitem(sys.modules, report_to, None)  # the package cannot be imported
    code = main(["--tasks", "rte", "--seeds", "1", "--n", "8", "--data-dir", str(glue_dir), "--output",
                 str(tmp_path), "--report-to", report_to, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"pip install 'agwm-betty[{report_to}]'" in err
    assert not (tmp_path / "runs.jsonl").exists()


def test_an_unknown_report_to_is_refused():
    with pytest.raises(ValueError, match="report_to"):
        Config(report_to="mlflow").validate()
    with pytest.raises(ValueError, match="log_every"):
        Config(log_every=0).validate()


def test_a_curve_keeps_at_most_max_points_evenly_spaced_and_its_last():
    curve = Curve(max_points=4)
    for step in range(1, 12):
        curve.add(step, float(step))
    kept = [s for s, _ in curve.kept()]
    assert kept == [1, 5, 9, 11]  # every 4th offered point once full, then the last
    short = Curve(max_points=4)
    for step in (3, 6):
        short.add(step, 0.0)
    assert [s for s, _ in short.kept()] == [3, 6]


def test_hypergradient_norms_split_the_gradient_into_direct_and_implicit_terms():
    direct = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    implicit = [torch.tensor([0.0, 1.0]), torch.tensor([0.0])]
    norms = hypergradient_norms(direct, [d + i for d, i in zip(direct, implicit, strict=True)])
    assert norms["direct_norm"].item() == pytest.approx(5.0) and norms["implicit_norm"].item() == pytest.approx(1.0)


def test_scoped_views_share_one_curves_file(tmp_path):
    log = RunLog(tmp_path, "run")
    log.scoped("search/split0").log({"inner": {"loss": torch.tensor(0.5)}}, step=2)
    log.scoped("finetune").log({"loss": 0.25, "skipped": None}, step=2)
    paths = log.close()
    assert read_curves(tmp_path / paths["curves_file"]) == {
        "finetune/loss": ([2], [0.25]), "search/split0/inner/loss": ([2], [0.5])}


def test_the_report_opens_on_the_outer_level_and_draws_the_curves_beside_old_records(agwm_tensorboard, tmp_path):
    from agwm_betty.cli.agwm_report import main

    record, out = agwm_tensorboard
    old = {k: v for k, v in record.items() if k not in ("curves_file", "log_dir")}  # a record from before curves
    runs = out / "runs.jsonl"
    runs.write_text(json.dumps(record) + "\n" + json.dumps({**old, "seed": 1, "run_id": "older"}) + "\n")
    assert main([str(runs), "--out", str(tmp_path), "--html", "--quiet"]) == 0
    tables = (tmp_path / "tables.md").read_text()
    assert tables.index("## Did the outer level move, and where?") < tables.index("## PLM")
    opening = tables.split("## Did the outer level move, and where?")[1].split("## PLM")[0]
    (row,) = [line for line in opening.splitlines() if line.startswith("| synthetic |")]  # one run had curves
    assert "| agwm | 1 |" in row and any(f"| {group} (" in row for group in GROUPS)
    for figure in ("curves_synthetic_n300_loss.png", "curves_synthetic_n300_alpha.png"):
        assert (tmp_path / figure).is_file() and f"]({figure})" in tables
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64") >= 2 and "alpha curves, synthetic" in page.lower()


def test_a_report_of_records_without_curves_says_so_and_still_has_its_tables(tmp_path):
    from agwm_betty.report import write_report

    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(json.dumps({"task": "rte", "n": 300, "method": m, "seed": s, "metric": 60.0 + s,
                                        "run_id": f"{m}{s}"}) + "\n" for m in ("vanilla", "agwm") for s in (0, 1)))
    tables = write_report([runs], tmp_path)[0].read_text()
    assert "No run here has alpha curves" in tables and "#### Methods per task" in tables
    assert not list(tmp_path.glob("curves_*.png"))


def test_wandb_gets_the_run_directory_its_init_and_every_point(tmp_path, monkeypatch):
    import types

    import betty.logging.logger_wandb as betty_wandb

    calls = {"init": [], "log": [], "finish": 0}
    run = types.SimpleNamespace(finish=lambda: calls.__setitem__("finish", calls["finish"] + 1))
    fake = types.SimpleNamespace(init=lambda **kw: calls["init"].append(kw) or run, log=calls["log"].append)
    monkeypatch.setitem(sys.modules, "wandb", fake)  # W&B's API as Betty's logger calls it, recorded
    monkeypatch.setattr(betty_wandb, "wandb", fake, raising=False)
    monkeypatch.setattr(betty_wandb, "HAS_WANDB", True)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    log = RunLog(tmp_path, "run", report_to="wandb", config={"K": 2})
    log.scoped("finetune").log({"loss": torch.tensor(0.5)}, step=5)
    paths = log.close()
    assert calls["init"] == [dict(dir=str(tmp_path / "wandb" / "run"), name="run", config={"K": 2},
                                  project="agwm-betty")]  # Betty 0.2.1's WandBLogger never calls init
    assert calls["log"] == [{"finetune/loss": 0.5, "global_step": 5}] and calls["finish"] == 1
    assert paths == {"curves_file": "curves/run.jsonl", "log_dir": "wandb/run"}


READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def host_reads_of_a_search(tokenizer, log_every: int | None, tmp_path: Path) -> int:
    """Reads of device values (each one a host sync on a GPU) over a 4-step search of one split."""
    from agwm_betty.core.phases import _split_engine
    from agwm_betty.core.surgery import apply_mixup

    torch.manual_seed(0)
    model = apply_mixup(tiny_model("bert").train())
    data = synthetic_task(40)
    cfg = Config(**{**TINY, "K": 1, "log_every": log_every or 1})
    log = None if log_every is None else RunLog(tmp_path, f"every{log_every}")
    engine, steps = _split_engine(model, data.select(range(32)), data.select(range(32, 40)), tokenizer, cfg,
                                  seed=0, learn_alpha=True, desc="test", log=log)
    assert steps == 4
    count = [0]
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def counted(original):
        def read(self, *args, **kwargs):
            count[0] += 1
            return original(self, *args, **kwargs)
        return read

    with pytest.MonkeyPatch.context() as mp:
        for name, original in originals.items():
            mp.setattr(torch.Tensor, name, counted(original))
        engine.run()
    return count[0]


def test_logging_reads_the_device_only_at_log_steps_once_per_level(tokenizer, tmp_path):
    plain = host_reads_of_a_search(tokenizer, None, tmp_path)
    assert host_reads_of_a_search(tokenizer, 100, tmp_path) == plain  # a log but no log step: nothing more
    extra = host_reads_of_a_search(tokenizer, 2, tmp_path) - plain  # 2 log steps, each level logs at both
    assert 2 <= extra <= 2 * 2  # the outer level's values at least, one transfer per level and log step


def test_alpha_curves_follow_the_model_to_another_device_than_their_start():
    # The start is kept before the model moves (Betty moves it to the GPU after the problem is built);
    # a lent H200 failed every agwm run here. "meta" stands in for the GPU on a CPU-only machine.
    model = tiny_model()
    apply_mixup(model)
    start = run_log.alpha_reference(model)
    model.to("meta")
    groups = run_log.alpha_curves(model, start)
    assert set(groups) == {"layer.0", "layer.1", "pooler"}
