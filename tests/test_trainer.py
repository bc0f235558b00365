"""Spec of `AGWMTrainer`, the method as a drop-in `transformers.Trainer`: its search is the package's
search phase bit for bit, its finetune phase (the Trainer's own loop) ends where `finetune_phase`
does, its saved model is a plain checkpoint, and a resumed finetune phase does not search again."""
import copy

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, TrainingArguments

from agwm_betty.config import Config
from agwm_betty.core import saved_search
from agwm_betty.core.phases import finetune_phase, search_phase
from agwm_betty.core.surgery import MixupLinear, alpha_parameters, apply_mixup, named_task_parameters, save_alphas
from agwm_betty.hf_trainer import ALPHAS_FILE, SEARCH_FILE, AGWMTrainer
from synthetic import synthetic_task
from tiny_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def training_args(output_dir, **overrides) -> TrainingArguments:
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=8, use_cpu=True, disable_tqdm=True,
                    report_to="none", save_strategy="no", seed=3, logging_steps=5)
    return TrainingArguments(**{**settings, **overrides})


def mixup_model(dropout: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = apply_mixup(tiny_model("bert").train())
    if not dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    return model


def test_the_search_inside_the_trainer_is_search_phase_bit_for_bit(tokenizer, tmp_path):
    data = synthetic_task(24)
    ours, theirs = mixup_model(), mixup_model()
    search_phase(ours, data, tokenizer, Config(K=2, search_epochs=1, diagnostic_points=1, batch_size=8,
                                               device="cpu", progress=False), seed=3)
    trainer = AGWMTrainer(theirs, training_args(tmp_path), train_dataset=data, processing_class=tokenizer,
                          agwm_config=Config(K=2, search_epochs=1, diagnostic_points=1))
    trainer.search()
    want, got = ours.state_dict(), trainer.model.state_dict()
    assert sorted(want) == sorted(got)
    assert all(torch.equal(want[k], got[k]) for k in want)
    start = mixup_model().state_dict()
    assert any(not torch.equal(start[k], got[k]) for k in got if k.endswith(".alpha1"))  # the search moved alpha
    saved = saved_search.load(tmp_path / SEARCH_FILE)  # and left its state where --alphas-from reads it
    assert all(torch.equal(saved.alphas[k], got[k]) for k in saved.alphas)


def test_its_finetune_phase_ends_where_finetune_phase_does(tokenizer, tmp_path):
    """Same alphas, one batch of all 8 examples per step (so the same batches in the same order), no
    dropout, no warmup: the Trainer's loop and `finetune_phase` agree within 1e-5 per weight, 200 times
    below the largest update (2e-3). Not bit for bit: HF's fused AdamW and its loss reduction order the
    same float32 sums differently, and Adam's first steps divide each gradient element by its own size,
    so an element whose gradient is near Adam's eps (1e-8) moves by an amount set by its last bits.
    Measured: 2.0e-6 on one LayerNorm bias element of 20,000 weights, every other tensor below 2.5e-7."""
    data = synthetic_task(8)
    ours = mixup_model(dropout=False)
    with torch.no_grad():
        for p in alpha_parameters(ours):
            p.uniform_(0.3, 1.0)
    theirs, start = copy.deepcopy(ours), copy.deepcopy(ours)
    save_alphas(ours, tmp_path / "alphas.pt")
    finetune_phase(ours, data, tokenizer, Config(lr=1e-3, epochs=3, batch_size=8, warmup_ratio=0.0,
                                                 weight_decay=0.01, device="cpu", progress=False), seed=0)
    args = training_args(tmp_path, num_train_epochs=3, learning_rate=1e-3, weight_decay=0.01, max_grad_norm=1.0)
    trainer = AGWMTrainer(theirs, args, train_dataset=data, processing_class=tokenizer,
                          alphas_from=tmp_path / "alphas.pt")
    assert trainer.train().global_step == 3
    want, got, before = (dict(named_task_parameters(m)) for m in (ours, trainer.model, start))
    assert max((want[k] - before[k]).abs().max() for k in want) > 1e-3
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-5)
    for a, b in zip(alpha_parameters(ours), alpha_parameters(trainer.model), strict=True):
        assert torch.equal(a, b)  # alpha stayed fixed


