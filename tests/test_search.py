"""Spec of the bi-level search (Betty problems), K-split averaging and the finetune phase."""
import math

import pytest
import torch

from agwm_betty.config import Config
from agwm_betty.core.phases import _split_engine, average_states, finetune_phase, search_phase
from agwm_betty.core.surgery import (
    alpha_parameters,
    alpha_state_dict,
    apply_mixup,
    mixup_layers,
    named_task_parameters,
    task_parameters,
)
from agwm_betty.core.train_loop import DivergenceError, decay_groups, train_loop
from agwm_betty.data import make_loader
from agwm_betty.methods import RunContext, get_method
from synthetic import SPEC, synthetic_task
from tiny_models import tiny_model

FAST = dict(K=2, search_epochs=1, epochs=1, progress=False, batch_size=8)


def mixup_model(seed=0):
    torch.manual_seed(seed)
    return apply_mixup(tiny_model("bert").train())


def clone_params(params):
    return [p.detach().clone() for p in params]


def assert_unchanged(before, after, atol=0.0):
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=atol)


def test_inner_step_never_changes_alphas_and_outer_step_never_changes_task_weights(tokenizer):
    data = synthetic_task(40)
    model = mixup_model()
    cfg = Config(**FAST)
    engine, _ = _split_engine(model, data.select(range(32)), data.select(range(32, 40)), tokenizer, cfg,
                              seed=0, learn_alpha=True, desc="test")
    alphas, task = clone_params(alpha_parameters(model)), clone_params(task_parameters(model))
    w0 = [m.weight0.clone() for m in mixup_layers(model).values()]
    engine.inner.one_step_descent()
    assert_unchanged(alphas, alpha_parameters(model))
    assert any(not torch.equal(b, a) for b, a in zip(task, task_parameters(model), strict=True))

    task = clone_params(task_parameters(model))
    engine.outer.one_step_descent()
    # darts perturbs W by +eps*v, -2eps*v, +eps*v and so restores it up to float round-off
    assert_unchanged(task, task_parameters(model), atol=1e-6)
    assert_unchanged(w0, [m.weight0 for m in mixup_layers(model).values()])
    assert max((b - a).abs().max() for b, a in zip(alphas, alpha_parameters(model), strict=True)) > 1e-5


def pretrained_then_corrupted(tokenizer, data):
    """W0 solves the task; the task weights W of layer 1's feed-forward are then scrambled, so the
    right alphas there go towards 0 (keep the pretrained weight) while other layers may adapt."""
    torch.manual_seed(0)
    model = tiny_model("bert").train()
    cfg = Config(progress=False, batch_size=16, warmup_ratio=0.0)
    loader = make_loader(data, tokenizer, 16, shuffle=True)
    train_loop(model, loader, decay_groups(model.named_parameters(), 0.0), cfg, steps=150, lr=3e-3)
    apply_mixup(model)
    corrupted = ["bert.encoder.layer.1.intermediate.dense", "bert.encoder.layer.1.output.dense"]
    with torch.no_grad():
        for name in corrupted:
            weight = model.get_submodule(name).weight
            weight.copy_(weight[torch.randperm(weight.shape[0])] * 3)
    return model, corrupted


def test_search_falls_outer_loss_and_moves_alphas_towards_pretrained_where_w_is_bad(tokenizer):
    data = synthetic_task(160)
    model, corrupted = pretrained_then_corrupted(tokenizer, data)
    before = alpha_state_dict(model)
    cfg = Config(K=1, search_epochs=6, search_lr=1e-6, alpha_lr=3e-2, warmup_ratio=0.0, progress=False,
                 batch_size=16)
    result = search_phase(model, data, tokenizer, cfg, seed=0)
    outer = result.outer_losses[0]
    assert sum(outer[-5:]) / 5 < 0.8 * sum(outer[:5]) / 5
    after = alpha_state_dict(model)
    moved = {k: (after[k] - before[k]).mean().item() for k in after}
    bad = [moved[f"{n}.alpha1"] for n in corrupted]
    good = [v for k, v in moved.items() if not any(k.startswith(n) for n in corrupted)]
    assert max(bad) < -0.05, moved
    assert max(bad) < min(good), moved


