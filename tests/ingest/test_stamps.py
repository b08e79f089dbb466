"""``file_stamps``: the key of an adapter's table cache changes with any edit of its files."""

from __future__ import annotations

import os
from pathlib import Path

from fhirhub.ingest.stamps import file_stamps, held


def test_stamps_follow_edits_new_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "segments").mkdir()
    (tmp_path / "a.yaml").write_text("a: 1\n")
    (tmp_path / "segments" / "PID.yaml").write_text("b: 1\n")
    (tmp_path / "notes.txt").write_text("not a table\n")
    flat = file_stamps(tmp_path, ".yaml")
    deep = file_stamps(tmp_path, ".yaml", recursive=True)
    assert [Path(p).name for p, _, _ in flat] == ["a.yaml"]
    assert [Path(p).relative_to(tmp_path).as_posix() for p, _, _ in deep] == [
        "a.yaml",
        "segments/PID.yaml",
    ]
    (tmp_path / "segments" / "PID.yaml").write_text("b: 22\n")  # a longer file
    assert file_stamps(tmp_path, ".yaml", recursive=True) != deep
    edited = file_stamps(tmp_path, ".yaml", recursive=True)
    st = os.stat(tmp_path / "a.yaml")
    os.utime(tmp_path / "a.yaml", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # same size
    assert file_stamps(tmp_path, ".yaml", recursive=True) != edited
    assert file_stamps(tmp_path / "missing", ".yaml") == ()


def test_a_batch_takes_each_directorys_stamps_once(tmp_path: Path) -> None:
    """Within ``held`` (a batch of messages) the first stamps of a directory are kept: the
    batch is mapped with one version of the tables, and an edit is seen by the next batch."""
    (tmp_path / "a.yaml").write_text("a: 1\n")
    before = file_stamps(tmp_path, ".yaml")
    with held():
        assert file_stamps(tmp_path, ".yaml") == before
        (tmp_path / "a.yaml").write_text("a: 22\n")
        assert file_stamps(tmp_path, ".yaml") == before
        assert file_stamps(tmp_path, ".yaml", recursive=True) != before  # another look
    assert file_stamps(tmp_path, ".yaml") != before