@pytest.fixture(scope="module")
def trained(tokenizer, tmp_path_factory):
    """A short AGWMTrainer run that writes checkpoints, and the final model's state."""
    out = tmp_path_factory.mktemp("trained")
    args = training_args(out, max_steps=4, save_strategy="steps", save_steps=2, learning_rate=1e-3)
    trainer = AGWMTrainer(mixup_model(dropout=False), args, train_dataset=synthetic_task(24),
                          processing_class=tokenizer, agwm_config=Config(K=1, search_epochs=1, diagnostic_points=0))
    trainer.train()
    return trainer, {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_saved_model_is_a_plain_checkpoint_that_predicts_the_same(trained, tmp_path):
    trainer, _ = trained
    trainer.save_model(str(tmp_path / "final"))
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "final").eval()
    assert not any(isinstance(m, MixupLinear) for m in plain.modules())
    batch = {"input_ids": torch.tensor([[3, 5, 9, 2], [4, 7, 2, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    with torch.no_grad():
        want = trainer.model.eval()(**batch).logits
        got = plain(**batch).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    alphas = saved_search.load(tmp_path / "final" / ALPHAS_FILE).alphas  # beside it, readable by --alphas-from
    assert alphas and all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in alphas.items())


def test_resuming_the_finetune_phase_does_not_search_again(trained, tokenizer, monkeypatch):
    trainer, final = trained
    monkeypatch.setattr("agwm_betty.hf_trainer.search_phase", lambda *a, **k: pytest.fail("searched again"))
    again = AGWMTrainer(mixup_model(dropout=False), trainer.args, train_dataset=synthetic_task(24),
                        processing_class=tokenizer, agwm_config=Config(K=1, search_epochs=1, diagnostic_points=0))
    checkpoint = f"{trainer.args.output_dir}/checkpoint-2"  # halfway: two finetune steps left
    assert again.train(resume_from_checkpoint=checkpoint).global_step == 4
    state = again.model.state_dict()
    for k, v in final.items():
        torch.testing.assert_close(state[k], v, rtol=0, atol=1e-6)


def test_resuming_without_a_saved_search_says_so(tokenizer, tmp_path):
    trainer = AGWMTrainer(mixup_model(), training_args(tmp_path), train_dataset=synthetic_task(8),
                          processing_class=tokenizer)
    with pytest.raises(ValueError, match=SEARCH_FILE):
        trainer.train(resume_from_checkpoint=True)


def test_the_surgery_is_applied_once_from_the_seed(tokenizer, tmp_path):
    plain = tiny_model("bert")
    trainer = AGWMTrainer(plain, training_args(tmp_path), train_dataset=synthetic_task(8), processing_class=tokenizer)
    assert any(isinstance(m, MixupLinear) for m in trainer.model.modules())
    again = AGWMTrainer(tiny_model("bert"), training_args(tmp_path), train_dataset=synthetic_task(8),
                        processing_class=tokenizer)
    for a, b in zip(alpha_parameters(trainer.model), alpha_parameters(again.model), strict=True):
        assert torch.equal(a, b)
    layers = sum(isinstance(m, MixupLinear) for m in trainer.model.modules())
    kept = AGWMTrainer(trainer.model, training_args(tmp_path), train_dataset=synthetic_task(8),
                       processing_class=tokenizer)  # already mixed: left as it is
    assert kept.model is trainer.model and sum(isinstance(m, MixupLinear) for m in kept.model.modules()) == layers


@pytest.mark.parametrize("field, value", [("lr", 1e-4), ("epochs", 5.0), ("batch_size", 32), ("precision", "bf16")])
def test_a_setting_the_training_arguments_own_is_refused_in_agwm_config(field, value, tokenizer, tmp_path):
    with pytest.raises(ValueError, match=f"{field}.*TrainingArguments"):
        AGWMTrainer(tiny_model("bert"), training_args(tmp_path), train_dataset=synthetic_task(8),
                    processing_class=tokenizer, agwm_config=Config(**{field: value}))


def test_a_multi_process_launch_needs_a_saved_search(tokenizer, tmp_path, monkeypatch):
    trainer = AGWMTrainer(tiny_model("bert"), training_args(tmp_path), train_dataset=synthetic_task(8),
                          processing_class=tokenizer)
    monkeypatch.setattr(type(trainer.args), "world_size", property(lambda self: 2))
    with pytest.raises(ValueError, match="one process.*alphas_from"):
        trainer.train()


def test_the_searchs_curves_go_to_the_trainers_report_to(tokenizer, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = training_args(tmp_path, report_to="tensorboard", logging_steps=1)
    trainer = AGWMTrainer(mixup_model(), args, train_dataset=synthetic_task(16), processing_class=tokenizer,
                          agwm_config=Config(K=1, search_epochs=1, diagnostic_points=0))
    trainer.search()
    events = EventAccumulator(str(tmp_path / "tb" / "agwm-search"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert any(t.startswith("search/split0/inner/") for t in tags)
    assert any(t.startswith("search/split0/outer/") for t in tags)
    assert (tmp_path / "curves" / "agwm-search.jsonl").is_file()
