"""Checksummed cache entries (adapters, converted models) and durable atomic writes."""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import pytest

from rag.core import cache
from rag.core.store import (
    CHECKSUMS_FILE,
    CorruptEntryError,
    verify_checksums,
    verify_entry,
    write_checksums,
)


def _safetensors(path: Path, values: list[float]) -> None:
    """A minimal safetensors file: 8-byte header length, JSON header, float32 data."""
    data = struct.pack(f"<{len(values)}f", *values)
    header = {"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, len(data)]}}
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)


@pytest.fixture
def entry(tmp_path) -> Path:
    folder = tmp_path / "entry"
    (folder / "sub").mkdir(parents=True)
    _safetensors(folder / "adapter_model.safetensors", [1.0, 2.0, 3.0])
    (folder / "sub" / "config.json").write_text("{}")
    (folder / ".fingerprint.json").write_text("{}")  # a hidden memo: not content
    write_checksums(folder)
    return folder


def test_an_intact_entry_verifies_and_hidden_memos_are_not_listed(entry):
    verify_checksums(entry)
    listed = json.loads((entry / CHECKSUMS_FILE).read_text())
    assert sorted(listed) == ["adapter_model.safetensors", "sub/config.json"]
    (entry / ".fingerprint.json").write_text('{"changed": true}')
    verify_checksums(entry)


def test_truncated_flipped_and_missing_files_fail(entry):
    weights = entry / "adapter_model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-4])
    with pytest.raises(CorruptEntryError, match="wrong size"):
        verify_checksums(entry)
    flipped = bytearray(original)
    flipped[-1] ^= 0x01
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CorruptEntryError, match="does not match the sha256"):
        verify_checksums(entry)
    weights.unlink()
    with pytest.raises(CorruptEntryError, match="missing"):
        verify_checksums(entry)


def test_an_entry_from_before_checksums_is_checked_then_adopted(entry, caplog):
    (entry / CHECKSUMS_FILE).unlink()
    weights = entry / "adapter_model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[:-4])  # shorter than its header says
    with pytest.raises(CorruptEntryError, match="header says"):
        verify_entry(entry, "adapter")
    weights.write_bytes(intact)
    with caplog.at_level(logging.INFO):
        verify_entry(entry, "adapter")
    assert "had no checksums; recorded them" in caplog.text
    assert (entry / CHECKSUMS_FILE).is_file()


def test_atomic_writes_fsync_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("rename") or real_replace(a, b))
    monkeypatch.setattr(os, "rename", lambda a, b: events.append("rename") or real_rename(a, b))
    cache.atomic_write_text(tmp_path / "results.json", "{}")
    assert events == ["fsync-file", "rename", "fsync-dir"]

    events.clear()
    cache.atomic_dir(tmp_path / "entry", lambda tmp: (tmp / "a.bin").write_bytes(b"x"))
    assert events == ["fsync-file", "fsync-dir", "rename", "fsync-dir"]
