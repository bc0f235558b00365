"""Spec of the package's foundation: the Betty guard, the PLM registry and the embedded MiniLM."""
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from agwm_betty.core.surgery import apply_mixup, merge_mixup, mixup_layers
from agwm_betty.models.plm import PLM_REGISTRY, PLMError, embedded_model_path, load_plm, load_tokenizer, resolve_plm


@pytest.mark.parametrize("statement", ["from agwm_betty import search_phase", "import agwm_betty.core.problems",
                                       "import agwm_betty.runs.run_log", "import agwm_betty.runs.torchrun"])
def test_importing_the_method_with_an_old_betty_says_how_to_fix_it(tmp_path, statement):
    fake = tmp_path / "betty"
    fake.mkdir()
    (fake / "__init__.py").write_text('__version__ = "0.1.1"\n')
    result = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "0.1.1" in result.stderr
    assert "--ignore-requires-python betty-ml==0.2.1" in result.stderr


@pytest.mark.parametrize("name, expected", [
    ("bert-large", "bert-large-cased"), ("roberta-large", "roberta-large"),
    ("deberta-large", "microsoft/deberta-large"), ("bart-large", "facebook/bart-large"),
    ("xlnet-large", "xlnet-large-cased"), ("some-org/some-model", "some-org/some-model"),
])
def test_registry_resolves_names_and_passes_hub_ids_through(name, expected):
    assert resolve_plm(name) == expected


def test_minilm_resolves_to_the_embedded_model():
    assert resolve_plm("minilm") == str(embedded_model_path())
    assert (embedded_model_path() / "config.json").exists()
    assert set(PLM_REGISTRY) >= {"bert-large", "roberta-large", "deberta-large", "bart-large", "xlnet-large", "minilm"}


def test_unknown_plm_lists_the_registry_without_a_hub_traceback():
    with pytest.raises(PLMError, match="Known names: bert-large -> bert-large-cased"):
        load_tokenizer("certainly-not-a-model-name")


def test_embedded_minilm_with_unit_alphas_equals_the_plain_model_and_merges_back(tmp_path):
    model, tokenizer, new_modules = load_plm("minilm", num_labels=2)
    assert new_modules == ["classifier"]
    model.eval()
    batch = tokenizer(["The cat sat on the mat.", "Colorless green ideas sleep furiously."],
                      return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**batch).logits
    apply_mixup(model, init_std=0.0, exclude_modules=("classifier",))
    assert len(mixup_layers(model)) == 6 * 6 + 1  # six linears per layer, and the pooler
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, expected, rtol=0, atol=0)
    merge_mixup(model).save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-6, rtol=1e-5)


def test_opt_in_mpnet_without_its_setup_says_in_one_line_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("AGWM_CACHE", str(tmp_path))  # an empty cache: nothing assembled
    assert resolve_plm("mpnet-base") == str(tmp_path / "plms" / "all-mpnet-base-v2")
    for load in (load_tokenizer, lambda name: load_plm(name, num_labels=2)):
        with pytest.raises(PLMError) as err:
            load("mpnet-base")
        assert str(err.value) == ("PLM 'mpnet-base' is not installed (opt-in): "
                                  "run bash scripts/setup.sh --plm mpnet-base")


def test_opt_in_mpnet_fails_the_cli_with_exit_2_and_one_line(monkeypatch, tmp_path, capsys):
    from agwm_betty.cli.agwm_glue import main

    monkeypatch.setenv("AGWM_CACHE", str(tmp_path))
    code = main(["--plm", "mpnet-base", "--tasks", "rte", "--n", "8", "--seeds", "1", "--methods", "vanilla",
                 "--output", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: PLM 'mpnet-base' is not installed (opt-in): run bash scripts/setup.sh --plm mpnet-base"]


def test_offline_a_registry_name_is_called_known_and_its_weights_unreachable(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at import; the hub is unreachable
    with pytest.raises(PLMError) as err:
        load_tokenizer("bert-large")
    message = str(err.value)
    assert message.startswith("PLM 'bert-large' is a registry name (bert-large-cased), but its weights are "
                              "neither in the local HF cache nor reachable")
    assert "unknown" not in message and "not a registry name" not in message


def test_mixup_on_mpnet_mixes_attention_q_k_v_o_and_the_ffn_but_not_its_head():
    from agwm_betty.core.surgery import mixup_targets
    from tiny_models import tiny_model

    model = tiny_model("mpnet")
    per_layer = ["attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
                 "intermediate.dense", "output.dense"]
    expected = [f"mpnet.encoder.layer.{i}.{m}" for i in range(2) for m in per_layer]
    assert mixup_targets(model) == expected  # classifier.dense and classifier.out_proj are the new head
    apply_mixup(model)
    assert sorted(mixup_layers(model)) == sorted(expected)
    assert type(model.classifier.dense).__name__ == type(model.classifier.out_proj).__name__ == "Linear"