@pytest.mark.parametrize("hypergradient", ["darts", "sama", "neumann", "cg"])
def test_every_hypergradient_runs_and_keeps_alphas_finite_in_unit_interval(tokenizer, hypergradient):
    model = mixup_model()
    cfg = Config(**{**FAST, "K": 1}, hypergradient=hypergradient, alpha_lr=1e-2)
    result = search_phase(model, synthetic_task(32), tokenizer, cfg)
    alphas = torch.cat([p.flatten() for p in alpha_parameters(model)])
    assert torch.isfinite(alphas).all() and alphas.min() >= 0 and alphas.max() <= 1
    assert result.outer_losses[0], "the outer problem never stepped"


def test_unroll_steps_sets_inner_steps_per_outer_step(tokenizer):
    cfg = Config(**{**FAST, "K": 1, "search_epochs": 2}, unroll_steps=2)
    result = search_phase(mixup_model(), synthetic_task(64), tokenizer, cfg)
    assert len(result.inner_losses[0]) == result.steps_per_split == 14
    assert len(result.outer_losses[0]) == 7


def test_k_split_average_is_the_elementwise_mean(tokenizer):
    model = mixup_model()
    result = search_phase(model, synthetic_task(40), tokenizer, Config(**{**FAST, "K": 3}, alpha_lr=1e-2))
    assert len(result.split_alphas) == 3
    assert not torch.equal(*[s["bert.pooler.dense.alpha1"] for s in result.split_alphas[:2]])
    for key, value in alpha_state_dict(model).items():
        expected = sum(s[key].double() for s in result.split_alphas) / 3
        torch.testing.assert_close(value, expected.float())


