"""Spec of `--methods setfit`: SetFit through the setfit library, on the same protocol and records as
every method; refused, with one line, where it cannot run (regression, sentence pairs, no extra)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agwm_betty.data import GLUE_TASKS, TaskSpec
from agwm_betty.methods import get_method

ROOT = Path(__file__).resolve().parents[1]
GLUE = [sys.executable, str(ROOT / "experiments" / "glue.py")]


def glue(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """experiments/glue.py with `args`; with `code`, that Python first, then the CLI's main in-process."""
    if code is None:
        return subprocess.run([*GLUE, *args], capture_output=True, text=True, cwd=ROOT, timeout=900)
    run_main = f"{code}\nfrom agwm_betty.cli.agwm_glue import main\nraise SystemExit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", run_main], capture_output=True, text=True, cwd=ROOT, timeout=900)


def test_it_applies_to_single_sentence_classification_only():
    setfit = get_method("setfit")
    assert setfit.applies_to(GLUE_TASKS["sst2"]) is None and setfit.applies_to(GLUE_TASKS["cola"]) is None
    assert "regression" in setfit.applies_to(GLUE_TASKS["stsb"])
    assert "sentence pairs" in setfit.applies_to(GLUE_TASKS["mrpc"])
    assert "sentence pairs" in setfit.applies_to(GLUE_TASKS["rte"])
    one_column = TaskSpec("mine", ("text_a",), 3, False, "accuracy", ("accuracy",))
    assert setfit.applies_to(one_column) is None


def test_a_tiny_setfit_run_is_recorded_like_any_method(glue_dir, tmp_path):
    done = glue("--tasks", "sst2", "--n", "16", "--heldout", "24", "--seeds", "1", "--methods", "setfit",
                "--setfit-iterations", "1", "--data-dir", str(glue_dir), "--output", str(tmp_path), "--no-progress",
                "--save-models")
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr  # --no-progress: setfit's banners, bars and CPU warnings are off too
    assert not any(noise in said for noise in ("Running training", "Loading weights", "pin_memory", "it/s]"))
    (record,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert record["method"] == "setfit" and record["task"] == "sst2" and record["plm"] == "minilm"
    assert record["num_train"] == 16 and record["num_eval"] == 24 and record["eval_split"] == "heldout24"
    assert record["metric_name"] == "accuracy" and 0 <= record["metric"] <= 100
    assert record["steps"]["finetune"] == 2  # 16 examples x 2 pairs x 1 iteration / batch 16
    assert record["hparams"]["setfit_iterations"] == 1 and record["time"]["total"] > 0
    assert set(record["diagnostics"]["library"]) == {"setfit", "sentence_transformers"}

    from setfit import SetFitModel  # --save-models: setfit's own layout, which predicts the class names

    saved = SetFitModel.from_pretrained(record["model_dir"])
    assert saved.labels == ["negative", "positive"]
    assert set(saved.predict(["a gorgeous, witty film", "a dull, lifeless mess"])) <= {"negative", "positive"}


@pytest.mark.parametrize("task, reason", [("stsb", "regression"), ("mrpc", "sentence pairs")])
def test_regression_and_sentence_pairs_are_refused_before_the_sweep_starts(task, reason, glue_dir, tmp_path):
    done = glue("--tasks", f"sst2,{task}", "--methods", "vanilla,setfit", "--n", "16", "--seeds", "1",
                "--data-dir", str(glue_dir), "--output", str(tmp_path), "--no-progress")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"setfit does not apply to {task}" in done.stderr and reason in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs.jsonl").exists()


def test_a_custom_pair_dataset_is_refused_at_its_first_run(tmp_path):
    rows = ["a,b,label"] + [f"first {i},second {i},{i % 2}" for i in range(12)]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    done = glue("--train-file", str(tmp_path / "pairs.csv"), "--validation-file", str(tmp_path / "pairs.csv"),
                "--text-columns", "a,b", "--label-column", "label", "--methods", "setfit", "--n", "0", "--seeds", "1",
                "--output", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 2 and "setfit does not apply to pairs: " in done.stderr and "Traceback" not in done.stderr


def test_without_the_extra_it_names_the_extra_and_exits_2(glue_dir, tmp_path):
    done = glue("--tasks", "sst2", "--methods", "setfit", "--n", "16", "--seeds", "1", "--data-dir", str(glue_dir),
                "--output", str(tmp_path), "--no-progress",
                code="import sys; sys.modules['setfit'] = None  # as if the extra were not installed")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --methods setfit needs the setfit extra: pip install 'agwm-betty[setfit]'"


def test_under_bf16_the_body_trains_and_embeds_in_bf16_autocast(glue_dir, tmp_path):
    probe = tmp_path / "autocast.txt"
    spy = ("import torch, sentence_transformers\n"
           "forward = sentence_transformers.SentenceTransformer.forward\n"
           "def spy(self, *args, **kwargs):\n"
           f"    open({str(probe)!r}, 'a').write(str(torch.is_autocast_enabled('cpu')) + '\\n')\n"
           "    return forward(self, *args, **kwargs)\n"
           "sentence_transformers.SentenceTransformer.forward = spy")
    done = glue("--tasks", "sst2", "--n", "16", "--heldout", "24", "--seeds", "1", "--methods", "setfit",
                "--setfit-iterations", "1", "--precision", "bf16", "--data-dir", str(glue_dir), "--output",
                str(tmp_path), "--no-progress", code=spy)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = probe.read_text().split()
    assert len(seen) >= 3 and set(seen) == {"True"}  # the contrastive steps, the head's and dev's embeddings
    (record,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert record["hparams"]["precision"] == "bf16" and 0 <= record["metric"] <= 100
