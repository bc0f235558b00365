"""The interface every method implements, and the single-phase methods built on the shared loop."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from agwm_betty.config import TRAINING_FIELDS, Config, MethodConfig
from agwm_betty.core.phases import finetune_phase
from agwm_betty.core.saved_search import SavedSearch
from agwm_betty.core.surgery import HEAD_MODULES, alpha_summary, merge_mixup
from agwm_betty.core.train_loop import Hooks, predict
from agwm_betty.data import TaskSpec, make_loader
from agwm_betty.metrics.scores import compute_metrics
from agwm_betty.runs.run_log import RunLog

ModelFactory = Callable[[], "tuple[nn.Module, list[str]]"]


@dataclass
class RunContext:
    """Everything one run needs: a model factory, the tokenised task data, the config and the seed."""

    spec: TaskSpec
    train: Any  # tokenised datasets.Dataset
    eval: Any
    tokenizer: Any
    cfg: Config
    seed: int
    model_factory: ModelFactory  # returns (fresh PLM classifier, names of its new head modules)
    new_modules: list[str] = field(default_factory=list)
    alphas_from: SavedSearch | None = None  # agwm: finetune from this saved alpha, no search
    searched: SavedSearch | None = None  # the saved search of the run this one builds on (`Method.needs_search_of`)
    keep_search: bool = False  # a two-phase run returns its searched state (`RunResult.search`, for --save-alphas)
    reuse_task_weights: bool = False  # with alphas_from: start from its searched task weights too
    log: RunLog | None = None  # the run's curves (agwm_betty.runs.run_log); None: none kept
    raw_train: Any = None  # the same examples untokenised (text_a[, text_b], label): for methods that tokenise
    raw_eval: Any = None  # their own, such as setfit
    plm_path: str | None = None  # the PLM's HF id or local directory, for methods that load it their own way

    def new_model(self) -> nn.Module:
        """A fresh PLM with the task head; the seed decides the head's init (and dropout masks)."""
        from transformers import set_seed

        set_seed(self.seed)
        model, self.new_modules = self.model_factory()
        return model

    @property
    def exclude_modules(self) -> tuple[str, ...]:
        """Modules mixup and similar surgery must leave alone: the task head, whatever its name."""
        return HEAD_MODULES + tuple(self.new_modules)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """All metrics of the task on the evaluation set (0-100 scale).

        The examples go through the model shortest first: batches then pad little (1.6x fewer
        tokens on STS-B dev at batch 64, 1.9x on SST-2), and every GLUE metric is blind to example order.
        """
        lengths = [len(ids) for ids in self.eval["input_ids"]]
        by_length = self.eval.select(sorted(range(len(lengths)), key=lengths.__getitem__))
        loader = make_loader(by_length, self.tokenizer, self.cfg.eval_batch_size, shuffle=False)
        predictions, labels = predict(model, loader, self.cfg)
        return compute_metrics(self.spec, predictions.numpy(), labels.numpy())


@dataclass
class RunResult:
    """One finished run: metrics, the learned alphas (summary), timings and diagnostics."""

    metrics: dict[str, float]
    metric: float
    alphas: dict | None
    time: dict[str, float]
    steps: dict[str, int]
    diagnostics: dict = field(default_factory=dict)
    model: Any = field(default=None, repr=False)  # the final model, for `Method.save`; an nn.Module but for setfit's
    search: SavedSearch | None = field(default=None, repr=False)  # a two-phase run's, for --save-alphas


