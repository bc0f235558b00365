"""Consistency regularisers: the task loss plus a divergence between two predictions of one batch.

R3F (Aghajanyan et al. 2020) compares a clean pass with a pass whose input embeddings carry small
noise; R-Drop (Wu et al. 2021) compares two passes with different dropout masks.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from agwm_betty.config import TRAINING_FIELDS
from agwm_betty.data import TaskSpec
from agwm_betty.methods.base import FinetuneMethod, RunContext
from agwm_betty.train import Hooks


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) + KL(Q || P) of the softmax distributions, summed over classes, mean over the batch."""
    log_p = F.log_softmax(logits_p.float(), dim=-1)
    log_q = F.log_softmax(logits_q.float(), dim=-1)
    kl_pq = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")  # KL(P || Q)
    kl_qp = F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")  # KL(Q || P)
    return kl_pq + kl_qp


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

    def applies_to(self, spec: TaskSpec) -> str | None:
        if spec.is_regression:
            return ("R3F's symmetric KL needs class probabilities: not applicable to regression "
                    f"({spec.name}); the paper reports vanilla there")
        return None

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        cfg = ctx.cfg
        return R3FLoss(cfg.r3f_eps, cfg.r3f_lambda, cfg.r3f_noise)


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

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        return RDropLoss(ctx.cfg.rdrop_alpha)
