"""Tiny random sequence classifiers for every architecture the surgery must handle (no download)."""
from __future__ import annotations

import torch
from transformers import (
    AutoModelForSequenceClassification,
    BartConfig,
    BertConfig,
    DebertaConfig,
    DebertaV2Config,
    GPT2Config,
    MPNetConfig,
    RobertaConfig,
    XLNetConfig,
)

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             vocab_size=100, max_position_embeddings=64)

CONFIGS = {
    "bert": lambda: BertConfig(**SMALL),
    "roberta": lambda: RobertaConfig(**SMALL, pad_token_id=1),
    "deberta": lambda: DebertaConfig(**SMALL, relative_attention=True, max_relative_positions=16,
                                     pos_att_type=["c2p", "p2c"]),
    "deberta-v2": lambda: DebertaV2Config(**SMALL, relative_attention=True, position_buckets=8,
                                          pos_att_type=["c2p", "p2c"]),
    "bart": lambda: BartConfig(vocab_size=100, d_model=32, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37,
                               decoder_ffn_dim=37, max_position_embeddings=64, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2),
    "xlnet": lambda: XLNetConfig(vocab_size=100, d_model=32, n_layer=2, n_head=4, d_inner=37),
    "gpt2": lambda: GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                               pad_token_id=0, bos_token_id=2, eos_token_id=2),
    # all-mpnet-base-v2's architecture (--plm mpnet-base): attention is attn.q/k/v/o, the head
    # classifier.dense + classifier.out_proj, and no pooler in the sequence classifier
    "mpnet": lambda: MPNetConfig(**SMALL, pad_token_id=1),  # 32 relative buckets: MPNet hard-codes them
}
ARCHITECTURES = tuple(CONFIGS)


def tiny_model(arch: str = "bert", num_labels: int = 2, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised `arch` classifier in eval mode (deterministic outputs)."""
    torch.manual_seed(seed)
    config = CONFIGS[arch]()
    config.num_labels = num_labels
    if num_labels == 1:
        config.problem_type = "regression"
    return AutoModelForSequenceClassification.from_config(config).eval()


def tiny_batch(arch: str = "bert", batch: int = 3, length: int = 9, seed: int = 0) -> dict:
    """Token ids ending in an EOS token (BART's head reads the last EOS), with an attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (batch, length), generator=g)
    ids[:, -1] = 2
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def save_tiny_plm(directory, tokenizer, seed: int = 0) -> str:
    """A random 2-layer BERT with `tokenizer`'s vocabulary saved as a --plm directory; its path."""
    from transformers import BertModel

    torch.manual_seed(seed)
    config = BertConfig(**{**SMALL, "vocab_size": tokenizer.vocab_size, "max_position_embeddings": 128})
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def write_tiny_dataset(root, regression: bool = True, dev_rows: int = 13, names=("mine.csv", "mine_dev.csv")):
    """24 examples of a task of our own ("sample i is good and fine" / "... is bad"), as a training CSV
    and a dev CSV of its first `dev_rows`: a regression whose correlations tell runs apart, or two
    classes named by words. Returns the two paths."""
    from pathlib import Path

    if regression:
        rows = ["text,score"] + [f"sample {i} {'is good and fine' if i % 3 else 'is bad'},{(i % 5) * 0.7 + 0.1:.1f}"
                                 for i in range(24)]
    else:
        rows = ["text,label"] + [f"sample {i} {'is good and fine' if i % 3 else 'is bad'},{'good' if i % 3 else 'bad'}"
                                 for i in range(24)]
    train, dev = Path(root) / names[0], Path(root) / names[1]
    train.write_text("\n".join(rows) + "\n")
    dev.write_text("\n".join(rows[:dev_rows]) + "\n")
    return train, dev
