"""Spec of the outer hypergradients: each named form against an exact reference (float64, a tiny
BERT with dropout 0), and the search step against `alpha_hypergradient`."""
import math

import pytest
import torch
from betty.hypergradient import cg as betty_cg
from torch.func import functional_call
from transformers import AutoModelForSequenceClassification, BertConfig

from agwm_betty.config import HYPERGRADIENTS, Config
from agwm_betty.core.diagnostics import alpha_hypergradient
from agwm_betty.core.hypergradients import precondition_020
from agwm_betty.core.phases import build_split_engine
from agwm_betty.core.surgery import alpha_parameters, apply_mixup, named_task_parameters
from agwm_betty.core.train_loop import task_loss


def tiny_bert64(seed: int = 0) -> torch.nn.Module:
    """A float64 BERT with a few hundred parameters per layer, dropout 0, alphas inside (0, 1)."""
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=4, num_hidden_layers=1, num_attention_heads=1, intermediate_size=6,
                        vocab_size=30, max_position_embeddings=16, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, num_labels=2)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager").double().train()
    apply_mixup(model)
    with torch.no_grad():
        for p in alpha_parameters(model):
            p.uniform_(0.3, 0.9)  # away from the clamp, so nothing hides a wrong gradient
    return model


def batch(seed: int, size: int = 6, length: int = 7) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 30, (size, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (size,), generator=g)}


TRAIN, VAL = batch(1), batch(2)
SGD = dict(inner_optimizer="sgd", search_lr=0.05, weight_decay=0.0, warmup_ratio=0.0, search_max_grad_norm=0.0,
           progress=False, diagnostic_points=0)


def cfg(**kw) -> Config:
    return Config(**{**SGD, **kw})


def rel_err(got: dict, want: dict) -> float:
    num = math.sqrt(sum(float((got[k] - want[k]).pow(2).sum()) for k in want))
    den = math.sqrt(sum(float(want[k].pow(2).sum()) for k in want))
    return num / den


def names_of(model, params) -> list[str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id[id(p)] for p in params]


def after_sgd_step(model, lr: float) -> torch.nn.Module:
    """W' = W - lr grad_W L_train(W, alpha), computed here without Betty (eq. 5, lambda_1 = 0)."""
    weights = [p for _, p in named_task_parameters(model)]
    grads = torch.autograd.grad(task_loss(model, TRAIN), weights)
    with torch.no_grad():
        for p, g in zip(weights, grads, strict=True):
            p.sub_(lr * g)
    return model


def exact_terms(model) -> tuple[dict, dict]:
    """At the model's W': the direct term grad_alpha L_val and d/dalpha [grad_W L_train . v], by
    double backward, with v = grad_W L_val (the second-order term of eq. 6 before -eta_w)."""
    weights = [p for _, p in named_task_parameters(model)]
    alphas = alpha_parameters(model)
    keys = names_of(model, alphas)
    val = task_loss(model, VAL)
    direct = torch.autograd.grad(val, alphas, retain_graph=True)
    v = [g.detach() for g in torch.autograd.grad(val, weights)]
    inner_grad = torch.autograd.grad(task_loss(model, TRAIN), weights, create_graph=True)
    mixed = torch.autograd.grad(sum((g * vi).sum() for g, vi in zip(inner_grad, v, strict=True)), alphas)
    return dict(zip(keys, direct, strict=True)), dict(zip(keys, mixed, strict=True))


def test_first_order_total_is_the_direct_term_and_autograd_at_w_prime():
    model = tiny_bert64()
    got = alpha_hypergradient(model, TRAIN, VAL, cfg(hypergradient="first-order"))
    direct, _ = exact_terms(after_sgd_step(tiny_bert64(), 0.05))
    assert rel_err(got["direct"], direct) < 1e-10
    assert rel_err(got["total"], direct) < 1e-10
    assert all(float(g.abs().max()) == 0.0 for g in got["implicit"].values())


@pytest.mark.parametrize("name, scaled_by_lr", [("darts-paper", True), ("darts", False)])
def test_darts_implicit_term_matches_double_backward(name, scaled_by_lr):
    lr = 0.05
    got = alpha_hypergradient(tiny_bert64(), TRAIN, VAL, cfg(hypergradient=name, search_lr=lr))
    direct, mixed = exact_terms(after_sgd_step(tiny_bert64(), lr))
    factor = lr if scaled_by_lr else 1.0
    want = {k: -factor * m for k, m in mixed.items()}
    assert rel_err(got["implicit"], want) < 1e-3
    assert rel_err(got["direct"], direct) < 1e-10
    assert rel_err(got["total"], {k: direct[k] + want[k] for k in want}) < 1e-3


