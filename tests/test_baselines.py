"""Spec of the baselines: mixout, r3f, rdrop, reinit, child-tuning-d, dps, lora/prefix/prompt, soup."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from agwm_betty.config import Config
from agwm_betty.core.phases import finetune_phase
from agwm_betty.core.train_loop import decay_groups, predict, task_loss, train_loop
from agwm_betty.data import get_task, load_glue, make_loader, subsample, tokenize
from agwm_betty.methods import FinetuneMethod, RunContext, base, get_method
from agwm_betty.methods.consistency import R3FLoss, RDropLoss, symmetric_kl
from agwm_betty.methods.mixout import MixoutConfig, MixoutLinear, apply_mixout, merge_mixout
from agwm_betty.methods.parameter_efficient import (
    LoRA,
    LoRAConfig,
    PrefixConfig,
    PrefixTuning,
    PromptConfig,
    PromptTuning,
)
from agwm_betty.methods.reinit import ReInit, ReInitConfig, transformer_layers
from agwm_betty.methods.soup import SoupConfig, member_seed
from agwm_betty.methods.subnetwork import (
    ChildTuningConfig,
    ChildTuningD,
    DPSConfig,
    DPSHooks,
    layer_weight_matrices,
    top_fraction,
)
from agwm_betty.metrics.scores import compute_metrics
from synthetic import REGRESSION_SPEC, SPEC, synthetic_task
from tiny_models import ARCHITECTURES, tiny_batch, tiny_model

FAST_ADAPTERS = {"lora": LoRAConfig(lora_lr=1e-2), "prefix": PrefixConfig(prefix_lr=1e-2),
                 "prompt": PromptConfig(prompt_lr=1e-2)}
FAST = dict(epochs=1, progress=False, batch_size=8)
BASELINES = ("mixout", "r3f", "rdrop", "reinit", "child-tuning-d", "dps", "lora", "prefix", "prompt", "soup")


def context(tokenizer, cfg, seed=0, spec=SPEC):
    regression = spec.is_regression
    return RunContext(spec, synthetic_task(48, seed=1, regression=regression),
                      synthetic_task(24, seed=2, regression=regression), tokenizer, cfg, seed=seed,
                      model_factory=lambda: (tiny_model("bert", spec.num_labels).train(), ["classifier"]))


def labelled_batch(regression=False):
    batch = tiny_batch("bert", batch=4)
    batch["labels"] = torch.tensor([0.5, 2.0, 1.0, 0.0]) if regression else torch.tensor([0, 1, 1, 0])
    return batch


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = dict(a.named_parameters()), dict(b.named_parameters())
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- every baseline, end to end


@pytest.mark.parametrize(
    "name, regression",
    [(name, regression) for name in BASELINES for regression in (False, True)
     if not (regression and name == "r3f")],  # r3f declines regression: tested on its own below
)
def test_every_baseline_runs_and_reports_a_finite_metric(tokenizer, name, regression):
    spec = REGRESSION_SPEC if regression else SPEC
    method = get_method(name)
    assert method.applies_to(spec) is None
    cfg = Config(**FAST, methods={"soup": SoupConfig(soup_size=2), "reinit": ReInitConfig(reinit_layers=1)})
    result = method.run(context(tokenizer, cfg, spec=spec))
    assert math.isfinite(result.metric) and -100 <= result.metric <= 100
    assert result.steps["finetune"] == (12 if name == "soup" else 6)
    assert result.alphas is None


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_declares_its_own_hyperparameters(name):
    method = get_method(name)
    own_fields = {f.name for f in dataclasses.fields(method.config_class)}
    assert method.description and set(method.hparams) <= set(Config.field_names()) | own_fields
    assert not own_fields & set(Config.field_names())  # a baseline's options are its own, not the shared config's
    own = {"mixout": "mixout_p", "r3f": "r3f_lambda", "rdrop": "rdrop_alpha", "reinit": "reinit_layers",
           "child-tuning-d": "child_p", "dps": "dps_ur", "lora": "lora_r", "prefix": "num_virtual_tokens",
           "prompt": "num_virtual_tokens", "soup": "soup_size"}[name]
    assert own in method.hparams and own in own_fields


@pytest.mark.parametrize("spec", [SPEC, REGRESSION_SPEC], ids=["classification", "regression"])
def test_evaluation_batches_by_length_and_scores_as_in_the_original_order(tokenizer, spec, monkeypatch):
    ctx = context(tokenizer, Config(**FAST, eval_batch_size=5), spec=spec)
    model = ctx.new_model().eval()
    in_order = predict(model, make_loader(ctx.eval, tokenizer, 5), ctx.cfg)
    expected = compute_metrics(spec, in_order[0].numpy(), in_order[1].numpy())
    scored = []

    def spy(model, loader, cfg):
        scored.extend(len(batch["labels"]) * [batch["input_ids"].shape[1]] for batch in loader)
        return predict(model, loader, cfg)

    monkeypatch.setattr(base, "predict", spy)
    metrics = ctx.evaluate(model)
    widths = [w for batch in scored for w in batch]
    assert widths == sorted(widths) and len(widths) == len(ctx.eval)
    assert metrics.keys() == expected.keys()
    assert metrics == pytest.approx(expected, rel=1e-5)  # float32 sums in another order


# ---------------------------------------------------------------- mixout


def test_mixout_at_p0_trains_exactly_like_vanilla(tokenizer):
    vanilla = get_method("vanilla").run(context(tokenizer, Config(**FAST)))
    at_zero = Config(**FAST, methods={"mixout": MixoutConfig(mixout_p=0.0)})
    mixout = get_method("mixout").run(context(tokenizer, at_zero))
    assert mixout.metrics == vanilla.metrics
    assert states_equal(mixout.model, vanilla.model)


def test_mixout_expected_weight_is_the_task_weight_and_eval_uses_it():
    torch.manual_seed(0)
    base = nn.Linear(8, 6, bias=False)
    layer = MixoutLinear(base, p=0.3)
    with torch.no_grad():
        base.weight.add_(torch.randn_like(base.weight))  # W moved away from W0
    eye = torch.eye(8)
    draws = []
    layer.train()
    for _ in range(4000):
        draws.append(layer(eye).detach().t())  # the effective weight of this forward
    draws = torch.stack(draws)
    swapped = torch.isclose(draws, layer.weight0.expand_as(draws))
    kept = torch.isclose(draws, (layer.weight0 + (base.weight - layer.weight0) / 0.7).detach().expand_as(draws))
    assert (swapped ^ kept).all()  # every entry is either W0 or the rescaled task weight
    assert abs(swapped.float().mean().item() - 0.3) < 0.01
    moved = (base.weight - layer.weight0).abs().detach()
    assert ((draws.mean(0) - base.weight.detach()).abs() / moved).max() < 0.05  # ~5 standard errors
    layer.eval()
    assert torch.equal(layer(eye), base(eye))


def test_mixout_wraps_the_pretrained_linears_not_the_head_and_merges_back():
    model = tiny_model("bert")
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    apply_mixout(model, 0.2, exclude_modules=["classifier"])
    wrapped = {n for n, m in model.named_modules() if isinstance(m, MixoutLinear)}
    assert wrapped == set(linears) - {"classifier"}
    merge_mixout(model)
    assert {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)} == linears


# ---------------------------------------------------------------- r3f, rdrop


def test_r3f_refuses_regression_with_a_reason():
    reason = get_method("r3f").applies_to(REGRESSION_SPEC)
    assert "regression" in reason and "vanilla" in reason
    assert get_method("r3f").applies_to(SPEC) is None


def test_r3f_loss_is_task_loss_plus_lambda_times_symmetric_kl():
    model, batch = tiny_model("bert"), labelled_batch()  # eval mode: no dropout, only the noise differs
    plain = task_loss(model, batch)
    assert torch.equal(R3FLoss(eps=0.0, lam=1.0, noise="normal").loss(model, batch), plain)
    extra = []
    for lam in (1.0, 3.0):
        torch.manual_seed(0)
        extra.append(R3FLoss(eps=0.1, lam=lam, noise="uniform").loss(model, batch) - plain)
    assert extra[0] > 0
    torch.testing.assert_close(extra[1], 3 * extra[0])


def test_r3f_noise_has_the_configured_scale():
    like = torch.zeros(200, 50)
    assert R3FLoss(1e-3, 1.0, "uniform").sample_noise(like).abs().max() <= 1e-3
    assert abs(R3FLoss(1e-3, 1.0, "normal").sample_noise(like).std().item() - 1e-3) < 1e-4


def test_symmetric_kl_is_zero_for_equal_and_positive_for_different_predictions():
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    assert symmetric_kl(a, a).abs() < 1e-7
    assert symmetric_kl(a, b) > 0
    torch.testing.assert_close(symmetric_kl(a, b), symmetric_kl(b, a))


@pytest.mark.parametrize("regression", [False, True], ids=["classification", "regression"])
def test_rdrop_adds_a_nonnegative_consistency_term_to_the_mean_task_loss(regression):
    model, batch = tiny_model("bert", 1 if regression else 2), labelled_batch(regression)
    assert torch.equal(RDropLoss(alpha=1.0).loss(model, batch), task_loss(model, batch))  # no dropout
    model.train()
    torch.manual_seed(0)
    first, second = task_loss(model, batch), task_loss(model, batch)
    torch.manual_seed(0)
    without = RDropLoss(alpha=0.0).loss(model, batch)
    torch.manual_seed(0)
    with_term = RDropLoss(alpha=1.0).loss(model, batch)
    torch.testing.assert_close(without, (first + second) / 2)
    assert with_term > without


# ---------------------------------------------------------------- reinit


EXPECTED_STACKS = {
    "bert": ["bert.encoder.layer.0", "bert.encoder.layer.1"],
    "roberta": ["roberta.encoder.layer.0", "roberta.encoder.layer.1"],
    "deberta": ["deberta.encoder.layer.0", "deberta.encoder.layer.1"],
    "deberta-v2": ["deberta.encoder.layer.0", "deberta.encoder.layer.1"],
    "bart": ["model.encoder.layers.0", "model.decoder.layers.0"],
    "xlnet": ["transformer.layer.0", "transformer.layer.1"],
    "gpt2": ["transformer.h.0", "transformer.h.1"],
    "mpnet": ["mpnet.encoder.layer.0", "mpnet.encoder.layer.1"],
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_transformer_layers_are_found_bottom_to_top_in_every_architecture(arch):
    assert [n for n, _ in transformer_layers(tiny_model(arch))] == EXPECTED_STACKS[arch]


def test_reinit_redraws_exactly_the_pooler_and_top_layers_of_a_loaded_model(tokenizer):
    ctx = context(tokenizer, Config(**FAST, methods={"reinit": ReInitConfig(reinit_layers=1)}))
    model = ctx.new_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # "pretrained" values, unlike any init
            p._is_hf_initialized = True  # as transformers 5 flags every weight it loads
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ReInit().prepare(model, ctx)
    targets = ("bert.encoder.layer.1.", "bert.pooler.")
    for name, p in model.named_parameters():
        if not name.startswith(targets):
            assert torch.equal(p, before[name]), name
        elif "LayerNorm.weight" in name:
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            assert 0.015 < p.std().item() < 0.025 and abs(p.mean().item()) < 0.01, name  # N(0, 0.02^2)
    with pytest.raises(ValueError, match="reinit_layers=3 but the model has 2"):
        ReInit().prepare(model, dataclasses.replace(ctx, cfg=Config(methods={"reinit": ReInitConfig(reinit_layers=3)})))


# ---------------------------------------------------------------- child-tuning-d, dps


def test_top_fraction_keeps_the_top_scores_under_one_global_threshold():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    masks = top_fraction({a: torch.tensor([5.0, 1.0]), b: torch.tensor([4.0, 2.0, 3.0])}, 0.4)
    assert masks[a].tolist() == [True, False] and masks[b].tolist() == [True, False, False]


def test_child_tuning_updates_only_the_selected_parameters(tokenizer):
    cfg = Config(**FAST, lr=1e-3, weight_decay=0.1,
                 methods={"child-tuning-d": ChildTuningConfig(child_p=0.3)})  # large decay: it must not leak
    ctx = context(tokenizer, cfg)
    model = ctx.new_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hooks = ChildTuningD().hooks(model, ctx)
    finetune_phase(model, ctx.train, tokenizer, cfg, seed=ctx.seed, hooks=hooks)
    names = {p: n for n, p in model.named_parameters()}
    kept = moved = total = 0
    for p, (drop, _) in hooks.frozen.items():
        name = names[p]
        assert name.startswith("bert.encoder.layer."), name
        assert torch.equal(p[drop], before[name][drop]), name
        kept, total = kept + (~drop).sum().item(), total + p.numel()
        moved += (p[~drop] != before[name][~drop]).sum().item()
    assert total == sum(p.numel() for n, p in model.named_parameters() if n.startswith("bert.encoder.layer."))
    assert abs(kept / total - 0.3) < 0.01  # one global threshold: some tensors get more, some none
    assert moved > 0.5 * kept
    for name in ("classifier.weight", "bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight"):
        assert not torch.equal(dict(model.named_parameters())[name], before[name]), name  # trained in full


class RecordingDPS(DPSHooks):
    """DPSHooks that also keeps copies of the weights after each step and of the scores it selects by."""

    def __init__(self, *args):
        super().__init__(*args)
        self.after, self.selected_by, self.masks = [], None, None

    def after_backward(self, model, step):
        scores = {w: s.clone() for w, s in self.scores.items()}
        super().after_backward(model, step)
        if self.sparse(step) and step % self.period == 0:
            self.selected_by, self.masks = scores, {p: ~drop for p, (drop, _) in self.frozen.items()}

    def after_step(self, model, step):
        super().after_step(model, step)
        self.after.append({n: p.detach().clone() for n, p in model.named_parameters()})


def test_dps_updates_only_the_selected_entries_of_each_matrix_in_a_sparse_period(tokenizer):
    model = tiny_model("bert").train()
    names = {p: n for n, p in model.named_parameters()}
    weights = layer_weight_matrices(model, context(tokenizer, Config()))
    assert len(weights) == 2 * 6  # query, key, value, attention output, intermediate, output
    hooks = RecordingDPS(weights, 0.3, 2)  # steps 0-1 dense, 2-3 sparse, 4-5 dense
    loader = make_loader(synthetic_task(48), tokenizer, 8, shuffle=True)
    cfg = Config(**FAST, warmup_ratio=0.0)
    train_loop(model, loader, decay_groups(model.named_parameters(), 0.1), cfg, steps=6, lr=1e-3, hooks=hooks)
    dense_end, sparse_end, last = hooks.after[1], hooks.after[3], hooks.after[5]
    for w in weights:
        name, keep = names[w], hooks.masks[w]
        assert abs(keep.float().mean().item() - 0.3) < 0.01, name  # per matrix
        assert torch.equal(keep, top_fraction({w: hooks.selected_by[w]}, 0.3)[w]), name
        assert torch.equal(sparse_end[name][~keep], dense_end[name][~keep]), name
        assert (sparse_end[name][keep] != dense_end[name][keep]).float().mean() > 0.5, name
        assert (last[name][~keep] != sparse_end[name][~keep]).float().mean() > 0.5, name  # dense again
    bias = "bert.encoder.layer.0.attention.self.query.bias"
    assert not torch.equal(sparse_end[bias], dense_end[bias])  # only weight matrices are selected


def test_dps_period_is_the_update_ratio_of_the_run(tokenizer):
    cfg = Config(**{**FAST, "batch_size": 4}, methods={"dps": DPSConfig(dps_ur=0.2)})
    ctx = context(tokenizer, cfg)  # 48 examples: 12 steps
    assert get_method("dps").hooks(ctx.new_model(), ctx).period == 2


# ---------------------------------------------------------------- lora, prefix, prompt


@pytest.mark.parametrize("method", [LoRA(), PrefixTuning(), PromptTuning()], ids=lambda m: m.name)
def test_parameter_efficient_methods_keep_the_plm_frozen(tokenizer, method):
    cfg = Config(**FAST, methods=FAST_ADAPTERS)
    ctx = context(tokenizer, cfg)
    model = method.prepare(ctx.new_model(), ctx)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapter = {"lora": "lora_", "prefix": "prompt_encoder", "prompt": "prompt_encoder"}[method.name]
    assert all(adapter in n or "classifier.modules_to_save" in n for n in trainable), trainable
    assert any("classifier.modules_to_save" in n for n in trainable)
    finetune_phase(model, ctx.train, tokenizer, cfg, seed=0, lr=method.learning_rate(ctx))
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (name in trainable), name


def test_lora_merges_into_a_plain_model_with_the_same_predictions(tokenizer):
    ctx = context(tokenizer, Config(**FAST, methods=FAST_ADAPTERS))
    method = LoRA()
    model = method.prepare(ctx.new_model(), ctx)
    finetune_phase(model, ctx.train, tokenizer, ctx.cfg, seed=0, lr=method.learning_rate(ctx))
    loader = make_loader(ctx.eval, tokenizer, 8)
    adapted, _ = predict(model, loader, ctx.cfg)
    merged = method.finalize(model, ctx)
    assert type(merged).__name__ == "BertForSequenceClassification"
    assert not any("lora" in n or "modules_to_save" in n for n, _ in merged.named_modules())
    torch.testing.assert_close(predict(merged, loader, ctx.cfg)[0], adapted, atol=1e-5, rtol=1e-5)


def test_prefix_tuning_attends_to_the_prefix_and_ignores_padding(tokenizer):
    ctx = context(tokenizer, Config(**FAST))
    model = PrefixTuning().prepare(ctx.new_model(), ctx).eval()
    batch = tiny_batch("bert", batch=2, length=6)
    padded = {k: torch.cat([v, torch.zeros_like(v[:, :3])], dim=1) for k, v in batch.items()}
    logits = model(**batch).logits
    torch.testing.assert_close(model(**padded).logits, logits)
    with torch.no_grad():
        model.peft_model.prompt_encoder["default"].embedding.weight.mul_(3)
    assert not torch.allclose(model(**batch).logits, logits)


@pytest.mark.parametrize("method", [PrefixTuning(), PromptTuning()], ids=lambda m: m.name)
def test_prefix_and_prompt_models_save_as_peft_adapters(tokenizer, tmp_path, method):
    ctx = context(tokenizer, Config(**FAST))
    method.prepare(ctx.new_model(), ctx).save_pretrained(tmp_path)
    assert (tmp_path / "adapter_config.json").exists()


# ---------------------------------------------------------------- soup


def test_soup_weights_are_the_elementwise_mean_of_its_members(tokenizer):
    ctx = context(tokenizer, Config(**FAST, methods={"soup": SoupConfig(soup_size=2)}), seed=3)
    soup = get_method("soup").run(ctx)
    members = [FinetuneMethod().train(dataclasses.replace(ctx, seed=member_seed(3, i)))[0] for i in range(2)]
    assert member_seed(3, 0) == 3 and soup.diagnostics["member_seeds"] == [3, 1003]
    assert not states_equal(*members)
    first, second = (dict(m.named_parameters()) for m in members)
    for name, p in soup.model.named_parameters():
        torch.testing.assert_close(p, (first[name].double() + second[name].double()).div(2).float(),
                                   rtol=0, atol=0)
    assert soup.time["finetune"] > 0


# ---------------------------------------------------------------- MiniLM on real CoLA


@pytest.fixture(scope="module")
def cola(glue_dir, tokenizer):
    data = load_glue("cola", glue_dir)
    spec = get_task("cola")
    return spec, tokenize(subsample(data["train"], 16, 0), tokenizer, spec), \
        tokenize(data["validation"].select(range(16)), tokenizer, spec)


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_takes_two_steps_on_minilm_and_real_cola(cola, tokenizer, name):
    from agwm_betty.models.plm import load_plm

    spec, train, eval_ = cola
    cfg = Config(max_steps=2, batch_size=8, progress=False, methods={
        "soup": SoupConfig(soup_size=2), "prefix": PrefixConfig(num_virtual_tokens=4),
        "prompt": PromptConfig(num_virtual_tokens=4)})
    ctx = RunContext(spec, train, eval_, tokenizer, cfg, seed=0,
                     model_factory=lambda: (lambda m, _, new: (m, new))(*load_plm("minilm", spec.num_labels)))
    result = get_method(name).run(ctx)
    assert math.isfinite(result.metric)
    assert result.steps["finetune"] == (4 if name == "soup" else 2)


@pytest.mark.parametrize("method", [LoRA(), PrefixTuning(), PromptTuning()], ids=lambda m: m.name)
def test_parameter_efficient_methods_train_at_their_own_learning_rate(tokenizer, method):
    """Not at --lr, the full-finetuning rate at which adapters barely move; and a change of a
    method's own rate is a different run, a change of another method's rate is not."""
    def config(rate: float, other_rate: float = 3e-3) -> Config:
        """--lr 1e-5; this method's own rate `rate`, every other adapter method's `other_rate`."""
        methods = {name: cls(**{cls.__name__.replace("Config", "").lower() + "_lr": other_rate})
                   for name, cls in (("lora", LoRAConfig), ("prefix", PrefixConfig), ("prompt", PromptConfig))}
        methods[method.name] = method.config_class(**{method.lr_field: rate})
        return Config(**{**FAST, "lr": 1e-5}, methods=methods)

    assert method.learning_rate(context(tokenizer, config(7e-3))) == 7e-3
    hparams = method.record_hparams(config(7e-3))
    assert hparams[method.lr_field] == 7e-3
    assert method.record_hparams(config(8e-3)) != hparams
    assert method.record_hparams(config(7e-3, other_rate=1.0)) == hparams
