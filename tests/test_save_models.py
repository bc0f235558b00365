"""Spec of `--save-models`: every method's final model is saved where a user loads it without this
package (a plain HF checkpoint, mixup merged; a PEFT adapter for prompt learning), with the task's
class names, and the loaded model scores what its record says."""
import json
from pathlib import Path

import pytest

from agwm_betty.config import Config
from agwm_betty.data import tokenize
from agwm_betty.data.schema import to_dataset
from agwm_betty.data.tasks import ONE_TEXT, TaskSpec
from agwm_betty.methods import METHODS
from agwm_betty.methods.base import RunContext
from agwm_betty.methods.reinit import ReInitConfig
from agwm_betty.methods.soup import SoupConfig
from agwm_betty.runs.experiment import CustomTask, Experiment
from agwm_betty.runs.sweep import run_sweep

PROMPT_LEARNING = ("prefix", "prompt")  # PEFT adapters: a virtual token cannot be merged into the weights
SAVED_AS_HF = [m for m in METHODS if m not in (*PROMPT_LEARNING, "setfit")]  # setfit: tests/test_setfit.py


@pytest.fixture(scope="module")
def tiny_plm_and_data(tmp_path_factory, tokenizer) -> dict:
    """A random 2-layer BERT as a --plm directory, and a two-class dataset whose labels are words."""
    from tiny_models import save_tiny_plm, write_tiny_dataset

    root = tmp_path_factory.mktemp("save")
    save_tiny_plm(root / "plm", tokenizer)
    train, dev = write_tiny_dataset(root, regression=False, dev_rows=14, names=("train.csv", "dev.csv"))
    return {"plm": str(root / "plm"), "train": train, "dev": dev}


def saved_run(data: dict, method: str, output: Path) -> dict:
    needed = METHODS[method].needs_search_of  # mean-alpha: after agwm, from its saved search
    exp = Experiment(plm=data["plm"], custom=CustomTask(str(data["train"]), str(data["dev"]), ["text"], "label"),
                     methods=(needed, method) if needed else (method,), seeds=(0,), n=12, output=output,
                     save_models=True, save_alphas=needed is not None,
                     cfg=Config(K=1, max_steps=2, search_epochs=1, batch_size=4, device="cpu", progress=False,
                                methods={"reinit": ReInitConfig(reinit_layers=1), "soup": SoupConfig(soup_size=2)}))
    (record,) = [r for r in run_sweep(exp, log=lambda *_: None) if r["method"] == method]
    written = [json.loads(line) for line in (output / "runs.jsonl").read_text().splitlines()]
    assert [r["model_dir"] for r in written if r["method"] == method] == [record["model_dir"]]
    return record


def dev_accuracy(model, tokenizer, dev_csv: Path) -> float:
    """The loaded model's accuracy on the dev file, through the package's own evaluation loop."""
    rows = [line.rsplit(",", 1) for line in dev_csv.read_text().splitlines()[1:]]
    label2id = model.config.label2id
    spec = TaskSpec("mine", ONE_TEXT, 2, False, "accuracy", ("accuracy",), ("bad", "good"))
    raw = to_dataset({"text_a": [t for t, _ in rows], "label": [label2id[lab] for _, lab in rows],
                      "idx": list(range(len(rows)))}, spec)
    ctx = RunContext(spec, None, tokenize(raw, tokenizer, spec, 128), tokenizer, Config(device="cpu"), 0, None)
    return ctx.evaluate(model.eval())["accuracy"]


@pytest.mark.parametrize("method", SAVED_AS_HF)
def test_a_saved_model_is_a_plain_hf_checkpoint_with_named_classes_that_scores_its_record(
        method, tiny_plm_and_data, tmp_path, one_torch_thread):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    record = saved_run(tiny_plm_and_data, method, tmp_path)
    directory = Path(record["model_dir"])
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    assert type(model).__module__.startswith("transformers.")  # nothing of agwm_betty or PEFT left in it
    assert not any("alpha" in name or "lora" in name for name, _ in model.named_parameters())
    assert model.config.id2label == {0: "bad", 1: "good"} and model.config.label2id == {"bad": 0, "good": 1}
    accuracy = dev_accuracy(model, AutoTokenizer.from_pretrained(directory), tiny_plm_and_data["dev"])
    assert accuracy == pytest.approx(record["metric"], abs=1e-9)


@pytest.mark.parametrize("method", PROMPT_LEARNING)
def test_prompt_learning_is_saved_as_a_peft_adapter_that_scores_its_record(
        method, tiny_plm_and_data, tmp_path, one_torch_thread):
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    from agwm_betty.methods.parameter_efficient import PrefixTuned

    record = saved_run(tiny_plm_and_data, method, tmp_path)
    directory = Path(record["model_dir"])
    assert (directory / "adapter_config.json").exists() and not (directory / "model.safetensors").exists()
    model = AutoPeftModelForSequenceClassification.from_pretrained(directory)
    model.config.label2id = {"bad": 0, "good": 1}  # an adapter keeps no config of its own: the base model's
    runnable = PrefixTuned(model) if method == "prefix" else model
    runnable.config = model.config
    accuracy = dev_accuracy(runnable, AutoTokenizer.from_pretrained(directory), tiny_plm_and_data["dev"])
    assert accuracy == pytest.approx(record["metric"], abs=1e-9)


def test_the_old_save_model_still_saves_and_says_it_is_deprecated(tmp_path, tokenizer):
    from transformers import AutoModelForSequenceClassification

    from agwm_betty.runs.single_run import save_model
    from tiny_models import tiny_model

    with pytest.warns(DeprecationWarning, match="Method.save|get_method"):
        directory = save_model(tiny_model(), tokenizer, tmp_path / "old")
    assert AutoModelForSequenceClassification.from_pretrained(directory).config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