def test_the_model_is_left_as_it_was():
    model = tiny_bert64()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in HYPERGRADIENTS:
        alpha_hypergradient(model, TRAIN, VAL, Config(hypergradient=name, progress=False, diagnostic_points=0))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ---- implicit-function theorem forms against the explicit Hessian at an inner solution

L2 = 0.03  # lambda_1 ||W||^2 in the inner loss makes its Hessian positive definite at the solution


def inner_solution() -> torch.nn.Module:
    """Minimise G(W) = L_train + L2 ||W||^2 to a gradient norm below 1e-6 (full batch, L-BFGS)."""
    model = tiny_bert64()
    weights = [p for _, p in named_task_parameters(model)]
    opt = torch.optim.LBFGS(weights, lr=1, max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-15,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = task_loss(model, TRAIN) + L2 * sum((p * p).sum() for p in weights)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    g = torch.autograd.grad(task_loss(model, TRAIN) + L2 * sum((p * p).sum() for p in weights), weights)
    assert math.sqrt(sum(float(x.pow(2).sum()) for x in g)) < 1e-6
    for p in model.parameters():
        p.grad = None
    return model


@pytest.fixture(scope="module")
def ift_reference():
    """-d2G/(dalpha dW) H^-1 v with H the explicit Hessian of G in the flattened W at W*.

    H comes from torch.autograd.functional.hessian (reverse over reverse): on this model
    torch.func.hessian (forward over reverse) differs from double-backward products by ~1e-3."""
    model = inner_solution()
    named = [(n, p) for n, p in named_task_parameters(model)]
    names, weights = [n for n, _ in named], [p for _, p in named]
    shapes, sizes = [p.shape for p in weights], [p.numel() for p in weights]
    alphas = alpha_parameters(model)

    def unflatten(flat):
        return {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes, strict=True)}

    def inner_loss(flat):
        return functional_call(model, unflatten(flat), kwargs=TRAIN).loss + L2 * flat.pow(2).sum()

    flat = torch.cat([p.detach().flatten() for p in weights])
    H = torch.autograd.functional.hessian(inner_loss, flat)
    eig = torch.linalg.eigvalsh(H)
    assert eig.min() > 0, "the reference needs a positive definite Hessian"
    v = torch.autograd.grad(task_loss(model, VAL), weights)
    x = torch.linalg.solve(H, torch.cat([g.flatten() for g in v]))
    inner_grad = torch.autograd.grad(task_loss(model, TRAIN) + L2 * sum((p * p).sum() for p in weights), weights,
                                     create_graph=True)
    mixed = torch.autograd.grad(sum((g.flatten() * xi).sum()
                                    for g, xi in zip(inner_grad, x.split(sizes), strict=True)), alphas)
    want = {k: -m for k, m in zip(names_of(model, alphas), mixed, strict=True)}
    return model.state_dict(), want, float(eig.min()), float(eig.max()), flat.numel()


def at_solution(state) -> torch.nn.Module:
    model = tiny_bert64()
    model.load_state_dict(state)
    return model


def test_cg_matches_the_exact_implicit_function_hypergradient(ift_reference):
    state, want, lo, hi, n = ift_reference
    # CG is exact after n steps in exact arithmetic; its error after k steps is at most
    # 2 ((sqrt(k) - 1) / (sqrt(k) + 1))^k with k = hi / lo. n steps leave float64 round-off.
    c = cfg(hypergradient="cg", inner_l2=L2, search_lr=1e-12, ift_iterations=n)
    got = alpha_hypergradient(at_solution(state), TRAIN, VAL, c)
    assert rel_err(got["implicit"], want) < 1e-6


def test_neumann_matches_the_exact_implicit_function_hypergradient(ift_reference):
    state, want, lo, hi, _ = ift_reference
    # Neumann with step 1/hi leaves a relative error in H^-1 v of at most (1 - lo / hi)^(K + 1):
    # take K for 1e-4 (about 10^3 Hessian-vector products here) and allow 1e-3 after the cross term.
    iterations = math.ceil(math.log(1e-4) / math.log(1 - lo / hi))
    c = cfg(hypergradient="neumann", inner_l2=L2, search_lr=1e-12, ift_iterations=iterations, ift_alpha=1 / hi)
    got = alpha_hypergradient(at_solution(state), TRAIN, VAL, c)
    assert rel_err(got["implicit"], want) < 1e-3


