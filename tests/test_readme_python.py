"""The README's "your own dataset from Python" script runs as written, on a tiny random PLM and a
small CSV (only the PLM, the seeds and the step budget are swapped for a test-sized run), and its
saved model answers through `transformers.pipeline` with the dataset's own class names."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Your own small dataset"


def readme_script() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def swap(script: str, old: str, new: str) -> str:
    assert old in script, f"the README's script no longer has {old!r}"
    return script.replace(old, new, 1)


def test_the_readme_python_script_runs_and_its_model_names_the_classes(tmp_path, tokenizer):
    from tiny_models import save_tiny_plm

    plm = save_tiny_plm(tmp_path / "plm", tokenizer)
    rows = ["text,label"] + [f"review {i} {'was lovely' if i % 2 else 'was dreadful'},{'pos' if i % 2 else 'neg'}"
                             for i in range(20)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:9]) + "\n")
    script = readme_script()
    script = swap(script, 'plm="mpnet-base-bf16"', f"plm={plm!r}")
    script = swap(script, "seeds=(0, 1, 2)", "seeds=(0,)")
    script = swap(script, "Config(", "Config(max_steps=2, batch_size=4, progress=False, ")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.strip().splitlines()[-3:]  # after run_sweep's own progress lines
    expected = [["vanilla-matched", "0", "accuracy"], ["agwm", "0", "accuracy"]]
    assert [line.split()[:3] for line in printed[:2]] == expected
    assert re.fullmatch(r"\[\{'label': '(neg|pos)', 'score': [0-9.e-]+\}\]", printed[2]), printed[2]
    assert len(list((tmp_path / "runs" / "mine-mpnet" / "models").iterdir())) == 2
