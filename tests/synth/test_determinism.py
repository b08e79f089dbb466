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
