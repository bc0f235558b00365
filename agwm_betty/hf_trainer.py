"""The method as a drop-in `transformers.Trainer`: swap the class, keep the script.

`AGWMTrainer` is built like any Trainer, plus the method's settings (`agwm_config`, a `Config` whose
search-phase and alpha fields are read; the paper's defaults when omitted). The mixup surgery is
applied to the model unless it has been already, with alpha's init drawn from `args.seed`;
`exclude_modules` (default: the usual task-head names) keeps a newly initialised head out of it.
`train()` runs the search phase through Betty on `train_dataset` (`search_phase`: K splits, every
hypergradient, `unroll_steps`, K-averaging), saves the searched state to
`<output_dir>/agwm_search.pt`, fixes alpha, and then runs the Trainer's own
loop as the finetune phase, with the user's `TrainingArguments` (optimizer, schedule, evaluation and
save strategies, callbacks, gradient accumulation, bf16). `save_model()` writes a plain HF
checkpoint with the mixup merged away, and the alphas beside it (`agwm_alphas.pt`, readable by
`--alphas-from`). Checkpoints written during training keep the mixup, so that
`train(resume_from_checkpoint=...)` resumes the finetune phase; the search is not run again: its
state is read back from the output directory.

What comes from where. The finetune phase is the Trainer's entirely. The search phase takes its
batch size (`per_device_train_batch_size`), precision (`bf16`, `fp16`), device, seed, logging
interval (`logging_steps`) and `report_to` (tensorboard or wandb; its curves go to
`<output_dir>/tb|wandb/agwm-search/` and `<output_dir>/curves/agwm-search.jsonl`) from the
`TrainingArguments`, and the rest from `agwm_config`: K, search epochs, W's lr (`search_lr`), weight
decay and warmup ratio in the search (0.01 and 0.1, the paper's), alpha's optimiser, the
hypergradient, `unroll_steps`, the surgery's rank and init; `max_steps` there caps each split's
search. A `Config` field that the arguments own (lr, epochs, batch size, ...) must be left at its
default: set it in the `TrainingArguments`.

Several processes. Under `torchrun` / `accelerate launch` the finetune phase is the Trainer's
data-parallel loop and works as for any model; the search phase runs in one process, so a launch
with more than one process needs `alphas_from=` (a search saved by a one-process run); DeepSpeed
and FSDP are refused: both would shard the one module that the two Betty levels share.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import torch
from transformers import Trainer

from agwm_betty.config import Config
from agwm_betty.core import saved_search
from agwm_betty.core.phases import SearchResult, search_phase
from agwm_betty.core.surgery import HEAD_MODULES, MixupLinear, apply_mixup, merge_mixup, set_alphas_trainable
from agwm_betty.runs.run_log import RunLog

SEARCH_FILE = "agwm_search.pt"  # the searched state (alphas, task weights, random state) in output_dir
ALPHAS_FILE = "agwm_alphas.pt"  # the final alphas beside a saved model
# Config fields that the TrainingArguments own (the finetune recipe, and what both phases share)
ARGUMENT_FIELDS = ("lr", "epochs", "batch_size", "max_grad_norm", "eval_batch_size", "precision", "device",
                   "progress", "report_to", "log_every", "strategy")


class AGWMTrainer(Trainer):
    """`transformers.Trainer` whose `train()` is the method: the search phase (Betty), then the
    Trainer's own loop as the finetune phase with alpha fixed. See the module docstring."""

    def __init__(self, model=None, args=None, *trainer_args, agwm_config: Config | None = None,
                 alphas_from: str | os.PathLike | None = None, exclude_modules=HEAD_MODULES, **trainer_kwargs):
        if model is None or trainer_kwargs.get("model_init") is not None:
            raise ValueError("AGWMTrainer needs model= (model_init, which rebuilds the model per trial, is not "
                             "supported: the surgery and the search belong to one model)")
        self.agwm_config = (agwm_config or Config()).validate()
        _check_owned_fields(self.agwm_config)
        self.alphas_from = None if alphas_from is None else Path(alphas_from)
        super().__init__(model, args, *trainer_args, **trainer_kwargs)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise ValueError("AGWMTrainer: DeepSpeed and FSDP are not supported (they shard the module that both "
                             "Betty levels share); use plain data parallelism (torchrun / accelerate launch)")
        if not any(isinstance(m, MixupLinear) for m in self.model.modules()):
            cfg = self.agwm_config
            with torch.random.fork_rng(devices=[]):  # the alpha init from the seed, the caller's RNG untouched
                torch.manual_seed(self.args.seed)
                apply_mixup(self.model, rank=cfg.rank, init_mean=cfg.alpha_init_mean, init_std=cfg.alpha_init_std,
                            exclude_modules=exclude_modules, form=cfg.alpha_form, param=cfg.alpha_param)
        self.search_result: SearchResult | None = None

    @property
    def search_file(self) -> Path:
        return Path(self.args.output_dir) / SEARCH_FILE

    def search_config(self) -> Config:
        """The search phase's `Config`: the method's settings, and what the `TrainingArguments` own."""
        args = self.args
        precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
        report_to = next((r for r in ("tensorboard", "wandb") if r in (args.report_to or [])), "none")
        return dataclasses.replace(
            self.agwm_config, batch_size=args.per_device_train_batch_size, precision=precision,
            device=str(args.device), report_to=report_to, log_every=max(1, int(args.logging_steps)),
            progress=not args.disable_tqdm,
        ).validate()

    def search(self) -> SearchResult:
        """Run the search phase on `train_dataset`, load its K-averaged state into the model and save it
        to `<output_dir>/agwm_search.pt` (the format of `--save-alphas`: `--alphas-from` reads it)."""
        if self.args.world_size > 1:
            raise ValueError(f"AGWMTrainer: the search phase runs in one process (this launch has "
                             f"{self.args.world_size}); search in one process first, then pass alphas_from=")
        cfg = self.search_config()
        log = RunLog(self.args.output_dir, "agwm-search", cfg.report_to, cfg.log_every)
        try:
            result = search_phase(self.model, self._search_dataset(), self._tokenizer(), cfg, seed=self.args.seed,
                                  log=log)
        finally:
            log.close()
        if self.args.should_save:
            saved = saved_search.capture(result.state, meta={"method": "agwm", "seed": self.args.seed,
                                                              "source": "AGWMTrainer"})
            saved_search.save(saved, self.search_file)
        self.search_result = result
        return result

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None,
              **kwargs):
        """The search phase (unless `alphas_from` was given, or a finetune phase is resumed), then the
        Trainer's `train` as the finetune phase, alpha fixed."""
        if trial is not None:
            raise ValueError("AGWMTrainer does not support hyperparameter_search trials")
        if self.alphas_from is not None:
            saved_search.apply(self.model, saved_search.load(self.alphas_from))
        elif resume_from_checkpoint:  # the checkpoint restores W; the alphas are the search's, saved with it
            if not self.search_file.is_file():
                raise ValueError(f"resume_from_checkpoint: no searched state at {self.search_file} (the search "
                                 f"saves it there before the finetune phase; was this output_dir trained?)")
            saved_search.apply(self.model, saved_search.load(self.search_file))
        else:
            self.search()
        set_alphas_trainable(self.model, False)  # the Trainer's optimizer then takes W alone
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval, **kwargs)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """A plain HF checkpoint (mixup merged) and the alphas beside it; the Trainer's own checkpoints
        during training keep the mixup, so that training can resume from them."""
        if _internal_call and output_dir is not None:  # a checkpoint-<step> folder
            return super().save_model(output_dir, _internal_call)
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            plain = merge_mixup(copy.deepcopy(self.accelerator.unwrap_model(self.model)))
            plain.save_pretrained(output_dir)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
            alphas = {k: v.detach().cpu() for k, v in self.model.state_dict().items()
                      if k.endswith((".alpha1", ".alpha2"))}
            saved_search.save(saved_search.SavedSearch(alphas), Path(output_dir) / ALPHAS_FILE)
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def _search_dataset(self):
        """`train_dataset` as the search's loaders take it: the model's input columns and `labels`."""
        from datasets import Dataset

        data = self.train_dataset
        if not isinstance(data, Dataset):
            raise ValueError(f"AGWMTrainer's search phase splits train_dataset, so it must be a datasets.Dataset "
                             f"(got {type(data).__name__})")
        for old in ("label", "label_ids"):
            if old in data.column_names and "labels" not in data.column_names:
                data = data.rename_column(old, "labels")
        if self.args.remove_unused_columns:  # as the Trainer drops them for its own loop
            self._set_signature_columns_if_needed()
            keep = set(self._signature_columns) | {"labels"}
            data = data.remove_columns([c for c in data.column_names if c not in keep])
        return data

    def _tokenizer(self):
        """The tokenizer that pads the search's batches: processing_class, else the data collator's."""
        tokenizer = self.processing_class or getattr(self.data_collator, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("AGWMTrainer needs processing_class=<tokenizer> (or a data collator with a tokenizer) "
                             "to pad the search phase's batches")
        return tokenizer


def _check_owned_fields(cfg: Config) -> None:
    """Refuse a `Config` that sets a field the `TrainingArguments` own: it would be silently ignored."""
    default = Config()
    set_here = [name for name in ARGUMENT_FIELDS if getattr(cfg, name) != getattr(default, name)]
    if set_here:
        raise ValueError(f"AGWMTrainer: {', '.join(set_here)} come(s) from TrainingArguments "
                         f"(learning_rate, num_train_epochs, per_device_train_batch_size, bf16, ...), not agwm_config")
