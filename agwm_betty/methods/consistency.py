"""Consistency regularisers: the task loss plus a divergence between two predictions of one batch.

R3F (Aghajanyan et al. 2020) compares a clean pass with a pass whose input embeddings carry small
noise; R-Drop (Wu et al. 2021) compares two passes with different dropout masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from agwm_betty.config import TRAINING_FIELDS, MethodConfig, option, require_non_negative
from agwm_betty.core.train_loop import Hooks
from agwm_betty.data import TaskSpec
from agwm_betty.methods.base import FinetuneMethod, RunContext


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) + KL(Q || P) of the softmax distributions, summed over classes, mean over the batch."""
    log_p = F.log_softmax(logits_p.float(), dim=-1)
    log_q = F.log_softmax(logits_q.float(), dim=-1)
    kl_pq = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")  # KL(P || Q)
    kl_qp = F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")  # KL(Q || P)
    return kl_pq + kl_qp


@dataclass
class R3FConfig(MethodConfig):
    """R3F's options."""

    r3f_eps: float = option(1e-5, "scale of the noise on the input embeddings")
    r3f_lambda: float = option(1.0, "weight of the symmetric KL term")
    r3f_noise: str = option("normal", "noise type, normal or uniform")

    def validate(self) -> R3FConfig:
        require_non_negative(self, "r3f_eps", "r3f_lambda")
        if self.r3f_noise not in ("normal", "uniform"):
            raise ValueError(f"r3f_noise must be 'normal' or 'uniform', got {self.r3f_noise!r}")
        return self


@dataclass
class RDropConfig(MethodConfig):
    """R-Drop's options."""

    rdrop_alpha: float = option(1.0, "weight of the symmetric KL between two dropout passes")

    def validate(self) -> RDropConfig:
        require_non_negative(self, "rdrop_alpha")
        return self


class R3FLoss(Hooks):
    """Task loss on the clean pass + lambda * symmetric KL(clean || noisy), the noise on the
    word embeddings being N(0, eps^2) or U(-eps, eps). As in fairseq's R3F criterion the noisy
    pass starts from detached embeddings: the embedding table learns from the clean pass only."""

    def __init__(self, eps: float, lam: float, noise: str):
        if noise not in ("normal", "uniform"):
            raise ValueError(f"r3f noise must be 'normal' or 'uniform', got {noise!r}")
        self.eps, self.lam, self.noise = eps, lam, noise

    def sample_noise(self, like: torch.Tensor) -> torch.Tensor:
        if self.noise == "normal":
            return torch.randn_like(like) * self.eps
        return torch.empty_like(like).uniform_(-self.eps, self.eps)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        clean = model(**batch)
        embeds = model.get_input_embeddings()(batch["input_ids"]).detach()
        rest = {k: v for k, v in batch.items() if k not in ("input_ids", "labels")}
        noisy = model(inputs_embeds=embeds + self.sample_noise(embeds), **rest)
        return clean.loss + self.lam * symmetric_kl(clean.logits, noisy.logits)


class R3F(FinetuneMethod):
    name = "r3f"
    description = "R3F (Aghajanyan et al. 2020): symmetric KL between clean and noisy-embedding predictions"
    hparams = TRAINING_FIELDS + ("r3f_eps", "r3f_lambda", "r3f_noise")
    config_class = R3FConfig

    def applies_to(self, spec: TaskSpec) -> str | None:
        if spec.is_regression:
            return ("R3F's symmetric KL needs class probabilities: not applicable to regression "
                    f"({spec.name}); the paper reports vanilla there")
        return None

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        own = self.options(ctx.cfg)
        return R3FLoss(own.r3f_eps, own.r3f_lambda, own.r3f_noise)


class RDropLoss(Hooks):
    """Mean task loss of two dropout passes + alpha * a consistency term between their outputs:
    (KL(P1 || P2) + KL(P2 || P1)) / 2 for classification (the R-Drop paper's L_KL), MSE for regression."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        first, second = model(**batch), model(**batch)  # dropout draws a fresh mask for each pass
        task = (first.loss + second.loss) / 2
        if first.logits.shape[-1] == 1:
            consistency = F.mse_loss(first.logits.float(), second.logits.float())
        else:
            consistency = symmetric_kl(first.logits, second.logits) / 2
        return task + self.alpha * consistency


class RDrop(FinetuneMethod):
    name = "rdrop"
    description = "R-Drop (Wu et al. 2021): symmetric KL between the predictions of two dropout passes"
    hparams = TRAINING_FIELDS + ("rdrop_alpha",)
    config_class = RDropConfig

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        return RDropLoss(self.options(ctx.cfg).rdrop_alpha)
