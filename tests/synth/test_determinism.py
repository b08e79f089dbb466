"""Same seed, same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fhirhub.synth.generate import build
from fhirhub.synth.writer import write_city


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def test_same_seed_gives_same_bytes_serial_and_parallel(tmp_path: Path) -> None:
    write_city(build(250, 11), tmp_path / "a", workers=1)
    write_city(build(250, 11), tmp_path / "b", workers=2)
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")


def test_another_seed_gives_another_city(tmp_path: Path) -> None:
    write_city(build(250, 11), tmp_path / "a", workers=1)
    write_city(build(250, 12), tmp_path / "b", workers=1)
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "b")


def test_bytes_do_not_depend_on_the_string_hash_seed(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from fhirhub.synth.generate import build; "
        "from fhirhub.synth.writer import write_city; "
        "write_city(build(150, 4), Path(sys.argv[1]), workers=1)"
    )
    for name, hash_seed in (("a", "1"), ("b", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")


def test_rewriting_a_city_leaves_no_stale_files(tmp_path: Path) -> None:
    write_city(build(400, 11), tmp_path / "a", workers=1)
    write_city(build(150, 11), tmp_path / "a", workers=1)  # a smaller city over a larger one
    write_city(build(150, 11), tmp_path / "b", workers=1)
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")


def test_refuses_a_directory_it_did_not_write(tmp_path: Path) -> None:
    import pytest

    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        write_city(build(50, 1), tmp_path, workers=1)
    assert (tmp_path / "mine.txt").read_text() == "keep"
