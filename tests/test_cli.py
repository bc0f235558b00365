"""Spec of `experiments/glue.py`: records, resuming after a kill, and clear errors for bad input."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLUE = [sys.executable, str(ROOT / "experiments" / "glue.py")]
TINY = ["--tasks", "cola", "--n", "16", "--seeds", "2", "--methods", "vanilla,agwm", "--max-steps", "1",
        "--K", "1", "--batch-size", "8", "--no-progress"]
REQUIRED = {"task", "n", "method", "seed", "plm", "metric", "metrics", "hparams", "time", "versions", "alphas",
            "run_id"}


def glue(*args, **kwargs):
    return subprocess.run([*GLUE, *args], capture_output=True, text=True, cwd=ROOT, timeout=900, **kwargs)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sweep_survives_kill_resumes_and_then_does_nothing(glue_dir, tmp_path):
    out = tmp_path / "runs"
    runs = out / "runs.jsonl"
    args = [*TINY, "--data-dir", str(glue_dir), "--output", str(out)]
    proc = subprocess.Popen([*GLUE, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and not (runs.exists() and runs.read_text().strip()):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # mid-sweep: after the first record, during the next run
    proc.wait()
    assert len(records(runs)) >= 1

    finished = glue(*args)
    assert finished.returncode == 0, finished.stderr
    recs = records(runs)
    assert sorted((r["seed"], r["method"]) for r in recs) == [(0, "agwm"), (0, "vanilla"), (1, "agwm"), (1, "vanilla")]
    assert len({r["run_id"] for r in recs}) == 4
    subsets = {seed: {r["subset_sha1"] for r in recs if r["seed"] == seed} for seed in (0, 1)}
    assert all(len(s) == 1 for s in subsets.values()) and subsets[0] != subsets[1]  # every arm of a seed, one subset
    for r in recs:
        assert REQUIRED <= set(r)
        assert r["task"] == "cola" and r["n"] == 16 and r["plm"] == "minilm" and r["metric_name"] == "mcc"
        assert -100 <= r["metric"] <= 100 and r["metric"] == r["metrics"]["mcc"]
        assert r["time"]["total"] > 0 and r["steps"]["finetune"] == 1
        assert (r["alphas"] is None) == (r["method"] == "vanilla")
    agwm = next(r for r in recs if r["method"] == "agwm")
    assert set(agwm["alphas"]["per_layer"]) == {f"layer.{i}" for i in range(6)} | {"pooler"}
    assert agwm["hparams"]["K"] == 1 and agwm["hparams"]["hypergradient"] == "darts-paper"

    before = runs.read_bytes()
    again = glue(*args)
    assert again.returncode == 0
    assert "4 run(s) already in" in again.stdout and "0 new run(s)" in again.stdout
    assert runs.read_bytes() == before


def test_changed_hyperparameters_are_new_runs(glue_dir, tmp_path):
    from agwm_betty.config import Config
    from agwm_betty.runs.experiment import Experiment, base_record

    exp = Experiment(tasks=("cola",), methods=("agwm", "vanilla"), seeds=(0,), cfg=Config(K=2))
    other = Experiment(tasks=("cola",), methods=("agwm", "vanilla"), seeds=(0,), cfg=Config(K=3))
    assert base_record(exp, "cola", 0, "agwm")["run_id"] != base_record(other, "cola", 0, "agwm")["run_id"]
    # K does not touch vanilla, so vanilla's record is shared between the two sweeps
    assert base_record(exp, "cola", 0, "vanilla")["run_id"] == base_record(other, "cola", 0, "vanilla")["run_id"]


def test_a_record_made_before_a_field_existed_is_still_the_same_run():
    from agwm_betty.config import Config
    from agwm_betty.methods import setting_defaults
    from agwm_betty.runs.experiment import Experiment, base_record
    from agwm_betty.runs.records import run_id

    exp = Experiment(tasks=("cola",), methods=("agwm",), seeds=(0,), cfg=Config(K=2, hypergradient="darts"))
    record = base_record(exp, "cola", 0, "agwm")
    older = {**record, "hparams": {k: v for k, v in record["hparams"].items() if k != "alpha_param"}}
    assert run_id(older, setting_defaults()) == record["run_id"]
    # a value away from today's default stays in the identity, even where it was once the default
    newer = Experiment(tasks=("cola",), methods=("agwm",), seeds=(0,), cfg=Config(K=2))
    assert base_record(newer, "cola", 0, "agwm")["run_id"] != record["run_id"]
    # the API's epochs=5 is the CLI's epochs=5.0
    ids = {base_record(Experiment(tasks=("cola",), methods=("vanilla",), seeds=(0,), cfg=Config(epochs=e)),
                       "cola", 0, "vanilla")["run_id"] for e in (5, 5.0)}
    assert len(ids) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "colaa"], "unknown task 'colaa'.*cola"),
        (["--methods", "vanila"], "unknown method 'vanila'.*vanilla"),
        (["--plm", "no-such-plm"], "no-such-plm.*bert-large -> bert-large-cased"),
        (["--n", "5000", "--tasks", "rte"], "larger than the rte training set"),
        (["--data-dir", "/nonexistent/glue"], "/nonexistent/glue"),
        (["--K", "0"], "K must be"),
        (["--split-ratio", "1.5"], "split_ratio"),
        (["--hypergradient", "magic"], "unknown hypergradient"),
        (["--train-file", "x.csv"], "also needs --validation-file"),
    ],
)
def test_bad_input_gives_message_and_nonzero_exit_without_traceback(args, message, glue_dir, tmp_path):
    base = ["--data-dir", str(glue_dir)] if "--data-dir" not in args else []
    result = glue(*base, *args, "--output", str(tmp_path), "--no-progress")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    import re

    assert re.search(message, result.stderr, re.S), result.stderr
    assert not (tmp_path / "runs.jsonl").exists()


def test_bad_seeds_are_refused_by_the_parser(tmp_path):
    result = glue("--seeds", "0", "--output", str(tmp_path))
    assert result.returncode == 2 and "--seeds" in result.stderr and "Traceback" not in result.stderr


def test_custom_dataset_runs_through_the_same_protocol(tmp_path, glue_dir):
    train = tmp_path / "mine.csv"
    dev = tmp_path / "mine_dev.csv"
    rows = ["text,label"] + [f"sample number {i} is {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}"
                             for i in range(24)]
    train.write_text("\n".join(rows) + "\n")
    dev.write_text("\n".join(rows[:9]) + "\n")
    out = tmp_path / "out"
    result = glue("--train-file", str(train), "--validation-file", str(dev), "--text-columns", "text",
                  "--label-column", "label", "--methods", "vanilla", "--seeds", "1", "--n", "0",
                  "--max-steps", "1", "--output", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    (record,) = records(out / "runs.jsonl")
    assert record["task"] == "mine" and record["n"] == 0 and record["num_train"] == 24
    assert record["metric_name"] == "accuracy" and record["num_eval"] == 8


def test_a_method_that_does_not_apply_reports_vanilla_with_a_note(tokenizer, monkeypatch):
    import agwm_betty.runs.experiment as experiment
    import agwm_betty.runs.single_run as single_run
    from agwm_betty.config import Config
    from synthetic import REGRESSION_SPEC, synthetic_task
    from tiny_models import tiny_model

    monkeypatch.setattr(single_run, "_factory", lambda plm, spec: (tiny_model("bert", num_labels=1).train(),
                                                                    ["classifier"]))
    exp = experiment.Experiment(methods=("r3f",), seeds=(0,), cfg=Config(max_steps=2, progress=False))
    data = single_run.TaskData(REGRESSION_SPEC, None, synthetic_task(16, seed=2, regression=True))
    record, _ = single_run.run_one(exp, data, synthetic_task(16, regression=True), data.eval, tokenizer,
                                   "synthetic-reg", 0, "r3f")
    assert record["method"] == "r3f" and "vanilla finetuning reported instead" in record["note"]
    assert record["hparams"] == experiment.get_method("r3f").record_hparams(exp.cfg)
    assert record["metric_name"] == "spearman" and record["steps"] == {"finetune": 2}


def test_a_record_names_the_commit_its_code_ran_and_whether_it_was_edited(tmp_path):
    from agwm_betty.runs import versions as module
    from agwm_betty.runs.versions import code_commit, versions

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    edited = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "agwm_betty"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    assert versions()["agwm_betty_commit"] == head + ("-dirty" if edited else "")
    code_commit.cache_clear()
    outside = tmp_path / "not_a_checkout"
    outside.mkdir()
    original = module.__file__
    try:  # the package installed outside any git checkout: no commit claimed
        module.__file__ = str(outside / "runs" / "versions.py")
        assert code_commit() is None
    finally:
        module.__file__ = original
        code_commit.cache_clear()