def test_betty_021_cg_misses_the_reference_which_is_why_ours_replaces_it(ift_reference, monkeypatch):
    from betty.hypergradient import jvp_fn_mapping

    from agwm_betty.core.hypergradients import BETTY_TYPES

    state, want, lo, hi, n = ift_reference
    # 60 steps: CG's bound 2 ((sqrt(k) - 1) / (sqrt(k) + 1))^60 is below 1e-2 for k = hi / lo here
    assert 2 * ((math.sqrt(hi / lo) - 1) / (math.sqrt(hi / lo) + 1)) ** 60 < 1e-2
    c = cfg(hypergradient="cg", inner_l2=L2, search_lr=1e-12, ift_iterations=60)
    ours = alpha_hypergradient(at_solution(state), TRAIN, VAL, c)
    monkeypatch.setitem(jvp_fn_mapping, BETTY_TYPES["cg"], betty_cg)
    betty = alpha_hypergradient(at_solution(state), TRAIN, VAL, c)
    assert rel_err(ours["implicit"], want) < 1e-2
    assert not rel_err(betty["implicit"], want) < 1e-2


# ---- the search step applies exactly that gradient


@pytest.mark.parametrize("name", HYPERGRADIENTS)
def test_one_search_step_applies_the_alpha_update_of_alpha_hypergradient(name):
    # alpha_eps = 1 makes Adam's first step ~ lr * g rather than lr * sign(g), so the comparison sees
    # magnitudes; one step in all means the inner lr is 0 after the schedule's step, so darts-paper
    # passes only if it scales by the lr of the step taken (what alpha_hypergradient sees).
    c = Config(hypergradient=name, warmup_ratio=0.0, alpha_lr=1e-2, alpha_eps=1.0, progress=False,
               diagnostic_points=0, ift_iterations=3, ift_alpha=0.1)
    got = alpha_hypergradient(tiny_bert64(), TRAIN, VAL, c)

    model = tiny_bert64()
    keys = names_of(model, alpha_parameters(model))
    expected = {k: p.detach().clone().requires_grad_() for k, p in zip(keys, alpha_parameters(model), strict=True)}
    opt = torch.optim.AdamW(list(expected.values()), lr=c.alpha_lr, betas=(c.alpha_beta1, c.alpha_beta2),
                            eps=c.alpha_eps, weight_decay=c.alpha_weight_decay)
    for k, p in expected.items():
        p.grad = got["total"][k].clone()
    opt.step()

    engine = build_split_engine(model, [dict(TRAIN)], [dict(VAL)], c, steps=1)
    engine.run()
    applied = dict(zip(keys, alpha_parameters(model), strict=True))
    for k in keys:
        torch.testing.assert_close(applied[k].detach(), expected[k].detach().clamp(0, 1), rtol=1e-9, atol=1e-12)
    assert max(float((applied[k] - tiny_bert64().get_parameter(k)).abs().max()) for k in keys) > 1e-6


# ---- the official code's form


def test_official_preconditioning_divides_each_tensor_by_its_bias_corrected_adam_rms():
    model = tiny_bert64()
    c = Config(hypergradient="darts-official", warmup_ratio=0.0, progress=False, diagnostic_points=0)
    engine = build_split_engine(model, [dict(TRAIN)] * 3, [dict(VAL)], c, steps=3, learn_alpha=False)
    for _ in range(3):
        engine.inner.one_step_descent()
    weights = engine.inner.trainable_parameters()
    vector = [torch.ones_like(p) for p in weights]
    got = precondition_020(vector, engine.inner)
    for p, g in zip(weights, got, strict=True):
        state = engine.inner.optimizer.state[p]
        rms = math.sqrt(float((0.999 * state["exp_avg_sq"]).mean()))
        assert float(state["step"]) == 3
        torch.testing.assert_close(g, torch.full_like(p, math.sqrt(1 - 0.999 ** 3) / (rms + 1e-8)))


def test_official_form_leaves_w_moved_by_the_radius_and_paper_form_restores_it():
    moved = {}
    for name in ("darts-paper", "darts-official"):
        model = tiny_bert64()
        engine = build_split_engine(model, [dict(TRAIN)], [dict(VAL)], Config(hypergradient=name, warmup_ratio=0.0,
                                    progress=False, diagnostic_points=0), steps=1)
        engine.run()
        moved[name] = torch.cat([p.detach().flatten() for _, p in named_task_parameters(model)])
    assert abs(float((moved["darts-official"] - moved["darts-paper"]).norm()) - 0.01) < 1e-6


# ---- presets and the official code's other departures


