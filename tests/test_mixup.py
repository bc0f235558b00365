"""Spec of the mixup surgery (section 3.1, low-rank alpha): apply, formula, gradients, merge, errors."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from agwm_betty.core.surgery import (
    MixupLinear,
    alpha_parameters,
    alpha_state_dict,
    apply_mixup,
    clamp_alphas_,
    load_alphas,
    merge_mixup,
    mixup_layers,
    save_alphas,
    set_alphas_trainable,
    task_parameters,
)
from tiny_models import ARCHITECTURES, tiny_batch, tiny_model


def logits(model, arch):
    with torch.no_grad():
        return model(**tiny_batch(arch)).logits


def set_alphas(model, value=None, seed=0):
    """Alphas to a constant, or uniform in [0, 1] when value is None."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in alpha_parameters(model):
            p.copy_(torch.full_like(p, value) if value is not None else torch.rand(p.shape, generator=g))


def perturb_task_weights(model, seed=1):
    """Move W away from W0 so that the two branches of the mixup differ."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in mixup_layers(model).values():
            layer.weight.add_(0.05 * torch.randn(layer.weight.shape, generator=g))


def dense_reference(mixed, plain):
    """A plain model whose weights are the formula computed densely from the mixup model's tensors
    (eq. 3: both products divided by the rank r)."""
    with torch.no_grad():
        for name, layer in mixup_layers(mixed).items():
            r = layer.alpha1.shape[1]
            a = layer.alpha1 @ layer.alpha2 / r
            b = (1 - layer.alpha1) @ (1 - layer.alpha2) / r
            if layer.fan_in_fan_out:
                a, b = a.t(), b.t()
            plain.get_submodule(name).weight.copy_(a * layer.weight + b * layer.weight0)
            if layer.bias is not None:
                plain.get_submodule(name).bias.copy_(layer.bias)
    return plain


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_alphas_exactly_one_reproduce_the_untouched_model(arch):
    model = tiny_model(arch)
    expected = logits(model, arch)
    apply_mixup(model, init_std=0.0)
    assert mixup_layers(model), "no layer was mixed"
    torch.testing.assert_close(logits(model, arch), expected, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("rank", [1, 3])
def test_alphas_one_use_task_weights_and_zero_use_pretrained(arch, rank):
    model = apply_mixup(tiny_model(arch), rank=rank)
    perturb_task_weights(model)
    with_task_weights = tiny_model(arch)
    with torch.no_grad():
        for name, layer in mixup_layers(model).items():
            with_task_weights.get_submodule(name).weight.copy_(layer.weight)
    set_alphas(model, 1.0)
    torch.testing.assert_close(logits(model, arch), logits(with_task_weights, arch), atol=1e-6, rtol=1e-5)
    set_alphas(model, 0.0)
    torch.testing.assert_close(logits(model, arch), logits(tiny_model(arch), arch), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("rank", [1, 3])
def test_random_alphas_match_the_dense_formula(arch, rank):
    model = apply_mixup(tiny_model(arch), rank=rank)
    perturb_task_weights(model)
    set_alphas(model)
    reference = dense_reference(model, tiny_model(arch))
    torch.testing.assert_close(logits(model, arch), logits(reference, arch), atol=1e-5, rtol=1e-5)


def test_default_init_is_normal_around_one_clipped_to_unit_interval():
    torch.manual_seed(0)
    model = apply_mixup(tiny_model("bert"), init_std=0.005)
    values = torch.cat([p.flatten() for p in alpha_parameters(model)])
    assert values.max() <= 1.0 and values.min() >= 0.97
    assert (values == 1.0).float().mean() > 0.3  # about half of N(1, .005) is clipped at 1
    assert values.std() > 0


def test_shapes_and_frozen_pretrained_copy():
    model = apply_mixup(tiny_model("bert"), rank=2)
    layer = model.bert.encoder.layer[0].intermediate.dense
    assert isinstance(layer, MixupLinear)
    assert layer.alpha1.shape == (37, 2) and layer.alpha2.shape == (2, 32)
    torch.testing.assert_close(layer.weight, layer.weight0)
    assert not layer.weight0.requires_grad
    assert all(p is not layer.weight0 for p in model.parameters())
    assert not any(k.endswith("weight0") for k in model.state_dict())  # stored once, not saved


@pytest.mark.parametrize("arch", ["bert", "gpt2", "bart"])
def test_gradients_reach_task_weights_and_alphas_never_pretrained(arch):
    model = apply_mixup(tiny_model(arch).train())
    set_alphas(model)
    model(**tiny_batch(arch)).logits.sum().backward()
    for layer in mixup_layers(model).values():
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
        assert layer.alpha1.grad is not None and layer.alpha2.grad is not None
        assert layer.weight0.grad is None


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_task_and_alpha_parameters_partition_the_trainable_ones(arch):
    model = apply_mixup(tiny_model(arch))
    task, alphas = task_parameters(model), alpha_parameters(model)
    ids_task, ids_alpha = {id(p) for p in task}, {id(p) for p in alphas}
    assert not ids_task & ids_alpha
    assert ids_task | ids_alpha == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(alphas) == 2 * len(mixup_layers(model))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_task_heads_are_not_mixed(arch):
    model = apply_mixup(tiny_model(arch))
    for name in mixup_layers(model):
        assert not any(h in name for h in ("classifier", "classification_head", "score", "sequence_summary",
                                           "logits_proj"))


def test_clamp_projects_alphas_onto_unit_interval():
    model = apply_mixup(tiny_model("bert"))
    with torch.no_grad():
        alpha_parameters(model)[0].fill_(1.7)
        alpha_parameters(model)[1].fill_(-0.3)
    clamp_alphas_(model)
    assert alpha_parameters(model)[0].max() == 1.0 and alpha_parameters(model)[1].min() == 0.0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_merge_matches_mixup_output_and_leaves_plain_layers(arch):
    model = apply_mixup(tiny_model(arch))
    perturb_task_weights(model)
    set_alphas(model)
    expected = logits(model, arch)
    merged = merge_mixup(model)
    assert not mixup_layers(merged)
    assert not any("alpha" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, arch), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_merged_model_round_trips_through_plain_transformers(arch, tmp_path):
    model = apply_mixup(tiny_model(arch))
    perturb_task_weights(model)
    set_alphas(model)
    expected = logits(model, arch)
    merge_mixup(model).save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(reloaded, arch), expected, atol=1e-5, rtol=1e-5)


def test_alpha_state_saves_and_loads_on_its_own(tmp_path):
    source = apply_mixup(tiny_model("bert"))
    set_alphas(source, seed=3)
    save_alphas(source, tmp_path / "alphas.pt")
    target = apply_mixup(tiny_model("bert"))
    load_alphas(target, tmp_path / "alphas.pt")
    for key, value in alpha_state_dict(source).items():
        torch.testing.assert_close(alpha_state_dict(target)[key], value)
    with pytest.raises(ValueError, match="does not fit"):
        load_alphas(apply_mixup(tiny_model("bert"), target_modules=["query"]), tmp_path / "alphas.pt")


def test_target_modules_narrow_the_choice_by_name():
    model = apply_mixup(tiny_model("bert"), target_modules=["query", "value"])
    assert sorted({n.rsplit(".", 1)[-1] for n in mixup_layers(model)}) == ["query", "value"]
    regex = apply_mixup(tiny_model("bert"), target_modules=r".*layer\.1\.output\.dense")
    assert list(mixup_layers(regex)) == ["bert.encoder.layer.1.output.dense"]


def test_frozen_alphas_cost_no_gradient_and_refresh_when_changed():
    model = apply_mixup(tiny_model("bert"))
    for p in alpha_parameters(model):
        p.requires_grad_(False)
    before = logits(model, "bert")
    set_alphas(model, 0.5)  # in-place change must invalidate the cached W0 term
    after = logits(model, "bert")
    assert not torch.allclose(before, after)
    reference = dense_reference(model, tiny_model("bert"))
    torch.testing.assert_close(after, logits(reference, "bert"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"rank": 0}, "rank"), ({"init_std": -0.1}, "init_std"), ({"target_modules": ["nope"]}, "matched no")],
)
def test_bad_input_raises_and_leaves_model_unchanged(kwargs, message):
    model = tiny_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=message):
        apply_mixup(model, **kwargs)
    assert [type(m) for m in model.modules()] == modules_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_applying_mixup_twice_is_an_error():
    model = apply_mixup(tiny_model("bert"))
    layers = list(mixup_layers(model))
    with pytest.raises(ValueError, match="already applied"):
        apply_mixup(model)
    assert list(mixup_layers(model)) == layers


def test_alpha_summary_counts_every_effective_alpha_and_groups_layers():
    from agwm_betty.core.surgery import alpha_summary

    model = apply_mixup(tiny_model("bert"), init_std=0.3)
    summary = alpha_summary(model)
    entries = sum(m.alpha1.shape[0] * m.alpha2.shape[1] for m in mixup_layers(model).values())
    assert sum(summary["hist"]["counts"]) == entries
    assert len(summary["hist"]["counts"]) == len(summary["hist"]["edges"]) - 1
    assert set(summary["per_layer"]) == {"layer.0", "layer.1", "pooler"}
    full = torch.cat([m.effective_alpha().flatten() for m in mixup_layers(model).values()])
    assert summary["mean"] == pytest.approx(full.mean().item(), rel=1e-6)
    assert 0 <= summary["min"] <= summary["mean"] <= summary["max"] <= 1
    assert alpha_summary(tiny_model("bert")) is None


def test_convex_form_mixes_by_alpha_and_its_complement():
    from agwm_betty.config import ALPHA_FORMS as CONFIG_FORMS
    from agwm_betty.core.surgery import ALPHA_FORMS

    assert CONFIG_FORMS == ALPHA_FORMS
    torch.manual_seed(0)
    base = torch.nn.Linear(5, 3)
    w0 = base.weight.detach().clone()
    layer = MixupLinear(base, rank=2, init_mean=0.5, init_std=0.2, form="convex")
    with torch.no_grad():
        layer.weight.add_(1.0)
    alpha = layer.alpha1 @ layer.alpha2 / 2
    torch.testing.assert_close(layer.effective_weight(), alpha * layer.weight + (1 - alpha) * w0)
    product = (1 - layer.alpha1) @ (1 - layer.alpha2) / 2
    assert not torch.allclose(product, 1 - alpha)  # so the two forms really differ
    with pytest.raises(ValueError, match="product, convex"):
        MixupLinear(torch.nn.Linear(2, 2), rank=1, init_mean=1.0, init_std=0.0, form="sigmoid")


def test_outer_batch_size_sets_the_blo_val_batch(tokenizer):
    from agwm_betty.config import Config
    from agwm_betty.core.phases import _split_engine
    from synthetic import synthetic_task

    data = synthetic_task(40)
    for outer, expected in ((0, 8), (100, 100)):
        model = apply_mixup(tiny_model("bert").train())
        engine, _ = _split_engine(model, data.select(range(20)), data.select(range(20, 40)), tokenizer,
                                  Config(batch_size=8, outer_batch_size=outer, progress=False), seed=0,
                                  learn_alpha=True, desc="test")
        assert engine.outer.train_data_loader[0].batch_size == expected
        engine.inner.one_step_descent()
        engine.outer.one_step_descent()  # a batch at least as large as BLO-val is the whole split
        assert engine.outer.cur_batch["input_ids"].shape[0] == (8 if outer == 0 else 20)


def test_sigmoid_parameterisation_starts_from_the_clamped_init_and_is_never_clamped():
    from agwm_betty.config import ALPHA_PARAMS as CONFIG_PARAMS
    from agwm_betty.config import Config
    from agwm_betty.core.surgery import ALPHA_PARAMS, SIGMOID_INIT_MARGIN

    assert CONFIG_PARAMS == ALPHA_PARAMS
    layers = {}
    for param in ALPHA_PARAMS:
        torch.manual_seed(0)
        layers[param] = MixupLinear(torch.nn.Linear(6, 4), rank=2, init_mean=0.6, init_std=0.1, param=param)
    clamp, sigmoid = layers["clamp"], layers["sigmoid"]
    # the same draw; here no entry is near 0 or 1, so the margin leaves them all alone
    drawn = torch.cat([clamp.alpha1.flatten(), clamp.alpha2.flatten()])
    assert SIGMOID_INIT_MARGIN < drawn.min() and drawn.max() < 1 - SIGMOID_INIT_MARGIN
    torch.testing.assert_close(torch.sigmoid(sigmoid.alpha1), clamp.alpha1)
    torch.testing.assert_close(torch.sigmoid(sigmoid.alpha2), clamp.alpha2)
    torch.testing.assert_close(sigmoid.effective_weight(), clamp.effective_weight())
    torch.testing.assert_close(sigmoid.effective_alpha(), clamp.effective_alpha())
    # free logits: an update far outside [0, 1] survives the projection, the alphas stay inside
    model = torch.nn.Sequential(sigmoid)
    with torch.no_grad():
        sigmoid.alpha1.add_(5.0)
    logits = sigmoid.alpha1.detach().clone()
    clamp_alphas_(model)
    assert torch.equal(sigmoid.alpha1, logits) and logits.max() > 1
    factors = torch.cat([f.flatten() for f in sigmoid.factors()])
    assert 0 < factors.min() and factors.max() < 1
    # at the paper's init (mean 1) the logit is finite, at 1 - margin
    at_one = MixupLinear(torch.nn.Linear(3, 3), rank=1, init_mean=1.0, init_std=0.0, param="sigmoid")
    torch.testing.assert_close(torch.sigmoid(at_one.alpha1), torch.full((3, 1), 1 - SIGMOID_INIT_MARGIN))
    with pytest.raises(ValueError, match="clamp, sigmoid"):
        Config(alpha_param="tanh").validate()


def test_sigmoid_logit_gradient_is_the_alpha_gradient_through_the_sigmoid():
    torch.manual_seed(1)
    layer = MixupLinear(torch.nn.Linear(5, 3), rank=1, init_mean=0.6, init_std=0.1, param="sigmoid")
    x = torch.randn(7, 5)
    layer(x).pow(2).sum().backward()
    s1 = torch.sigmoid(layer.alpha1.detach()).requires_grad_()
    s2 = torch.sigmoid(layer.alpha2.detach()).requires_grad_()
    weight = (s1 @ s2) * layer.weight.detach() + ((1 - s1) @ (1 - s2)) * layer.weight0
    torch.nn.functional.linear(x, weight, layer.bias.detach()).pow(2).sum().backward()
    torch.testing.assert_close(layer.alpha1.grad, s1.grad * s1 * (1 - s1))
    torch.testing.assert_close(layer.alpha2.grad, s2.grad * s2 * (1 - s2))


@pytest.mark.parametrize("param", ["clamp", "sigmoid"])
def test_module_alpha_means_are_the_means_of_the_effective_alpha_matrices(param):
    from agwm_betty.core.surgery import alpha_factors, module_alpha_means

    model = apply_mixup(tiny_model("bert"), rank=2, init_mean=0.6, init_std=0.2, param=param)
    means = module_alpha_means(alpha_factors(model))
    assert means.keys() == mixup_layers(model).keys()
    for name, layer in mixup_layers(model).items():
        assert means[name] == pytest.approx(layer.effective_alpha().double().mean().item(), rel=1e-6)


# ---------------------------------------------------------------- fused W~ (#25)


@pytest.fixture
def mixup_impl_restored():
    """Lets a test switch the mixup implementation; restores the default afterwards."""
    from agwm_betty.core.surgery import mixup_impl, set_mixup_impl

    before = mixup_impl()
    yield set_mixup_impl
    set_mixup_impl(before)


def loss_and_grads(model, arch, impl, set_impl):
    """Logits and the gradients of every W, alpha1, alpha2 under `impl`, from one forward/backward."""
    set_impl(impl)
    model.zero_grad(set_to_none=True)
    out = model(**tiny_batch(arch)).logits
    out.pow(2).sum().backward()
    grads = {f"{n}.{w}": getattr(m, w).grad.clone() for n, m in mixup_layers(model).items()
             for w in ("weight", "alpha1", "alpha2") if getattr(m, w).grad is not None}
    return out.detach(), grads


def assert_all_close(got, want, rtol):
    for key in want:
        scale = want[key].abs().max().clamp_min(1e-30)
        assert ((got[key] - want[key]).abs().max() / scale).item() <= rtol, key


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("rank", [1, 3])
def test_fused_mixup_equals_the_dense_formula_and_its_gradients_in_float64(arch, rank, mixup_impl_restored):
    model = apply_mixup(tiny_model(arch).double(), rank=rank)
    perturb_task_weights(model)
    set_alphas(model)
    dense_out, dense_grads = loss_and_grads(model, arch, "dense", mixup_impl_restored)
    fused_out, fused_grads = loss_and_grads(model, arch, "fused", mixup_impl_restored)
    assert len(fused_grads) == 3 * len(mixup_layers(model)) == len(dense_grads)
    torch.testing.assert_close(fused_out, dense_out, rtol=1e-6, atol=0)
    assert_all_close(fused_grads, dense_grads, rtol=1e-6)


@pytest.mark.parametrize("form", ["product", "convex"])
@pytest.mark.parametrize("param", ["clamp", "sigmoid"])
@pytest.mark.parametrize("conv1d", [False, True])
def test_fused_mix_passes_gradcheck_for_every_form_parameterisation_and_layout(form, param, conv1d):
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    base = Conv1D(4, 5) if conv1d else torch.nn.Linear(5, 4)
    layer = MixupLinear(base.double(), rank=2, init_mean=0.6, init_std=0.2, form=form, param=param)
    assert layer.fan_in_fan_out == conv1d

    def weight(w, a1, a2):
        layer.weight, layer.alpha1, layer.alpha2 = w, a1, a2
        return layer.fused_weight()

    inputs = (torch.nn.Parameter(layer.weight.detach() + 0.1), layer.alpha1, layer.alpha2)
    assert torch.autograd.gradcheck(weight, inputs)
    assert torch.autograd.gradgradcheck(weight, inputs)  # neumann and cg differentiate the backward


def test_fused_mix_keeps_no_out_by_in_temporary_for_the_backward():
    torch.manual_seed(0)
    layer = MixupLinear(torch.nn.Linear(64, 48), rank=1, init_mean=0.9, init_std=0.05)
    weight = layer.fused_weight()
    saved = weight.grad_fn.saved_tensors
    big = [t for t in saved if t.numel() == weight.numel()]
    assert len(big) == 2
    assert {t.data_ptr() for t in big} == {layer.weight.data_ptr(), layer.weight0.data_ptr()}


def test_fused_mix_gives_the_gradient_asked_for_alone(mixup_impl_restored):
    torch.manual_seed(0)
    layer = MixupLinear(torch.nn.Linear(6, 5), rank=2, init_mean=0.7, init_std=0.1)
    x = torch.randn(3, 6)
    wanted = {}
    for impl in ("dense", "fused"):
        mixup_impl_restored(impl)
        wanted[impl] = torch.autograd.grad(layer(x).sum(), [layer.alpha1])[0]
    torch.testing.assert_close(wanted["fused"], wanted["dense"])
    layer.weight.requires_grad_(False)
    layer(x).sum().backward()
    assert layer.weight.grad is None and layer.alpha2.grad is not None


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_frozen_alpha_finetune_path_caches_coefficients_and_matches_the_formula_in_float64(arch):
    model = apply_mixup(tiny_model(arch).double(), rank=2)
    perturb_task_weights(model)
    set_alphas(model)
    set_alphas_trainable(model, False)
    reference = dense_reference(model, tiny_model(arch).double())
    for _ in range(2):  # the second step reads the cached coefficients
        model.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)
        out = model(**tiny_batch(arch)).logits
        out.pow(2).sum().backward()
        want = reference(**tiny_batch(arch)).logits
        want.pow(2).sum().backward()
        torch.testing.assert_close(out, want, rtol=1e-6, atol=0)
        for name, layer in mixup_layers(model).items():
            # dW of W~ = A * W + B * W0 is A * dW~, and dW~ is the plain model's weight gradient
            a = (layer.alpha1 @ layer.alpha2 / 2)
            a = a.t() if layer.fan_in_fan_out else a
            torch.testing.assert_close(layer.weight.grad, a * reference.get_submodule(name).weight.grad,
                                       rtol=1e-6, atol=1e-12)
    layer = next(iter(mixup_layers(model).values()))
    cached = layer.frozen_coefficients()
    model(**tiny_batch(arch))
    assert all(x is y for x, y in zip(layer.frozen_coefficients(), cached, strict=True))  # not recomputed
    set_alphas(model, 0.5)
    model(**tiny_batch(arch))
    assert not any(x is y for x, y in zip(layer.frozen_coefficients(), cached, strict=True))
    set_alphas_trainable(model, True)
    model(**tiny_batch(arch)).logits.sum().backward()
    assert layer.alpha1.grad is not None  # trainable again: the fused path, not the cache


def frozen_layer(conv1d: bool = False, seed: int = 0) -> MixupLinear:
    """A mixup layer (40 x 24) with W moved off W0, random alphas, frozen: the finetune phase's layer."""
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(seed)
    layer = MixupLinear(Conv1D(40, 24) if conv1d else torch.nn.Linear(24, 40), rank=1, init_mean=1.0, init_std=0.005)
    with torch.no_grad():
        layer.weight.add_(0.05 * torch.randn_like(layer.weight))
        layer.alpha1.uniform_()
        layer.alpha2.uniform_()
    layer.alpha1.requires_grad_(False)
    layer.alpha2.requires_grad_(False)
    return layer


