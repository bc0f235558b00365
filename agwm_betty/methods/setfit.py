"""SetFit (Tunstall et al. 2022), through the `setfit` library: what someone with 300 labelled
sentences reaches for first. The sentence-transformers body (the chosen PLM) is finetuned
contrastively on pairs of training sentences, then a logistic-regression head is fitted on its
embeddings. Same protocol as every method: the seed's n-example subset, the dev (or --heldout)
evaluation, the task's metrics. SetFit embeds one text, so it takes single-sentence classification
only; sentence pairs and regression are refused before the sweep starts (`applies_to`).
"""
from __future__ import annotations

import tempfile
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agwm_betty.config import MethodConfig, option, require_count, require_positive
from agwm_betty.core.train_loop import autocast
from agwm_betty.data import TaskSpec
from agwm_betty.methods.base import Method, RunContext, RunResult
from agwm_betty.metrics.scores import compute_metrics

EXTRA = "pip install 'agwm-betty[setfit]'"


@dataclass
class SetFitConfig(MethodConfig):
    """SetFit's options (its documented settings; the head is its default logistic regression)."""

    setfit_iterations: int = option(20, "num_iterations, contrastive pairs drawn per training example and "
                                        "iteration (SetFit's documented setting)")
    setfit_epochs: int = option(1, "epochs of the body's contrastive finetuning (SetFit's default)")
    setfit_body_lr: float = option(2e-5, "learning rate of the sentence-transformers body (SetFit's default); "
                                         "the head is SetFit's default logistic regression")

    def validate(self) -> SetFitConfig:
        require_count(self, "setfit_iterations", "setfit_epochs")
        require_positive(self, "setfit_body_lr")
        return self


class SetFit(Method):
    name = "setfit"
    description = "SetFit: contrastive finetuning of the sentence-transformers body, then a logistic-regression head"
    hparams = ("batch_size", "max_length", "setfit_iterations", "setfit_epochs", "setfit_body_lr", "precision")
    config_class = SetFitConfig
    vanilla_where_inapplicable = False  # a vanilla record under SetFit's name would mislead

    def applies_to(self, spec: TaskSpec) -> str | None:
        if spec.is_regression:
            return "SetFit classifies (its head is a logistic regression); this task is a regression"
        if len(spec.text_columns) > 1:
            return "SetFit embeds one text per example and has no input for sentence pairs"
        return None

    def check_available(self) -> None:
        try:
            import setfit  # noqa: F401
        except ImportError:
            raise ValueError(f"--methods setfit needs the setfit extra: {EXTRA}") from None

    def run(self, ctx: RunContext) -> RunResult:
        self.check_available()
        import sentence_transformers
        import setfit
        from datasets import Dataset

        if ctx.raw_train is None or ctx.plm_path is None:
            raise ValueError("setfit needs the untokenised examples and the PLM's path in its RunContext")
        cfg, own, text = ctx.cfg, self.options(ctx.cfg), ctx.spec.text_columns[0]
        train = Dataset.from_dict({"text": ctx.raw_train[text], "label": ctx.raw_train["label"]})
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the body's "Loading weights" bar, off as in plm.load_plm
        if not cfg.progress:  # importing setfit.trainer turns its logger to INFO: a banner per run
            setfit.logging.set_verbosity_warning()
        started = time.perf_counter()
        model = setfit.SetFitModel.from_pretrained(ctx.plm_path, local_files_only=True)
        # bf16: the body trains and embeds under autocast, as every other method's model does; the
        # head's logistic regression fits in fp32 on the embeddings. fp16: setfit's own AMP (a loss scaler).
        body_precision = autocast(cfg, model.model_body.device) if cfg.precision == "bf16" else nullcontext()
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():  # SetFit's checkpoints: none kept
            warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true")  # a CPU's DataLoader
            args = setfit.TrainingArguments(
                output_dir=scratch, batch_size=cfg.batch_size, num_iterations=own.setfit_iterations,
                num_epochs=own.setfit_epochs, body_learning_rate=own.setfit_body_lr, max_length=cfg.max_length,
                seed=ctx.seed, report_to="none", save_strategy="no", show_progress_bar=cfg.progress,
                use_amp=cfg.precision == "fp16",
                logging_strategy="steps" if cfg.progress else "no",
            )
            trainer = setfit.Trainer(model=model, args=args, train_dataset=train)
            if not cfg.progress:  # setfit passes show_progress_bar to the head alone, not to the body's Trainer
                from transformers.trainer_callback import ProgressCallback

                trainer.st_trainer.remove_callback(ProgressCallback)
            with body_precision:
                trainer.train()
        trained = time.perf_counter()
        with body_precision:
            predictions = np.asarray(model.predict(list(ctx.raw_eval[text]), batch_size=cfg.eval_batch_size,
                                                   show_progress_bar=False))
        metrics = compute_metrics(ctx.spec, predictions, np.asarray(ctx.raw_eval["label"]))
        times = {"finetune": trained - started, "eval": time.perf_counter() - trained}
        times["total"] = sum(times.values())
        steps = {"finetune": int(trainer.st_trainer.state.global_step)}  # the body's contrastive steps
        diagnostics = {"library": {"setfit": setfit.__version__,
                                   "sentence_transformers": sentence_transformers.__version__},
                       "pairs": len(train) * 2 * own.setfit_iterations}
        return RunResult(metrics, metrics[ctx.spec.metric], None, times, steps, diagnostics, model=model)

    def save(self, model: Any, tokenizer: Any, directory: Path, spec: TaskSpec | None = None) -> Path:
        """Save the SetFit model in setfit's own layout (body, tokenizer and the pickled head), its
        classes named: `setfit.SetFitModel.from_pretrained(directory).predict(texts)` returns the names."""
        if spec is not None and spec.label_names:
            model.labels = list(spec.label_names)
        model.save_pretrained(str(directory))
        return Path(directory)
