"""Running experiments: the run spec (`experiment`), one run (`single_run`), sweeps over tasks x seeds
x methods, worker pools and shards (`pool`), `torchrun`, run records (runs.jsonl) and the versions they
name, curve files and the logger that writes them (`run_log`), and a process's memory."""
