"""One config object for every method: the paper's defaults (appendix D, BERT-large) and checks."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from agwm_betty.hypergradients import BUILT_IN, resolve_hypergradient

# The outer hypergradients (agwm_betty.hypergradients): the paper's eq. 6, the official code's
# Betty 0.2.0 form, Betty 0.2.1's darts, first-order, and Betty's implicit ones; a user's own joins
# them by register_hypergradient or as package.module:function. Betty's `reinforce` is unfinished
# (its signature lacks the `sync` argument the engine passes) and meant for sampled outer losses.
HYPERGRADIENTS = BUILT_IN  # darts-paper, darts-official, darts, first-order, sama, neumann, cg
INNER_OPTIMIZERS = ("adamw", "sgd")
ALPHA_FORMS = ("product", "convex")  # the same names as agwm_betty.mixup.ALPHA_FORMS (tested)
ALPHA_PARAMS = ("clamp", "sigmoid")  # the same names as agwm_betty.mixup.ALPHA_PARAMS (tested)
ALPHA_SCHEDULES = ("linear", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")
MIXUP_IMPLS = ("fused", "dense", "compiled")  # the same names as agwm_betty.mixup.MIXUP_IMPLS (tested)
STRATEGIES = ("default", "distributed", "zero", "fsdp", "splits")
REPORT_TO = ("none", "tensorboard", "wandb")  # the HF Trainer's --report_to names (agwm_betty.curves)


def _f(default, help: str, **kw):
    """A dataclass field carrying its `--help` text (the CLI is generated from these)."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Config:
    """Hyperparameters of the search phase, the finetune phase and every baseline (paper defaults)."""

    # shared training recipe (finetune phase, vanilla and baselines; appendix D.2)
    lr: float = _f(2e-5, "learning rate of the task weights W (finetune phase, vanilla, baselines)")
    epochs: float = _f(3.0, "epochs of the finetune phase / of vanilla finetuning "
                            "(0 = none: evaluate as the search left it)")
    max_steps: int = _f(0, "if > 0, cap every training phase at this many steps (smoke tests)")
    warmup_ratio: float = _f(0.1, "linear warmup, as a fraction of a phase's steps")
    weight_decay: float = _f(0.01, "decoupled weight decay on W (not on biases / LayerNorm)")
    batch_size: int = _f(16, "batch size")
    max_length: int = _f(128, "maximum sequence length in tokens")
    max_grad_norm: float = _f(1.0, "gradient clipping norm for W (0 = off)")
    eval_batch_size: int = _f(64, "batch size for evaluation")

    # search phase (section 3.2, appendix A and D.1)
    K: int = _f(5, "number of random BLO-train / BLO-val splits whose search results are averaged")
    split_ratio: float = _f(0.8, "BLO-train share of the training set in each split")
    search_epochs: float = _f(3.0, "epochs of the search phase over BLO-train")
    search_lr: float = _f(2e-5, "learning rate of W in the search phase (inner problem)")
    alpha_lr: float = _f(2e-3, "learning rate of alpha (outer problem)")
    alpha_weight_decay: float = _f(0.01, "weight decay on alpha (lambda_2)")
    alpha_beta1: float = _f(0.9, "AdamW beta1 for alpha")
    alpha_beta2: float = _f(0.999, "AdamW beta2 for alpha")
    alpha_eps: float = _f(1e-8, "AdamW epsilon for alpha")
    hypergradient: str = _f("darts-paper", "outer hypergradient: darts-paper (eq. 6), darts-official (Betty 0.2.0 "
                            "as the official code ran it), darts (Betty 0.2.1), first-order, sama, neumann, cg, "
                            "or your own as package.module:function (README: your own hypergradient)")
    unroll_steps: int = _f(1, "inner steps per outer step")
    darts_alpha: float = _f(0.01, "finite-difference radius of the darts forms (eps = radius / ||v||)")
    ift_iterations: int = _f(1, "neumann / cg: iterations of the inverse-Hessian approximation")
    ift_alpha: float = _f(1.0, "neumann / cg: step size of the inverse-Hessian approximation")
    inner_optimizer: str = _f("adamw", f"optimiser of W in the search phase: {', '.join(INNER_OPTIMIZERS)}")
    inner_l2: float = _f(0.0, "explicit lambda_1 ||W||^2 over all task parameters in the inner loss (eq. 5's G; "
                              "0 = weight decay in the optimiser only, as appendix D)")
    search_max_grad_norm: float = _f(1.0, "gradient clipping norm for W in the search phase (0 = off)")
    alpha_schedule: str = _f("linear", f"alpha lr schedule after warmup: {', '.join(ALPHA_SCHEDULES)}")
    repeat_inner_step: bool = _f(False, "after each outer step W steps again on the same BLO-train batch "
                                        "(Betty 0.2.0's roll_back as the official code ran it)")
    diagnostic_points: int = _f(3, "outer steps per split at which the alpha hypergradient's signal is "
                                   "measured on two BLO-val batches (0 = off; never changes the search)")
    average_task_weights: bool = _f(True, "average the task weights W over the K searches too")
    rank: int = _f(1, "rank r of the alpha factorisation alpha = alpha1 @ alpha2 / r (eq. 3)")
    alpha_form: str = _f("product", "how W and W0 mix: product (the paper: F(a1,a2) W + F(1-a1,1-a2) W0) or "
                                    "convex (alpha W + (1 - alpha) W0, alpha = F(a1,a2))")
    alpha_param: str = _f("clamp", "how alpha stays in [0, 1]: clamp (the paper: projected after each outer step) "
                                   "or sigmoid (alpha1, alpha2 are logits; the init is kept within 0.01 of 0 and 1)")
    outer_batch_size: int = _f(0, "batch size of the outer (BLO-val) problem; 0 = --batch-size; at least the "
                                  "BLO-val size = the whole split each outer step")
    alpha_init_mean: float = _f(1.0, "mean of the alpha init N(mean, std)")
    alpha_init_std: float = _f(0.005, "std of the alpha init N(mean, std)")
    sigma: float = _f(0.005, "random-alpha: std of the frozen alphas N(1, sigma)")

    # baselines (appendix D.3 search spaces; defaults are common choices inside them)
    mixout_p: float = _f(0.1, "mixout: probability of swapping a weight for its pretrained value")
    r3f_eps: float = _f(1e-5, "r3f: scale of the noise on the input embeddings")
    r3f_lambda: float = _f(1.0, "r3f: weight of the symmetric KL term")
    r3f_noise: str = _f("normal", "r3f: noise type, normal or uniform")
    rdrop_alpha: float = _f(1.0, "rdrop: weight of the symmetric KL between two dropout passes")
    reinit_layers: int = _f(3, "reinit: number of top encoder layers re-initialised (plus the pooler)")
    child_p: float = _f(0.3, "child-tuning-d: fraction p_D of parameters kept in the child network")
    dps_p: float = _f(0.3, "dps: fraction of each weight matrix updated in a sparse period")
    dps_ur: float = _f(0.1, "dps: update ratio, the period length as a fraction of the steps")
    lora_r: int = _f(8, "lora: rank")
    lora_alpha: int = _f(16, "lora: scaling alpha")
    lora_dropout: float = _f(0.1, "lora: dropout")
    lora_lr: float = _f(3e-4, "lora: learning rate (the PEFT library's LoRA example, as appendix F)")
    prefix_lr: float = _f(1e-2, "prefix: learning rate (the PEFT library's prefix-tuning example)")
    prompt_lr: float = _f(1e-3, "prompt: learning rate (the PEFT library's prompt-tuning example)")
    num_virtual_tokens: int = _f(20, "prefix/prompt: number of virtual tokens")
    soup_size: int = _f(5, "soup: number of vanilla models averaged")
    setfit_iterations: int = _f(20, "setfit: num_iterations, contrastive pairs drawn per training example and "
                                    "iteration (SetFit's documented setting)")
    setfit_epochs: int = _f(1, "setfit: epochs of the body's contrastive finetuning (SetFit's default)")
    setfit_body_lr: float = _f(2e-5, "setfit: learning rate of the sentence-transformers body (SetFit's default); "
                                     "the head is SetFit's default logistic regression")

    # systems
    precision: str = _f("fp32", f"numeric precision: {', '.join(PRECISIONS)} (fp16 needs a GPU)")
    mixup_impl: str = _f("fused", "how mixup layers form W~ and its gradients: fused (eager, the default), "
                                  "compiled (one torch.compile'd pass each way, rank 1: fastest, least memory, "
                                  "compiled once a process), dense (plain autograd, the reference)")
    strategy: str = _f("default", f"Betty strategy: {', '.join(STRATEGIES)} (launch with torchrun; splits: "
                                  "each process runs whole search-phase splits, at most K processes)")
    device: str = _f("", "device (empty = cuda if available, else cpu)")
    progress: bool = _f(True, "show progress bars")
    report_to: str = _f("none", f"where the run's curves also go: {', '.join(REPORT_TO)} (into <output>/tb/<run>/ "
                                "or <output>/wandb/<run>/; <output>/curves/<run>.jsonl is written either way)")
    log_every: int = _f(5, "a curve point every this many steps of each level and phase (read back to the host "
                           "only then)")

    def validate(self) -> Config:
        """Raise ValueError on any invalid value before training starts; return self."""
        positive = ("lr", "search_lr", "alpha_lr", "batch_size", "max_length", "eval_batch_size",
                "lora_lr", "prefix_lr", "prompt_lr", "ift_alpha", "setfit_body_lr")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "epochs", "search_epochs", "max_steps", "weight_decay", "alpha_weight_decay",
            "max_grad_norm", "alpha_init_std", "sigma", "r3f_eps", "r3f_lambda", "rdrop_alpha",
            "reinit_layers", "darts_alpha", "lora_dropout", "inner_l2", "search_max_grad_norm",
            "diagnostic_points", "outer_batch_size",
        )
        for name in non_negative:
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not (isinstance(self.K, int) and self.K >= 1):
            raise ValueError(f"K must be an integer >= 1, got {self.K!r}")
        if not 0 < self.split_ratio < 1:
            raise ValueError(f"split_ratio must be in (0, 1), got {self.split_ratio!r}")
        if self.hypergradient == "reinforce":
            raise ValueError(
                "hypergradient 'reinforce' does not apply: it is for non-differentiable (sampled) "
                f"outer losses and unfinished in Betty 0.2.1; choose from {', '.join(HYPERGRADIENTS)}"
            )
        resolve_hypergradient(self.hypergradient)  # a package.module:function is imported and registered here
        for name, valid in (("inner_optimizer", INNER_OPTIMIZERS), ("alpha_schedule", ALPHA_SCHEDULES),
                            ("alpha_form", ALPHA_FORMS), ("alpha_param", ALPHA_PARAMS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(valid)}")
        for name in ("unroll_steps", "rank", "ift_iterations", "log_every", "lora_r", "lora_alpha",
                     "num_virtual_tokens", "soup_size", "setfit_iterations", "setfit_epochs"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("mixout_p", "child_p", "dps_p", "dps_ur"):
            if not 0 < getattr(self, name) < 1 and not (name == "mixout_p" and getattr(self, name) == 0):
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        for name in ("alpha_beta1", "alpha_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.r3f_noise not in ("normal", "uniform"):
            raise ValueError(f"r3f_noise must be 'normal' or 'uniform', got {self.r3f_noise!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.mixup_impl not in MIXUP_IMPLS:
            raise ValueError(f"unknown mixup_impl {self.mixup_impl!r}; choose from {', '.join(MIXUP_IMPLS)}")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"unknown report_to {self.report_to!r}; choose from {', '.join(REPORT_TO)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        return self

    def to_dict(self, names: tuple[str, ...] | None = None) -> dict:
        """Plain dict of all (or the named) fields, for result records."""
        data = asdict(self)
        return data if names is None else {k: data[k] for k in names}

    @classmethod
    def preset(cls, name: str, **overrides) -> Config:
        """The config of a named preset (`PRESETS`), with explicit `overrides` on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# Named settings of the search phase. `paper`: the paper's text (appendix A and D). `official`:
# every choice in which the official code (run_glue_mlo.py, run.sh on Betty 0.2.0) departs from
# the text; the README's fidelity table lists them one by one.
PRESETS: dict[str, dict] = {
    "paper": {},
    "official": {
        "hypergradient": "darts-official",  # 0.2.0 darts: Adam-preconditioned v, no eta_w, W left moved
        "repeat_inner_step": True,  # 0.2.0 roll_back=True restored nothing: W steps twice per outer step
        "search_max_grad_norm": 5.0,  # inner gradient clipping in run.sh
        "alpha_weight_decay": 0.0,  # run.sh (the paper says 0.01)
        "alpha_schedule": "cosine",  # alpha warmup 0.1, then cosine
        "K": 5,  # cross_valid
        "average_task_weights": True,  # total_avg
    },
}

# The fields every training run depends on; methods add their own (see methods.Method.hparams).
TRAINING_FIELDS = (
    "lr", "epochs", "max_steps", "warmup_ratio", "weight_decay", "batch_size", "max_length",
    "max_grad_norm", "precision",
)
SEARCH_FIELDS = (
    "K", "split_ratio", "search_epochs", "search_lr", "unroll_steps", "average_task_weights",
    "inner_optimizer", "inner_l2", "search_max_grad_norm", "repeat_inner_step",
)
MIXUP_FIELDS = ("mixup_impl",)  # how W~ is computed (its last bits): every method with mixup layers
ALPHA_FIELDS = (
    "alpha_lr", "alpha_weight_decay", "alpha_beta1", "alpha_beta2", "alpha_eps", "hypergradient",
    "darts_alpha", "rank", "alpha_init_mean", "alpha_init_std", "ift_iterations", "ift_alpha",
    "alpha_schedule", "alpha_form", "alpha_param", "outer_batch_size",
)
