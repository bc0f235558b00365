"""The settings every run shares (`Config`: training, search, alpha, systems; the paper's defaults,
appendix D, BERT-large) and the base of each baseline's own options (`MethodConfig`).

Each baseline's options sit beside the baseline, as PEFT gives each tuner its own config:
`MixoutConfig` in `agwm_betty.methods.mixout`, `LoRAConfig` in `agwm_betty.methods.parameter_efficient`,
and so on; `Config(methods={"mixout": MixoutConfig(mixout_p=0.2)})` hands them to a run. The command
line generates its flags from these dataclasses, grouped by section and by method. Nothing here
imports torch or Betty.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from agwm_betty.core.registry import BUILT_IN, check_hypergradient

# The outer hypergradients (agwm_betty.core.hypergradients): the paper's eq. 6, the official code's
# Betty 0.2.0 form, Betty 0.2.1's darts, first-order, and Betty's implicit ones; a user's own joins
# them by register_hypergradient or as package.module:function. Betty's `reinforce` is unfinished
# (its signature lacks the `sync` argument the engine passes) and meant for sampled outer losses.
HYPERGRADIENTS = BUILT_IN  # darts-paper, darts-official, darts, first-order, sama, neumann, cg
INNER_OPTIMIZERS = ("adamw", "sgd")
ALPHA_FORMS = ("product", "convex")  # the same names as agwm_betty.core.surgery.ALPHA_FORMS (tested)
ALPHA_PARAMS = ("clamp", "sigmoid")  # the same names as agwm_betty.core.surgery.ALPHA_PARAMS (tested)
ALPHA_SCHEDULES = ("linear", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")
MIXUP_IMPLS = ("fused", "dense", "compiled")  # the same names as agwm_betty.core.surgery.MIXUP_IMPLS (tested)
STRATEGIES = ("default", "distributed", "zero", "fsdp", "splits")
REPORT_TO = ("none", "tensorboard", "wandb")  # the HF Trainer's --report_to names (agwm_betty.runs.run_log)


def option(default, help: str, **kw):
    """A dataclass field carrying its `--help` text (the CLI is generated from these)."""
    return field(default=default, metadata={"help": help, **kw})


_f = option


# ---- checks shared by Config and the methods' configs


def require_positive(obj, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(obj, name)!r}")


def require_non_negative(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")


def require_count(obj, *names: str) -> None:
    """Each named field an integer >= 1."""
    for name in names:
        if not (isinstance(getattr(obj, name), int) and getattr(obj, name) >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {getattr(obj, name)!r}")


def require_fraction(obj, *names: str, zero_ok: bool = False) -> None:
    """Each named field in (0, 1) ([0, 1) with `zero_ok`)."""
    for name in names:
        value = getattr(obj, name)
        if not (0 < value < 1 or (zero_ok and value == 0)):
            raise ValueError(f"{name} must be in ({'[' if zero_ok else ''}0, 1), got {value!r}".replace("([", "["))


# The baselines' options that were Config fields before 0.3.0 -> the --methods names whose configs
# hold them: a torch-free table for the deprecation shims below (the configs themselves sit beside
# their methods, which import torch; tests/test_method_configs.py keeps this equal to them).
LEGACY_OPTIONS: dict[str, tuple[str, ...]] = {
    "mixout_p": ("mixout",),
    "r3f_eps": ("r3f",), "r3f_lambda": ("r3f",), "r3f_noise": ("r3f",),
    "rdrop_alpha": ("rdrop",),
    "reinit_layers": ("reinit",),
    "child_p": ("child-tuning-d",),
    "dps_p": ("dps",), "dps_ur": ("dps",),
    "lora_r": ("lora",), "lora_alpha": ("lora",), "lora_dropout": ("lora",), "lora_lr": ("lora",),
    "prefix_lr": ("prefix",), "prompt_lr": ("prompt",), "num_virtual_tokens": ("prefix", "prompt"),
    "soup_size": ("soup",),
    "setfit_iterations": ("setfit",), "setfit_epochs": ("setfit",), "setfit_body_lr": ("setfit",),
}
CONFIGURABLE_METHODS = tuple(dict.fromkeys(m for owners in LEGACY_OPTIONS.values() for m in owners))


@dataclass
class MethodConfig:
    """The base of a baseline's own options: a dataclass beside the baseline whose fields, named with
    the method's prefix (`mixout_p`), become its flags (`--mixout-p`) and its records' hparams keys."""

    def validate(self) -> MethodConfig:
        """Raise ValueError on an invalid value; return self."""
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Config:
    """The settings every run shares: training, search phase, alpha, systems (paper defaults). A
    baseline's own options go in `methods`, by its `--methods` name."""

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
                            "or your own as package.module:function (docs/hypergradients.md)")
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

    # the baselines' own options, by --methods name (each config class sits beside its baseline); a
    # baseline not named here runs on its config's defaults
    methods: dict[str, MethodConfig] = field(default_factory=dict, metadata={"cli": False})

    def __post_init__(self) -> None:
        self.methods = dict(self.methods)  # a config of its own (dataclasses.replace shares the old one's)

    def validate(self) -> Config:
        """Raise ValueError on any invalid value before training starts; return self."""
        require_positive(self, "lr", "search_lr", "alpha_lr", "batch_size", "max_length", "eval_batch_size",
                         "ift_alpha")
        require_non_negative(self, "epochs", "search_epochs", "max_steps", "weight_decay", "alpha_weight_decay",
                             "max_grad_norm", "alpha_init_std", "sigma", "darts_alpha", "inner_l2",
                             "search_max_grad_norm", "diagnostic_points", "outer_batch_size")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not (isinstance(self.K, int) and self.K >= 1):
            raise ValueError(f"K must be an integer >= 1, got {self.K!r}")
        if not 0 < self.split_ratio < 1:
            raise ValueError(f"split_ratio must be in (0, 1), got {self.split_ratio!r}")
        check_hypergradient(self.hypergradient)  # the name only: the outer problem resolves it
        for name, valid in (("inner_optimizer", INNER_OPTIMIZERS), ("alpha_schedule", ALPHA_SCHEDULES),
                            ("alpha_form", ALPHA_FORMS), ("alpha_param", ALPHA_PARAMS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(valid)}")
        require_count(self, "unroll_steps", "rank", "ift_iterations", "log_every")
        for name in ("alpha_beta1", "alpha_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.mixup_impl not in MIXUP_IMPLS:
            raise ValueError(f"unknown mixup_impl {self.mixup_impl!r}; choose from {', '.join(MIXUP_IMPLS)}")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"unknown report_to {self.report_to!r}; choose from {', '.join(REPORT_TO)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        for name, options in self.methods.items():
            if name not in CONFIGURABLE_METHODS:
                raise ValueError(f"methods[{name!r}]: no method of that name has options of its own; "
                                 f"choose from {', '.join(CONFIGURABLE_METHODS)}")
            if not isinstance(options, MethodConfig):
                raise ValueError(f"methods[{name!r}] must be that method's config (a MethodConfig), "
                                 f"got {type(options).__name__}")
            options.validate()
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
        """The shared settings' names (what `--help` lists outside the methods' groups)."""
        return tuple(f.name for f in fields(cls) if f.name != "methods")

    def __getattr__(self, name: str) -> Any:
        """`cfg.mixout_p` from before 0.3.0, when every baseline's option was a Config field: the value
        the method's config holds (its default if `methods` has none), with a warning."""
        owners = LEGACY_OPTIONS.get(name)
        if owners is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        classes = _config_classes()
        _warn_flat(name, owners, classes)
        methods = self.__dict__.get("methods", {})
        values = {getattr(methods.get(m) or classes[m](), name) for m in owners}
        if len(values) > 1:
            raise ValueError(f"cfg.{name} is ambiguous: the configs of {' and '.join(owners)} hold "
                             f"{sorted(values)}; read cfg.methods[...] instead")
        return values.pop()


def _config_classes() -> dict[str, type[MethodConfig]]:
    """Each method's config class by its `--methods` name, for the flat options of before 0.3.0 only:
    a deprecation shim imports the methods (and torch) by name, and only when an old name is used."""
    return importlib.import_module("agwm_betty.methods").METHOD_CONFIGS


def _warn_flat(name: str, owners: tuple[str, ...], classes: dict[str, type[MethodConfig]]) -> None:
    where = " and ".join(f"{classes[m].__name__} ({classes[m].__module__})" for m in owners)
    configs = ", ".join(f"{m!r}: {classes[m].__name__}({name}=...)" for m in owners)
    warnings.warn(f"Config.{name} moved to {where} in agwm-betty 0.3.0: pass Config(methods={{{configs}}})",
                  DeprecationWarning, stacklevel=3)


_dataclass_init = Config.__init__


@functools.wraps(_dataclass_init)
def _init(self, *args, **kwargs) -> None:
    """Config's own fields as any dataclass; a baseline's option given as a keyword (before 0.3.0,
    `Config(mixout_p=0.2)`) goes, with a warning, to the config of every method that holds it."""
    flat = {k: kwargs.pop(k) for k in list(kwargs) if k not in _CONFIG_FIELDS}
    unknown = sorted(set(flat) - set(LEGACY_OPTIONS))
    if unknown:
        raise TypeError(f"Config got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
    _dataclass_init(self, *args, **kwargs)
    if not flat:
        return
    classes = _config_classes()
    for name, value in flat.items():
        _warn_flat(name, LEGACY_OPTIONS[name], classes)
        for method in LEGACY_OPTIONS[name]:
            current = self.methods.get(method) or classes[method]()
            self.methods[method] = dataclasses.replace(current, **{name: value})


_CONFIG_FIELDS = frozenset(f.name for f in fields(Config))
Config.__init__ = _init


# The command line's groups of Config's flags: each starts at its field (agwm_betty.cli.agwm_glue)
SECTIONS = {
    "lr": "training (finetune phase, vanilla and every baseline; appendix D.2)",
    "K": "search phase and alpha (section 3.2, appendix A and D.1)",
    "precision": "systems",
}

# Named settings of the search phase. `paper`: the paper's text (appendix A and D). `official`:
# every choice in which the official code (run_glue_mlo.py, run.sh on Betty 0.2.0) departs from
# the text; the fidelity table of docs/hypergradients.md lists them one by one.
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

