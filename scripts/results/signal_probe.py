"""A first look at the signal in alpha's hypergradient on MiniLM, at the search's first outer step.

For each hypergradient form: one STS-B BLO-train batch, then the alpha hypergradient on several
independent BLO-val batches via agwm_betty.core.diagnostics.alpha_hypergradient; prints the mean
pairwise cosine of the totals (and of the direct terms) and the term norms, as JSON lines. Other
forms, a package.module:function of one's own too, can be named on the command line.

    .venv/bin/python scripts/results/signal_probe.py > results/signal_probe/probe.jsonl
    .venv/bin/python scripts/results/signal_probe.py darts-paper mymod:scaled_darts
"""
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agwm_betty.config import Config  # noqa: E402
from agwm_betty.core.diagnostics import alpha_hypergradient  # noqa: E402
from agwm_betty.core.surgery import HEAD_MODULES, apply_mixup  # noqa: E402
from agwm_betty.data import GLUE_TASKS, load_glue, make_loader, tokenize  # noqa: E402
from agwm_betty.models.plm import load_plm  # noqa: E402

BATCHES, FORMS = 3, tuple(sys.argv[1:]) or ("darts-paper", "darts", "darts-official", "first-order")


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads.values()]).double()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def main() -> None:
    torch.manual_seed(0)
    model, tokenizer, new_modules = load_plm("minilm", 1, is_regression=True)
    apply_mixup(model, exclude_modules=HEAD_MODULES + tuple(new_modules))
    model.train()
    raw = load_glue("stsb", Path(__file__).resolve().parents[3] / "shared" / "glue_data")["train"]
    raw = raw.shuffle(seed=0).select(range(16 * (BATCHES + 1)))
    data = tokenize(raw, tokenizer, GLUE_TASKS["stsb"], max_length=64)
    batches = list(itertools.islice(iter(make_loader(data, tokenizer, 16)), BATCHES + 1))
    train, vals = batches[0], batches[1:]
    for form in FORMS:
        cfg = Config(hypergradient=form, search_lr=1e-4, warmup_ratio=0.0, progress=False, diagnostic_points=0)
        grads = [alpha_hypergradient(model, train, v, cfg) for v in vals]
        pairs = list(itertools.combinations(range(BATCHES), 2))
        print(json.dumps({
            "hypergradient": form,
            "cosine_total": sum(cosine(flat(grads[i]["total"]), flat(grads[j]["total"]))
                                for i, j in pairs) / len(pairs),
            "cosine_direct": sum(cosine(flat(grads[i]["direct"]), flat(grads[j]["direct"]))
                                 for i, j in pairs) / len(pairs),
            "direct_norm": sum(float(flat(g["direct"]).norm()) for g in grads) / BATCHES,
            "implicit_norm": sum(float(flat(g["implicit"]).norm()) for g in grads) / BATCHES,
        }), flush=True)


if __name__ == "__main__":
    main()