@pytest.mark.parametrize("conv1d", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
def test_frozen_path_is_bit_for_bit_the_addcmul_as_autocast_would_cast_it(autocast, conv1d):
    from agwm_betty.core.surgery import linear_forward

    layer = frozen_layer(conv1d)
    weight = layer.weight.detach().clone().requires_grad_(True)  # the reference's own leaf
    x = torch.randn(8, 24)
    grad = torch.randn(8, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got = layer(x)
        a, b = layer.mix_coefficients()
        want = linear_forward(x, torch.addcmul(b * layer.weight0, a, weight), layer.bias, layer.fan_in_fan_out)
    assert got.dtype == want.dtype
    assert torch.equal(got, want)
    kept = layer._mix_buffers.slots[torch.device("cpu")]
    assert kept["low" if autocast else "full"].dtype == (torch.bfloat16 if autocast else torch.float32)
    got.backward(grad.to(got.dtype))
    want.backward(grad.to(want.dtype))
    assert layer.weight.grad.dtype == torch.float32
    assert torch.equal(layer.weight.grad, weight.grad)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw-foreach", "adamw-fused"])
def test_frozen_path_forms_w_tilde_again_after_every_optimiser_step(optimizer):
    # torch's fused AdamW steps W without bumping its version: no cache may be keyed on it
    layer = frozen_layer()
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1),
            "adamw-foreach": lambda p: torch.optim.AdamW(p, lr=0.1, foreach=True),
            "adamw-fused": lambda p: torch.optim.AdamW(p, lr=0.1, fused=True)}[optimizer]
    opt = make([layer.weight, layer.bias])
    x = torch.randn(8, 24)

    def want():
        a, b = layer.mix_coefficients()
        with torch.no_grad():
            weight = torch.addcmul(b * layer.weight0, a, layer.weight).bfloat16()
            return torch.nn.functional.linear(x.bfloat16(), weight, layer.bias.bfloat16())

    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        assert torch.equal(out, want())
        out.float().pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    kept = layer._mix_buffers.slots[torch.device("cpu")]["low"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = layer.effective_weight()
    assert again.data_ptr() == kept.data_ptr()  # written where it was kept: no new tensor per step


def test_two_forwards_before_one_backward_each_keep_their_own_w_tilde():
    layer, reference = frozen_layer(), frozen_layer()
    x, y = torch.randn(8, 24), torch.randn(8, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = layer(x)
        with torch.no_grad():
            layer.weight.add_(0.5)  # W moves between the two forwards (as in a lookahead)
            reference.weight.add_(0.5)
        second = layer(y)
    (first.float().sum() + second.float().pow(2).sum()).backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the reference: one forward per backward
        with torch.no_grad():
            reference.weight.sub_(0.5)
        reference(x).float().sum().backward()
        with torch.no_grad():
            reference.weight.add_(0.5)
        reference(y).float().pow(2).sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad, rtol=1e-6, atol=1e-7)


def test_a_graph_backpropagated_twice_after_a_new_forward_fails_loudly():
    layer = frozen_layer()
    x = torch.randn(8, 24, requires_grad=True)  # its gradient needs W~: the graph saves it
    stale = layer(x).sum()
    stale.backward(retain_graph=True)  # its node has run: the buffers are free for the next forward
    layer(x)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        stale.backward()


def test_frozen_coefficients_follow_alphas_that_a_fused_adam_stepped():
    # the fused Adam steps the alphas without a version bump: the cache keyed on it must not survive
    layer = frozen_layer()
    x = torch.randn(8, 24)
    layer(x)  # the frozen coefficients are cached
    layer.alpha1.requires_grad_(True)
    layer.alpha2.requires_grad_(True)
    opt = torch.optim.Adam([layer.alpha1, layer.alpha2], lr=0.1, fused=True)
    layer(x).pow(2).sum().backward()
    versions = layer.alpha1._version, layer.alpha2._version
    opt.step()
    assert (layer.alpha1._version, layer.alpha2._version) == versions  # the trap this test is about
    layer.alpha1.requires_grad_(False)
    layer.alpha2.requires_grad_(False)
    a, b = layer.mix_coefficients()
    want = torch.nn.functional.linear(x, torch.addcmul(b * layer.weight0, a, layer.weight), layer.bias)
    assert torch.equal(layer(x).detach(), want.detach())


@pytest.mark.parametrize("conv1d", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("form", ["product", "convex"])
def test_fused_mix_into_kept_buffers_is_bit_for_bit_the_fresh_tensors_path(form, autocast, conv1d):
    from transformers.pytorch_utils import Conv1D

    from agwm_betty.core.surgery import fused_mix, linear_forward

    torch.manual_seed(0)
    layer = MixupLinear(Conv1D(40, 24) if conv1d else torch.nn.Linear(24, 40), rank=2, init_mean=1.0,
                        init_std=0.005, form=form)
    with torch.no_grad():
        layer.weight.add_(0.05 * torch.randn_like(layer.weight))
        layer.alpha1.uniform_()
        layer.alpha2.uniform_()
    params = [layer.weight, layer.alpha1, layer.alpha2]
    for _ in range(3):  # from the second step on, W~ and the temporaries go into the kept tensors
        x = torch.randn(8, 24)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            got = layer(x)
            with torch.autocast("cpu", enabled=False):
                fresh = fused_mix(layer.weight, layer.weight0, layer.alpha1, layer.alpha2, 2, form == "convex",
                                  conv1d, buffers=None, dtype=torch.float32)
            want = linear_forward(x, fresh, layer.bias, conv1d)
        assert torch.equal(got, want)
        got_grads = torch.autograd.grad(got.float().pow(2).sum(), params)
        want_grads = torch.autograd.grad(want.float().pow(2).sum(), params)
        for g, w in zip(got_grads, want_grads, strict=True):
            assert torch.equal(g, w)
        with torch.no_grad():
            layer.weight.sub_(0.01 * got_grads[0])
    assert layer._mix_buffers.slots[torch.device("cpu")]["full"].shape == layer.weight.shape


def test_a_mixup_model_with_kept_buffers_copies_and_pickles_without_them(tmp_path):
    import copy
    import pickle

    model = apply_mixup(tiny_model("bert"))
    logits(model, "bert")  # the layers now keep W~ and a reference to the graph node that wrote it
    layer = next(iter(mixup_layers(model).values()))
    assert layer._mix_buffers.slots
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not next(iter(mixup_layers(copied).values()))._mix_buffers.slots
        torch.testing.assert_close(logits(copied, "bert"), logits(model, "bert"), rtol=0, atol=0)
    torch.save(model, tmp_path / "model.pt")


def test_unknown_mixup_impl_is_refused():
    from agwm_betty.core.surgery import MIXUP_IMPLS, set_mixup_impl

    assert MIXUP_IMPLS == ("fused", "dense", "compiled")
    with pytest.raises(ValueError, match="fused, dense, compiled"):
        set_mixup_impl("triton")


def test_config_and_layers_name_the_same_mixup_implementations():
    from agwm_betty.config import MIXUP_IMPLS as CONFIG_IMPLS
    from agwm_betty.core.surgery import MIXUP_IMPLS

    assert CONFIG_IMPLS == MIXUP_IMPLS


def _loss_and_grads(model, batch, precision):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**batch).logits.float().pow(2).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch,form", [("bert", "product"), ("gpt2", "convex")])
def test_the_compiled_mixup_gives_the_fused_values_and_gradients_and_keeps_no_buffers(arch, form):
    """Tolerances: the loss within 1e-5 relative (W~ may differ by one fp32 rounding where the
    compiled pass fuses a multiply-add; bf16 W~ are rounded from those); every gradient within
    1e-4 relative of its tensor's largest entry (the alpha reductions sum a row or a column in
    another order; key biases, whose true gradient is zero, are compared at 1e-9 absolute)."""
    from agwm_betty.core.fused_kernels import using

    for precision in ("fp32", "bf16"):
        for frozen in (False, True):
            results = {}
            for impl in ("fused", "compiled"):
                model = apply_mixup(tiny_model(arch), rank=1, init_mean=0.9, init_std=0.05, form=form)
                set_alphas_trainable(model, not frozen)
                with using(impl):
                    results[impl] = _loss_and_grads(model, tiny_batch(arch), precision)
                if impl == "compiled":
                    assert all(not layer._mix_buffers.slots and not layer._frozen_cache
                               for layer in mixup_layers(model).values())
            (loss, grads), (compiled_loss, compiled_grads) = results["fused"], results["compiled"]
            torch.testing.assert_close(compiled_loss, loss, rtol=1e-5, atol=0)
            assert compiled_grads.keys() == grads.keys() and any("alpha" in k for k in grads) != frozen
            for name, grad in grads.items():
                scale = grad.abs().max().item()
                torch.testing.assert_close(compiled_grads[name], grad, rtol=0, atol=max(1e-4 * scale, 1e-9),
                                           msg=f"{arch} {form} {precision} frozen={frozen}: {name}")


def test_the_compiled_mixup_leaves_other_ranks_to_the_fused_one():
    from agwm_betty.core.fused_kernels import using

    model = apply_mixup(tiny_model(), rank=2, init_mean=0.9, init_std=0.05)
    reference = apply_mixup(tiny_model(), rank=2, init_mean=0.9, init_std=0.05)
    reference.load_state_dict(model.state_dict())
    with using("compiled"):
        loss, grads = _loss_and_grads(model, tiny_batch(), "fp32")
    expected, expected_grads = _loss_and_grads(reference, tiny_batch(), "fp32")
    assert torch.equal(loss, expected) and all(torch.equal(grads[k], expected_grads[k]) for k in grads)


def test_under_a_flop_counter_the_compiled_mixup_runs_its_formula_eagerly():
    from torch.utils.flop_counter import FlopCounterMode

    from agwm_betty.core.fused_kernels import using

    model = apply_mixup(tiny_model(), rank=1, init_mean=0.9, init_std=0.05)
    with using("compiled"), FlopCounterMode(display=False) as counter:
        _loss_and_grads(model, tiny_batch(), "fp32")
    assert counter.get_total_flops() > 0