def test_official_preset_sets_each_departure_and_explicit_values_win():
    official = Config.preset("official")
    assert (official.hypergradient, official.repeat_inner_step, official.search_max_grad_norm,
            official.alpha_weight_decay, official.alpha_schedule, official.K) == \
        ("darts-official", True, 5.0, 0.0, "cosine", 5)
    assert Config.preset("paper") == Config()
    assert Config.preset("official", K=2).K == 2


def test_unknown_preset_or_hypergradient_is_one_line_naming_the_valid_ones():
    with pytest.raises(ValueError, match="choose from paper, official"):
        Config.preset("tuned")
    with pytest.raises(ValueError, match="darts-paper, darts-official, darts, first-order, sama, neumann, cg"):
        Config(hypergradient="darts-0.2.0").validate()


def test_cosine_alpha_schedule_warms_up_then_decays_to_zero():
    from agwm_betty.core.train_loop import CosineSchedule

    schedule = CosineSchedule(warmup_steps=2, total_steps=10)
    values = [schedule(s) for s in range(11)]
    assert values[0] < values[1] < values[2] == 1.0
    assert all(a >= b for a, b in zip(values[2:-1], values[3:], strict=True))
    assert values[6] == pytest.approx(0.5) and values[10] == pytest.approx(0.0)


def test_repeat_inner_step_takes_two_w_steps_per_outer_step_and_one_schedule_step():
    c = Config(repeat_inner_step=True, warmup_ratio=0.0, progress=False, diagnostic_points=0)
    model = tiny_bert64()
    engine = build_split_engine(model, [dict(TRAIN)] * 4, [dict(VAL)], c, steps=4)
    engine.run()
    assert len(engine.inner.losses) == 8 and len(engine.outer.losses) == 4
    assert engine.inner.optimizer.state[engine.inner.trainable_parameters()[0]]["step"] == 8
    assert engine.inner.scheduler.last_epoch == 4


# ---- signal diagnostics


def test_signal_probe_measures_without_changing_the_search(tokenizer):
    from agwm_betty.core.phases import search_phase
    from synthetic import synthetic_task
    from tiny_models import tiny_model

    states = {}
    for points in (0, 3):
        torch.manual_seed(0)
        model = apply_mixup(tiny_model("bert").train())
        c = Config(K=2, search_epochs=2, batch_size=8, progress=False, diagnostic_points=points, alpha_lr=1e-2)
        result = search_phase(model, synthetic_task(40), tokenizer, c)
        states[points] = (model.state_dict(), result)
    for key, value in states[0][0].items():
        assert torch.equal(value, states[3][0][key]), key
    assert states[0][1].signal == [[], []]
    records = states[3][1].signal
    assert [[r["step"] for r in split] for split in records] == [[1, 5, 8]] * 2
    for r in (r for split in records for r in split):
        assert -1 <= r["cosine"] <= 1 and r["direct_norm"] > 0 and r["implicit_norm"] > 0


def test_clamp_share_counts_updates_the_clamp_undid():
    shares = {}
    for mean in (1.0, 0.5):
        model = tiny_bert64()
        with torch.no_grad():
            for p in alpha_parameters(model):
                p.fill_(mean)
        engine = build_split_engine(model, [dict(TRAIN)] * 4, [dict(VAL)], Config(alpha_lr=0.05, progress=False,
                                    warmup_ratio=0.0, diagnostic_points=0), steps=4)
        engine.run()
        shares[mean] = engine.outer.clamp_undone_share
    # at 1 every alpha1 @ alpha2 entry sits on the bound: updates that push up are cut
    assert 0.05 < shares[1.0] < 1 and shares[0.5] == 0.0


def test_agwm_record_carries_the_signal_diagnostics(tokenizer):
    from agwm_betty.methods import RunContext, get_method
    from synthetic import SPEC, synthetic_task
    from tiny_models import tiny_model

    ctx = RunContext(SPEC, synthetic_task(48, seed=1), synthetic_task(24, seed=2), tokenizer,
                     Config(K=2, search_epochs=1, epochs=1, batch_size=8, progress=False), seed=0,
                     model_factory=lambda: (tiny_model("bert").train(), ["classifier"]))
    diagnostics = get_method("agwm").run(ctx).diagnostics
    assert len(diagnostics["signal"]) == 2 and all(len(split) == 3 for split in diagnostics["signal"])
    for key in ("signal_cosine", "signal_direct_norm", "signal_implicit_norm", "clamp_undone_share"):
        assert math.isfinite(diagnostics[key]), key