class Method:
    """A finetuning method: `run` trains a fresh model for one (task, n, seed) and evaluates it."""

    name: str = ""
    description: str = ""
    hparams: tuple[str, ...] = TRAINING_FIELDS  # the settings this method's results depend on (shared or its own)
    config_class: type[MethodConfig] | None = None  # this method's own options, declared beside it
    # The method whose saved search (same task, n and seed, `--save-alphas`) this one starts from: a
    # sweep runs that method's run first and hands its search over in `RunContext.searched`.
    needs_search_of: str | None = None

    def run(self, ctx: RunContext) -> RunResult:
        raise NotImplementedError

    def options(self, cfg: Config) -> MethodConfig:
        """This method's own config: `cfg.methods[name]`, else its config class's defaults."""
        if self.config_class is None:
            raise ValueError(f"method {self.name!r} has no options of its own")
        found = cfg.methods.get(self.name)
        if found is None:
            return self.config_class()
        if not isinstance(found, self.config_class):
            raise ValueError(f"methods[{self.name!r}] must be a {self.config_class.__name__}, "
                             f"got {type(found).__name__}")
        return found

    def record_hparams(self, cfg: Config) -> dict:
        """The values of `hparams`, each from the shared config or this method's own: a record's `hparams`."""
        own = self.options(cfg).to_dict() if self.config_class is not None else {}
        shared = {name: getattr(cfg, name) for name in Config.field_names()}
        return {name: own[name] if name in own else shared[name] for name in self.hparams}

    # Where `applies_to` gives a reason: True, vanilla finetuning is reported instead, with a note (the
    # paper's convention, e.g. R3F on regression); False, the sweep is refused before it starts.
    vanilla_where_inapplicable = True

    def applies_to(self, spec: TaskSpec) -> str | None:
        """None if the method applies to the task, else the reason it does not."""
        return None

    def check_available(self) -> None:
        """Raise ValueError (one line: what to install) when a library the method needs is missing."""

    def save(self, model: Any, tokenizer: Any, directory: Path, spec: TaskSpec | None = None) -> Path:
        """Save a run's final model where a user loads it without this package: a plain HF checkpoint,
        mixup merged and the classes named (a PEFT adapter for prompt learning, which cannot merge)."""
        name_labels(model, spec)
        merge_mixup(model).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return Path(directory)

    def result(self, ctx: RunContext, model: nn.Module, times: dict, steps: dict, **diagnostics) -> RunResult:
        """Evaluate `model` and package the run."""
        started = time.perf_counter()
        metrics = ctx.evaluate(model)
        times = {**times, "eval": time.perf_counter() - started}
        times["total"] = sum(times.values())
        return RunResult(metrics, metrics[ctx.spec.metric], alpha_summary(model), times, steps, diagnostics, model)


def name_labels(model: nn.Module, spec: TaskSpec | None) -> None:
    """Write the task's class names into the model's HF config (`id2label`, `label2id`), so that a
    saved checkpoint and `pipeline("text-classification")` say "positive", not "LABEL_1"."""
    from transformers import PreTrainedModel

    if spec is None or spec.is_regression or not spec.label_names:
        return
    for module in model.modules():  # the model itself, or the HF model inside a PEFT wrapper
        if isinstance(module, PreTrainedModel):
            module.config.id2label = dict(enumerate(spec.label_names))
            module.config.label2id = {name: i for i, name in enumerate(spec.label_names)}
            return


class FinetuneMethod(Method):
    """Single-phase methods: prepare the model, train it with hooks in the shared loop, evaluate.
    A baseline overrides `prepare` (surgery), `hooks` (loss, gradient masks), `param_groups`
    (what trains) or `finalize` (e.g. merge); it never copies the loop."""

    name = "vanilla"
    description = "standard finetuning of all weights (Devlin et al. 2018 recipe)"

    def prepare(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        return model

    def hooks(self, model: nn.Module, ctx: RunContext) -> Hooks:
        return Hooks()

    def param_groups(self, model: nn.Module, ctx: RunContext) -> list[dict] | None:
        """None = every task parameter, with the usual no-decay set."""
        return None

    def learning_rate(self, ctx: RunContext) -> float:
        return ctx.cfg.lr

    def finalize(self, model: nn.Module, ctx: RunContext) -> nn.Module:
        return model

    def train(self, ctx: RunContext) -> tuple[nn.Module, dict, dict]:
        """Prepare, train and finalize a fresh model: (model, times, steps)."""
        started = time.perf_counter()
        model = self.prepare(ctx.new_model(), ctx)
        losses = finetune_phase(
            model, ctx.train, ctx.tokenizer, ctx.cfg, seed=ctx.seed, hooks=self.hooks(model, ctx),
            groups=self.param_groups(model, ctx), lr=self.learning_rate(ctx), log=ctx.log,
        )
        model = self.finalize(model, ctx)
        return model, {"finetune": time.perf_counter() - started}, {"finetune": len(losses)}

    def run(self, ctx: RunContext) -> RunResult:
        model, times, steps = self.train(ctx)
        return self.result(ctx, model, times, steps)