@pytest.mark.parametrize("keep_state", [True, False])
def test_the_k_average_is_bit_for_bit_average_states_of_the_split_results(tokenizer, monkeypatch, keep_state):
    from agwm_betty.core import phases as search_module
    from agwm_betty.core.phases import snapshot

    model, results, release = mixup_model(), [], search_module.release

    def release_and_keep_the_split_result(engine):  # called once per split, after its engine ran
        release(engine)
        results.append(snapshot(model))

    monkeypatch.setattr(search_module, "release", release_and_keep_the_split_result)
    result = search_phase(model, synthetic_task(40), tokenizer, Config(**{**FAST, "K": 3}, alpha_lr=1e-2),
                          keep_state=keep_state)
    expected = average_states(results)
    assert len(results) == 3 and not torch.equal(results[0]["bert.pooler.dense.weight"],
                                                 results[1]["bert.pooler.dense.weight"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    if keep_state:
        assert result.state.keys() == expected.keys()
        assert all(torch.equal(result.state[k], expected[k]) for k in expected)
    else:
        assert result.state is None


def test_the_search_leaves_no_buffers_in_the_mixup_layers(tokenizer):
    model = mixup_model()
    search_phase(model, synthetic_task(32), tokenizer, Config(**FAST))
    assert all(not layer._mix_buffers.slots for layer in mixup_layers(model).values())


def test_average_states_means_floats_and_keeps_integer_buffers():
    states = [{"w": torch.full((2,), float(i)), "ids": torch.arange(3) + i} for i in range(4)]
    averaged = average_states(states)
    torch.testing.assert_close(averaged["w"], torch.full((2,), 1.5))
    assert torch.equal(averaged["ids"], torch.arange(3))


def test_task_weights_average_is_optional(tokenizer):
    start = mixup_model()
    initial = {n: p.detach().clone() for n, p in named_task_parameters(start)}
    search_phase(start, synthetic_task(40), tokenizer, Config(**FAST, average_task_weights=False))
    for name, p in named_task_parameters(start):
        assert torch.equal(p.detach(), initial[name]), name


def test_finetune_phase_leaves_alphas_bit_identical(tokenizer):
    model = mixup_model()
    with torch.no_grad():
        for p in alpha_parameters(model):
            p.uniform_(0, 1)
    before = alpha_state_dict(model)
    task_before = clone_params(task_parameters(model))
    finetune_phase(model, synthetic_task(32), tokenizer, Config(**FAST))
    after = alpha_state_dict(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not p.requires_grad for p in alpha_parameters(model))
    assert any(not torch.equal(b, a) for b, a in zip(task_before, task_parameters(model), strict=True))


def test_zero_finetune_epochs_evaluate_the_model_as_the_search_left_it(tokenizer):
    searched = get_method("agwm").run(context(tokenizer, Config(**{**FAST, "epochs": 0})))
    assert searched.steps["finetune"] == 0 and searched.steps["search"] > 0
    model = mixup_model()
    state = clone_params(model.parameters())
    assert finetune_phase(model, synthetic_task(32), tokenizer, Config(**{**FAST, "epochs": 0})) == []
    assert all(torch.equal(a, b) for a, b in zip(state, model.parameters(), strict=True))


def context(tokenizer, cfg, seed=0, spec=SPEC, train=None):
    return RunContext(spec, train or synthetic_task(48, seed=1), synthetic_task(24, seed=2), tokenizer, cfg,
                      seed=seed, model_factory=lambda: (tiny_model("bert").train(), ["classifier"]))


def test_same_seed_gives_identical_alphas_and_metrics(tokenizer):
    cfg = Config(**FAST)
    first = get_method("agwm").run(context(tokenizer, cfg))
    second = get_method("agwm").run(context(tokenizer, cfg))
    assert first.metrics == second.metrics
    assert first.alphas == second.alphas
    for (_, a), (_, b) in zip(first.model.named_parameters(), second.model.named_parameters(), strict=True):
        assert torch.equal(a, b)


def test_divergent_search_stops_with_phase_and_step(tokenizer):
    model = mixup_model()
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.fill_(float("nan"))
    with pytest.raises(DivergenceError, match=r"step 1 of the search phase"):
        search_phase(model, synthetic_task(32), tokenizer, Config(**FAST))


def test_divergent_finetune_stops_with_phase_and_step(tokenizer):
    data = synthetic_task(32, regression=True)
    data = data.map(lambda row, i: {"labels": float("nan") if i == 20 else row["labels"]}, with_indices=True)
    model = tiny_model("bert", num_labels=1).train()
    with pytest.raises(DivergenceError, match=r"at step \d+ of the finetune phase"):
        finetune_phase(model, data, tokenizer, Config(**FAST))


@pytest.mark.parametrize(
    "field, value",
    [("K", 0), ("split_ratio", 1.0), ("split_ratio", 0.0), ("lr", -1e-5), ("alpha_lr", -1.0),
     ("search_lr", 0.0), ("hypergradient", "magic"), ("hypergradient", "reinforce"), ("rank", 0)],
)
def test_invalid_config_raises_before_any_training(field, value):
    with pytest.raises(ValueError, match=field if field != "hypergradient" else "hypergradient"):
        Config(**{field: value}).validate()


@pytest.mark.parametrize("method", ["vanilla", "agwm", "joint", "random-alpha", "vanilla-matched"])
def test_every_method_runs_and_reports_its_metric(tokenizer, method):
    result = get_method(method).run(context(tokenizer, Config(**FAST)))
    assert math.isfinite(result.metric) and 0 <= result.metric <= 100
    assert (result.alphas is None) == (method in ("vanilla", "vanilla-matched"))
    if method == "random-alpha":
        assert result.diagnostics["alpha_max_abs_change"] == 0.0
    if method == "joint":
        assert all(0 <= p.min() and p.max() <= 1 for p in alpha_parameters(result.model))


def test_agwm_records_how_each_layers_mean_alpha_moved_in_the_search(tokenizer):
    from agwm_betty.core.surgery import alpha_factors, apply_mixup, module_alpha_means

    cfg = Config(**FAST, alpha_lr=0.05)
    result = get_method("agwm").run(context(tokenizer, cfg))
    start = context(tokenizer, cfg).new_model()  # the same seed draws the same head and alphas
    apply_mixup(start, rank=cfg.rank, init_mean=cfg.alpha_init_mean, init_std=cfg.alpha_init_std,
                exclude_modules=("classifier",))
    before, after = module_alpha_means(alpha_factors(start)), module_alpha_means(alpha_factors(result.model))
    change = result.diagnostics["alpha_change_per_module"]
    assert change.keys() == before.keys()
    assert change == pytest.approx({k: after[k] - before[k] for k in before}, abs=1e-9)
    assert max(abs(v) for v in change.values()) > 1e-4


def test_random_alpha_samples_sigma_and_freezes_alphas(tokenizer):
    result = get_method("random-alpha").run(context(tokenizer, Config(**FAST, sigma=0.45)))
    assert result.alphas["std"] > 0.1
    assert result.diagnostics["alpha_max_abs_change"] == 0.0


def test_vanilla_matched_gets_as_many_task_updates_as_agwm(tokenizer):
    cfg = Config(**FAST)
    agwm = get_method("agwm").run(context(tokenizer, cfg))
    matched = get_method("vanilla-matched").run(context(tokenizer, cfg))
    assert matched.steps == agwm.steps


def test_joint_training_updates_alphas_and_task_weights_together(tokenizer):
    joint, ctx = get_method("joint"), context(tokenizer, Config(**FAST))
    model = joint.prepare(ctx.new_model(), ctx)
    alphas, task = alpha_state_dict(model), clone_params(task_parameters(model))
    finetune_phase(model, ctx.train, tokenizer, ctx.cfg, groups=joint.param_groups(model, ctx),
                   hooks=joint.hooks(model, ctx))
    assert max((alpha_state_dict(model)[k] - v).abs().max() for k, v in alphas.items()) > 1e-4
    assert any(not torch.equal(b, a) for b, a in zip(task, task_parameters(model), strict=True))
    assert all(0 <= p.min() and p.max() <= 1 for p in alpha_parameters(model))


def test_adamw_is_torchs_fused_one_where_parameters_allow_and_betty_can_rebuild_it():
    from agwm_betty.core.train_loop import make_optimizer

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 16))
    opt = make_optimizer([{"params": [w], "weight_decay": 0.01}], lr=1e-2)
    assert opt.defaults["fused"] and opt.defaults["decoupled_weight_decay"]
    assert opt.__class__([w], **opt.defaults).defaults["fused"]  # Betty's patch_optimizer rebuilds it so
    reference = torch.nn.Parameter(w.detach().clone())
    loop = torch.optim.AdamW([reference], lr=1e-2, weight_decay=0.01, foreach=False)
    for _ in range(5):  # the same AdamW update as torch's for-loop one, up to summation order
        grad = torch.randn(16, 16)
        w.grad, reference.grad = grad.clone(), grad.clone()
        opt.step()
        loop.step()
    torch.testing.assert_close(w.detach(), reference.detach(), rtol=1e-5, atol=1e-6)
    complex_param = torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))
    assert not make_optimizer([{"params": [complex_param]}], 1e-3).defaults["fused"]  # no fused kernel


