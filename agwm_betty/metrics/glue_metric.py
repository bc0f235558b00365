"""GLUE's metrics as a local `evaluate` module: load it by path, it needs no network.

    import evaluate
    from agwm_betty.metrics.scores import GLUE_METRIC_PATH
    glue = evaluate.load(GLUE_METRIC_PATH, "mrpc", keep_in_memory=True)
    glue.compute(predictions=[0, 1, 1], references=[0, 1, 0])   # {'accuracy': 0.667, 'f1': 0.8}

The configurations and keys are those of the hub's `glue` metric: `matthews_correlation` for CoLA,
`pearson` and `spearmanr` for STS-B, `accuracy` and `f1` for MRPC and QQP, `accuracy` for the
others; values on the 0-1 scale. The arithmetic is scikit-learn's and scipy's. Degenerate inputs
have defined values instead of NaN: MCC is 0 when the references or the predictions hold a single
class (scikit-learn's value), binary F1 is 0 without a true positive (zero_division=0), and the
correlations are 0 when either side is constant (scipy would give NaN, which would poison every
mean over seeds).

evaluate reads this file's import lines to find what it needs: keep one import per line.
"""
import warnings

import datasets
import evaluate
import numpy as np

CONFIGS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte",
           "wnli", "hans")

_DESCRIPTION = "GLUE's metrics (accuracy, binary F1, Matthews correlation, Pearson and Spearman), offline."
_CITATION = """@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}"""
_KWARGS = """
Args:
    predictions: class ids (a score per example for stsb).
    references: gold class ids (gold scores for stsb).
Returns:
    cola: matthews_correlation; stsb: pearson, spearmanr; mrpc, qqp: accuracy, f1; others: accuracy.
"""


def accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(references, predictions))


def binary_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    for name, values in (("references", references), ("predictions", predictions)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"binary F1 needs 0/1 {name}, got classes {np.unique(values).tolist()}")
    from sklearn.metrics import f1_score

    return float(f1_score(references, predictions, pos_label=1, zero_division=0.0))


def matthews(predictions: np.ndarray, references: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    with warnings.catch_warnings():  # a single class is the defined 0, not news
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return float(matthews_corrcoef(references, predictions))


def correlation(kind: str, predictions: np.ndarray, references: np.ndarray) -> float:
    if np.ptp(predictions) == 0 or np.ptp(references) == 0:
        return 0.0
    from scipy import stats

    test = stats.pearsonr if kind == "pearson" else stats.spearmanr
    return float(test(predictions, references).statistic)


class Glue(evaluate.Metric):
    """The GLUE benchmark's metric for one task (the configuration name)."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIGS:
            raise KeyError(f"unknown GLUE configuration {self.config_name!r}; choose from {', '.join(CONFIGS)}")
        value = datasets.Value("float64" if self.config_name == "stsb" else "int64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS,
            features=datasets.Features({"predictions": value, "references": value}),  # lists: numpy would be float32
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        predictions, references = np.asarray(predictions), np.asarray(references)
        if self.config_name == "cola":
            return {"matthews_correlation": matthews(predictions, references)}
        if self.config_name == "stsb":
            return {"pearson": correlation("pearson", predictions, references),
                    "spearmanr": correlation("spearman", predictions, references)}
        if self.config_name in ("mrpc", "qqp"):
            return {"accuracy": accuracy(predictions, references), "f1": binary_f1(predictions, references)}
        return {"accuracy": accuracy(predictions, references)}
