"""The README's Trainer script runs as written, on the embedded MiniLM and a small CSV: first as the
plain `transformers.Trainer` script, then with the README's two-line change, which makes it the method."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## In your own `transformers.Trainer` script"


def readme_blocks() -> tuple[str, str]:
    """The section's Python script and its diff block."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    script = re.search(r"```python\n(.*?)```", section, re.S)[1]
    diff = re.search(r"```diff\n(.*?)```", section, re.S)[1]
    return script, diff


def apply_diff(script: str, diff: str) -> str:
    """Each run of '-' lines in the diff replaced by the '+' lines after it; '-' lines must be in the script."""
    lines, out = diff.splitlines(), script
    i = 0
    while i < len(lines):
        removed, added = [], []
        while i < len(lines) and lines[i].startswith("-"):
            removed.append(lines[i][1:])
            i += 1
        while i < len(lines) and lines[i].startswith("+"):
            added.append(lines[i][1:])
            i += 1
        old = "\n".join(removed)
        assert old in out, f"the README's diff removes a line its script lacks: {old!r}"
        out = out.replace(old, "\n".join(added), 1)
    return out


def write_csvs(folder: Path) -> None:
    """12 training and 6 dev sentences, label 1 = positive."""
    good = ["a wonderful film", "great acting and a moving story", "i loved every minute", "a delight",
            "brilliant and funny", "superb", "warm and charming", "a joy to watch", "truly excellent"]
    bad = ["a dull mess", "boring and far too long", "i hated it", "awful", "a waste of time", "tedious",
           "clumsy and flat", "painfully bad", "a tiresome film"]
    rows = [(t, 1) for t in good] + [(t, 0) for t in bad]
    train, dev = rows[:6] + rows[9:15], rows[6:9] + rows[15:]
    for name, part in (("train.csv", train), ("dev.csv", dev)):
        (folder / name).write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in part), encoding="utf-8")


@pytest.mark.parametrize("variant", ["plain", "method"])
def test_the_readme_trainer_script_runs_as_written(variant, tmp_path):
    script, diff = readme_blocks()
    if variant == "method":
        script = apply_diff(script, diff)
        assert "AGWMTrainer(" in script and "Trainer(model" not in script.replace("AGWMTrainer(", "")
    write_csvs(tmp_path)
    (tmp_path / "script.py").write_text(script, encoding="utf-8")
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'eval_accuracy'" in done.stdout and "'eval_f1'" in done.stdout
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "model")  # plain transformers
    assert type(model).__name__ == "BertForSequenceClassification"
    assert (tmp_path / "out" / "agwm_search.pt").is_file() == (variant == "method")
    assert (tmp_path / "out" / "model" / "agwm_alphas.pt").is_file() == (variant == "method")
