"""Spec of --precision: bf16 really runs in bf16 on CPU (Betty's problems and the loop), fp16 is refused there."""
import pytest
import torch

from agwm_betty.config import Config
from agwm_betty.core.phases import _split_engine, finetune_phase, search_phase
from agwm_betty.core.surgery import alpha_state_dict, apply_mixup, mixup_layers
from synthetic import synthetic_task
from tiny_models import tiny_model

BF16 = dict(precision="bf16", device="cpu", progress=False, batch_size=8, K=1, search_epochs=1, epochs=1)


def mixup_model():
    torch.manual_seed(0)
    return apply_mixup(tiny_model("bert").train())


def record_output_dtypes(model) -> list[torch.dtype]:
    seen = []
    for layer in mixup_layers(model).values():
        layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


def test_bf16_search_step_on_cpu_runs_every_pass_in_bf16_and_moves_the_alphas(tokenizer):
    model, data = mixup_model(), synthetic_task(40)
    engine, _ = _split_engine(model, data.select(range(32)), data.select(range(32, 40)), tokenizer,
                              Config(**BF16, alpha_lr=1e-2, diagnostic_points=0), seed=0, learn_alpha=True, desc="test")
    before = alpha_state_dict(model)
    seen = record_output_dtypes(model)
    engine.inner.step(global_step=1)  # inner step, then the outer step with darts' two inner passes
    assert len(seen) == 4 * len(mixup_layers(model))
    assert set(seen) == {torch.bfloat16}
    after = alpha_state_dict(model)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert max((after[k] - before[k]).abs().max() for k in after) > 1e-3


def test_bf16_finetune_loop_on_cpu_runs_in_bf16(tokenizer):
    model = mixup_model()
    seen = record_output_dtypes(model)
    losses = finetune_phase(model, synthetic_task(16), tokenizer, Config(**BF16))
    assert seen and set(seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(losses)))


def test_mix_coefficients_stay_in_the_alphas_dtype_under_autocast():
    layer = next(iter(mixup_layers(mixup_model()).values()))
    exact = layer.mix_coefficients()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = layer.mix_coefficients()
    for got, want in zip(mixed, exact, strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("phase", [search_phase, finetune_phase])
def test_fp16_on_cpu_is_refused_with_the_alternative(tokenizer, phase):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device.*bf16"):
        phase(mixup_model(), synthetic_task(16), tokenizer, Config(**{**BF16, "precision": "fp16"}))


# bf16 keeps 8 bits of mantissa: one rounding is off by up to 2**-8 ~ 0.4 %, and a two-layer model
# compounds a few of them (measured: at most 0.7 % here). The stated tolerance: 2 % of the largest entry.
BF16_TOLERANCE = 2e-2


@pytest.mark.parametrize("impl", ["fused", "dense"])
def test_bf16_autocast_mixup_is_the_fp32_result_within_the_stated_tolerance(impl):
    from agwm_betty.core.surgery import mixup_impl, set_mixup_impl
    from tiny_models import tiny_batch

    model = mixup_model().eval()  # no dropout: the two runs differ by precision alone
    layer = next(iter(mixup_layers(model).values()))
    with torch.no_grad():
        layer.weight.add_(0.05 * torch.randn_like(layer.weight))
    before = mixup_impl()
    results = {}
    try:
        set_mixup_impl(impl)
        for autocast in (False, True):
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                weight = layer.fused_weight().clone() if impl == "fused" else torch.addcmul(
                    layer.mix_coefficients()[1] * layer.weight0, layer.mix_coefficients()[0], layer.weight)
                out = model(**tiny_batch("bert")).logits
            out.float().pow(2).sum().backward()
            results[autocast] = (weight.detach(), out.detach().float(), layer.alpha1.grad.clone(),
                                 layer.alpha2.grad.clone(), layer.weight.grad.clone())
    finally:
        set_mixup_impl(before)
    weight16, out16, *grads16 = results[True]
    weight32, out32, *grads32 = results[False]
    if impl == "fused":  # W~ is formed in fp32, then rounded once, as autocast's cast would round it
        assert weight16.dtype == torch.bfloat16 and torch.equal(weight16, weight32.bfloat16())
    else:  # W~ is formed in fp32, and autocast casts it for the matmul
        assert weight16.dtype == torch.float32 and torch.equal(weight16, weight32)
    assert out16.dtype == torch.float32 and not torch.equal(out16, out32)  # the matmuls did run in bf16
    for got, want in zip([out16, *grads16], [out32, *grads32], strict=True):
        assert got.dtype == torch.float32
        assert (got - want).abs().max() <= BF16_TOLERANCE * want.abs().max()