@pytest.mark.parametrize("hypergradient", ["darts-paper", "darts-official"])
def test_skipping_the_gradients_a_backward_does_not_ask_for_changes_no_bit_of_the_search(
        tokenizer, hypergradient, monkeypatch):
    import contextlib

    import agwm_betty.core.fused_kernels as fused_mixup

    cfg = Config(**FAST, alpha_lr=1e-2, hypergradient=hypergradient)
    seen = set()
    backward = fused_mixup.FusedMix._backward

    def spy(ctx, grad):
        seen.add(fused_mixup._wanted)
        return backward(ctx, grad)

    monkeypatch.setattr(fused_mixup.FusedMix, "_backward", staticmethod(spy))
    skipping = mixup_model()
    search_phase(skipping, synthetic_task(32), tokenizer, cfg)
    assert seen == {"task", "alpha", "all"}  # inner step, darts' passes, the outer step (v needs W's)
    for module in ("agwm_betty.core.problems", "agwm_betty.core.hypergradients"):  # every gradient, every pass
        monkeypatch.setattr(f"{module}.gradients_for", lambda group: contextlib.nullcontext())
    seen.clear()
    reference = mixup_model()
    search_phase(reference, synthetic_task(32), tokenizer, cfg)
    assert seen == {"all"}
    for (name, a), (_, b) in zip(skipping.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_gradients_for_gives_the_asked_group_alone_and_refuses_an_unknown_one():
    from agwm_betty.core.fused_kernels import fused_mix, gradients_for

    torch.manual_seed(0)
    w, w0 = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5)
    u, v = torch.rand(6, 1, requires_grad=True), torch.rand(1, 5, requires_grad=True)
    dw, du, dv = torch.autograd.grad(fused_mix(w, w0, u, v, 1, False, False).pow(2).sum(), [w, u, v])
    for group, asked, want in (("task", [w], [dw]), ("alpha", [u, v], [du, dv])):
        with gradients_for(group):
            got = torch.autograd.grad(fused_mix(w, w0, u, v, 1, False, False).pow(2).sum(), asked)
        assert all(torch.equal(g, expected) for g, expected in zip(got, want, strict=True))
    with gradients_for("task"):  # the other group is not computed: None, never a wrong value
        assert torch.autograd.grad(fused_mix(w, w0, u, v, 1, False, False).sum(), [u], allow_unused=True) == (None,)
    with pytest.raises(ValueError, match="unknown gradient group"), gradients_for("both"):
        pass
