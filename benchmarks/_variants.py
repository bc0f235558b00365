"""The benchmark's variants: config, model, fixed batch, and one step of vanilla, finetune or search."""
from __future__ import annotations

import dataclasses
import itertools
import os

VARIANTS = ("vanilla", "finetune", "search")
# --compare adds the search step as Betty 0.2.1 runs it (two backward passes of the outer loss)
BETTY_SEARCH = "search-betty"
UNROLL_PREFIX = "search-T"  # + T: the search step with one outer step every T inner steps
HG_PREFIX = "search-hg:"  # + name: the search step with that hypergradient
MIXUP_PREFIX = "search-mixup:"  # + impl: the search step with that mixup implementation (--compare-mixup)
FT_MIXUP_PREFIX = "finetune-mixup:"  # + impl: the finetune step with that mixup implementation (--compare-mixup)
REPORT_PREFIX = "search-report:"  # + logger: the search step logging its curves every step (--report-to)
MODELS = ("minilm", "mpnet-base", "bert-large")
# all-mpnet-base-v2's shape (--plm mpnet-base): built from it with random weights, as BERT-large's is
MPNET_BASE = dict(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=514, relative_attention_num_buckets=32,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
BERT_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
# BENCH_BERT_LARGE_LAYERS=1: BERT-large's widths with fewer layers, for a rehearsal on a CPU
LAYERS_ENV = "BENCH_BERT_LARGE_LAYERS"
# How MiniLM is built. pretrained (default): the embedded package's weights. random: its config with
# random weights (seed 0), like BERT-large: step times and memory do not depend on the weights'
# values, so a machine without the 80 MiB package can time it. bench_step --init sets INIT_ENV, so
# that the memory subprocesses and the split-parallel ranks build the same model.
INITS = ("pretrained", "random")
INIT_ENV = "BENCH_INIT"
# A directory with MiniLM's config.json and tokenizer files (no weights needed with random init);
# default: the embedded package's model directory
MINILM_DIR_ENV = "BENCH_MINILM_DIR"


def config(args):
    from agwm_betty.config import Config

    kwargs = {"K": args.K} if args.K else {}
    # long schedules, so that no step of the benchmark runs at learning rate 0
    return Config(progress=False, device=args.device, precision=args.precision, batch_size=args.batch_size,
                  max_length=args.seq_len, epochs=10_000, search_epochs=10_000, diagnostic_points=0,
                  **kwargs).validate()


def minilm_init() -> str:
    """How MiniLM is built in this process: pretrained or random (INIT_ENV, default pretrained)."""
    init = os.environ.get(INIT_ENV, "pretrained")
    if init not in INITS:
        raise SystemExit(f"{INIT_ENV}={init!r}: choose from {', '.join(INITS)}")
    return init


def minilm_dir() -> str:
    """Where MiniLM's config and tokenizer are read: MINILM_DIR_ENV, else the embedded package."""
    if os.environ.get(MINILM_DIR_ENV):
        return os.environ[MINILM_DIR_ENV]
    from agwm_betty.models.plm import embedded_model_path

    return str(embedded_model_path())


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())


def build_model(name: str, device=None):
    """(model, new head modules). BERT-large is built from its config with random weights; the
    MiniLM tokenizer has BERT's 30522-token vocabulary, which is all the fixed batch needs."""
    return build_classifier(name, 2, False, device)


def build_classifier(name: str, num_labels: int, regression: bool, device=None):
    """(model, new head modules) of `name` with a `num_labels` head: the embedded MiniLM (or its
    config with random weights: minilm_init), or MPNet-base's or BERT-large's shape from its config
    with random weights (no download), initialised on `device` (seconds on a GPU, where a CPU takes
    tens of seconds for BERT-large)."""
    import torch
    from transformers import (
        AutoConfig,
        BertConfig,
        BertForSequenceClassification,
        MPNetConfig,
        MPNetForSequenceClassification,
    )

    if name == "minilm" and minilm_init() == "pretrained":
        from agwm_betty.models.plm import load_plm

        loaded = load_plm("minilm", num_labels, regression)
        return loaded[0], list(loaded[-1])
    torch.manual_seed(0)
    if name == "mpnet-base":
        config = MPNetConfig(num_labels=num_labels, **MPNET_BASE)
        if regression:
            config.problem_type = "regression"
        with torch.device(device or "cpu"):
            return MPNetForSequenceClassification(config), ["classifier"]
    if name == "minilm":  # the checkpoint holds the pooler, so only the classifier is new, as pretrained
        config = AutoConfig.from_pretrained(minilm_dir(), num_labels=num_labels)
    else:
        config = BertConfig(num_labels=num_labels, **{**BERT_LARGE, "num_hidden_layers": int(
            os.environ.get(LAYERS_ENV, BERT_LARGE["num_hidden_layers"]))})
    if regression:
        config.problem_type = "regression"
    with torch.device(device or "cpu"):
        return BertForSequenceClassification(config), ["classifier"]


