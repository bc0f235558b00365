"""Pretrained language models: the `--plm` registry and loading (`plm`), and opt-in weights that
arrive in pieces (`weight_files`)."""
