"""The command-line programs: `agwm-glue` (cli.glue, the sweep) and `agwm-report` (cli.report, the
tables), installed as console scripts; experiments/glue.py and experiments/report.py call the same mains."""