def fixed_dataset(batch_size: int, seq_len: int, vocab: int = 30522):
    """`batch_size` rows of `seq_len` tokens ([CLS] ... [SEP]): every batch is exactly batch x len."""
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab, (batch_size, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    labels = torch.randint(0, 2, (batch_size,), generator=g)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * seq_len] * batch_size,
                              "labels": labels.tolist()})


def build_variant(variant: str, model_name: str, cfg, tok, data):
    """A zero-argument callable doing one step of `variant` on a fresh model; a search-mixup:<impl>
    variant switches the mixup implementation for its own steps and back."""
    from agwm_betty.core.surgery import mixup_impl, set_mixup_impl

    prefix = next((p for p in (MIXUP_PREFIX, FT_MIXUP_PREFIX) if variant.startswith(p)), None)
    if prefix is None:
        return _build_variant(variant, model_name, cfg, tok, data)
    impl = variant[len(prefix):]
    before = mixup_impl()
    set_mixup_impl(impl)  # built with it too: a compiled step compiles in its warm-up, not in a timed round
    try:
        step = _build_variant("search" if prefix == MIXUP_PREFIX else "finetune", model_name, cfg, tok, data)
    finally:
        set_mixup_impl(before)

    def step_with_impl():
        before = mixup_impl()
        set_mixup_impl(impl)
        try:
            step()
        finally:
            set_mixup_impl(before)
    return step_with_impl


def _build_variant(variant: str, model_name: str, cfg, tok, data):
    from agwm_betty.core.phases import _split_engine
    from agwm_betty.core.surgery import HEAD_MODULES, apply_mixup, named_task_parameters, set_alphas_trainable
    from agwm_betty.core.train_loop import TrainStep, decay_groups, resolve_device
    from agwm_betty.data import make_loader

    device = resolve_device(cfg)
    model, new_modules = build_model(model_name, device)
    model.to(device).train()
    if variant != "vanilla":
        apply_mixup(model, rank=cfg.rank, init_mean=cfg.alpha_init_mean, init_std=cfg.alpha_init_std,
                    exclude_modules=HEAD_MODULES + tuple(new_modules))
    if variant in ("search", BETTY_SEARCH) or variant.startswith((UNROLL_PREFIX, HG_PREFIX, REPORT_PREFIX)):
        set_alphas_trainable(model, True)
        unroll = unroll_of(variant)
        hypergradient = variant[len(HG_PREFIX):] if variant.startswith(HG_PREFIX) else cfg.hypergradient
        run_cfg = dataclasses.replace(cfg, unroll_steps=unroll, hypergradient=hypergradient)
        log = None
        if variant.startswith(REPORT_PREFIX):  # every step a log step: the upper bound of logging's cost
            import tempfile

            from agwm_betty.runs.run_log import RunLog

            run_cfg = dataclasses.replace(run_cfg, log_every=1)
            log = RunLog(tempfile.mkdtemp(prefix="bench-curves-"), "bench", variant[len(REPORT_PREFIX):], 1)
        engine, _ = _split_engine(model, data, data, tok, run_cfg, seed=0, learn_alpha=True, desc="bench", log=log)
        engine.outer.single_backward = variant != BETTY_SEARCH
        engine.train()
        counter = itertools.count(1)

        def search_steps():  # T inner steps; the T-th triggers the outer step
            for _ in range(unroll):
                engine.inner.step(global_step=next(counter))
        return search_steps
    set_alphas_trainable(model, False)
    train_step = TrainStep(model, decay_groups(named_task_parameters(model), cfg.weight_decay), cfg,
                           steps=10**6, lr=cfg.lr)
    batches = itertools.chain.from_iterable(itertools.repeat(make_loader(data, tok, cfg.batch_size, True)))
    counter = itertools.count()
    return lambda: train_step(next(batches), next(counter))


def unroll_of(variant: str) -> int:
    """Inner steps per call of a variant: T for search-T<T>, else 1."""
    return int(variant[len(UNROLL_PREFIX):]) if variant.startswith(UNROLL_PREFIX) else 1


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
