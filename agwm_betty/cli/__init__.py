"""The command-line programs, one module each, named after the command: `agwm_glue` (`agwm-glue`, the
sweep), `agwm_report` (`agwm-report`, the tables) and `agwm_weights` (`python -m
agwm_betty.cli.agwm_weights`, opt-in PLM weights); experiments/glue.py and experiments/report.py call the
same mains."""
