"""cka_core.io.safezip, the one strict zip reader: what it refuses (each trick by itself), what it caps
(every compression method it reads), what it reads exactly as zipfile does (archives written by
zipfile, numpy, torch.save, torch.export.save), and that no input makes it raise anything but
RepresentationError."""
from __future__ import annotations

import bz2
import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cka_core import RepresentationError
from cka_core.io.safezip import BZIP2, DEFLATED, STORED, extract, open_archive
from tests.hostile.cases_archives import Entry, central, end, local, pt2_bytes, raw_zip, two_directories


def _zipfile(files: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _refused(data: bytes, match: str, **options):
    with pytest.raises(RepresentationError, match=match) as info:
        archive = open_archive(data, "x.zip", **options)
        for name in archive.names:
            archive.read(name)
    assert "x.zip" in str(info.value)
    return info.value


# ----------------------------------------------------------------- round trips

def _torch_save() -> bytes:
    buffer = io.BytesIO()
    torch.save({"a": torch.randn(4, 3), "b": torch.arange(5)}, buffer)
    return buffer.getvalue()


def _numpy(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, a=np.random.default_rng(0).normal(size=(50, 7)), b=np.ones(3))
    return buffer.getvalue()


ROUND_TRIPS = {
    "zipfile_stored": lambda: _zipfile({"a.txt": b"hello" * 100, "d/": b"", "d/b.bin": bytes(range(256)) * 50}),
    "zipfile_deflated": lambda: _zipfile({"a.txt": b"hello" * 100, "b": bytes(range(256)) * 50}, zipfile.ZIP_DEFLATED),
    "zipfile_bzip2": lambda: _zipfile({"a.txt": b"hello" * 100, "b": bytes(range(256)) * 50}, zipfile.ZIP_BZIP2),
    "numpy_savez": lambda: _numpy(False),
    "numpy_savez_compressed": lambda: _numpy(True),
    "torch_save": _torch_save,
    "torch_export_save": pt2_bytes,
}


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_reads_what_writers_write_as_zipfile_does(case):
    data = ROUND_TRIPS[case]()
    archive = open_archive(data, "x.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as reference:
        assert archive.names == tuple(reference.namelist())
        for name in archive.names:
            assert archive.read(name) == reference.read(name)
            assert b"".join(archive.chunks(name)) == reference.read(name)


def test_stored_members_give_where_their_bytes_lie():
    data = _numpy(False)
    for member in open_archive(data, "x.npz").members:
        assert member.method == STORED
        assert data[member.data_offset: member.data_offset + member.size] == open_archive(data, "x.npz").read(
            member.name)


def test_extract_writes_every_file(tmp_path):
    extract(open_archive(ROUND_TRIPS["zipfile_deflated"](), "x.zip"), tmp_path)
    assert (tmp_path / "a.txt").read_bytes() == b"hello" * 100
    assert (tmp_path / "b").read_bytes() == bytes(range(256)) * 50


# ----------------------------------------------------------------- refusals

def _with_comment(data: bytes) -> bytes:
    return data[:-2] + struct.pack("<H", 5) + b"hello"


def _encrypted() -> bytes:
    entry = Entry.of("a", b"secret")
    record = bytearray(local(entry))
    record[6] |= 1
    directory = bytearray(central(entry, 0))
    directory[8] |= 1
    return bytes(record) + bytes(directory) + end(1, len(directory), len(record))


def _local_disagrees() -> bytes:
    entry = Entry.of("a", b"content")
    lie = Entry("a", entry.stored, 0, entry.crc ^ 1, entry.size)  # only the central entry claims this CRC
    record = local(entry)
    directory = central(lie, 0)
    return record + directory + end(1, len(directory), len(record))


def _hidden_between() -> bytes:
    """A record no directory entry lists, between two that are listed."""
    a, hidden, b = Entry.of("a", b"1"), Entry.of("h", b"x"), Entry.of("b", b"2")
    body = local(a) + local(hidden)
    directory = central(a, 0) + central(b, len(body))
    body += local(b)
    return body + directory + end(2, len(directory), len(body))


REFUSALS = {
    "duplicate_names": (lambda: raw_zip([Entry.of("a", b"1"), Entry.of("a", b"2")]), "named alike"),
    "duplicate_after_normalising": (lambda: raw_zip([Entry.of("d/A.txt", b"1"), Entry.of("d//./a.txt", b"2")]),
                                    "named alike"),
    "second_directory": (lambda: two_directories({"a": b"1", "b": b"2"}, {"a": b"evil"}), "central directory"),
    "prepended_bytes": (lambda: b"junk" + _zipfile({"a": b"1"}), "central directory|bytes before"),
    "trailing_bytes": (lambda: _zipfile({"a": b"1"}) + b"junk", "end record"),
    "comment": (lambda: _with_comment(_zipfile({"a": b"1"})), "comment|end record"),
    "hidden_member_between": (_hidden_between, "bytes after its data"),
    "local_central_disagree": (_local_disagrees, "disagree"),
    "encrypted": (_encrypted, "encrypted"),
    "absolute_name": (lambda: raw_zip([Entry.of("/etc/x", b"1")]), "outside the archive"),
    "dotdot_name": (lambda: raw_zip([Entry.of("a/../../x", b"1")]), "outside the archive"),
    "backslash_name": (lambda: raw_zip([Entry.of("a\\..\\x", b"1")]), "outside the archive"),
    "drive_letter": (lambda: raw_zip([Entry.of("C:/x", b"1")]), "outside the archive"),
    "nul_in_name": (lambda: raw_zip([Entry.of("a\x00.png", b"1")]), "NUL"),
    "symlink": (lambda: raw_zip([Entry("a", b"/etc", 0, zlib.crc32(b"/etc"), 4, 0o120777 << 16)]), "link"),
    "fifo": (lambda: raw_zip([Entry("a", b"", 0, 0, 0, 0o010644 << 16)]), "special file"),
    "too_many_members": (lambda: raw_zip([Entry.of(f"m{i}", b"") for i in range(20)]), "over the limit"),
    "lzma": (lambda: raw_zip([Entry("a", b"\x00" * 20, 14, 0, 10)]), "LZMA"),
    "bad_crc": (lambda: raw_zip([Entry("a", b"abc", 0, 1234, 3)]), "checksum"),
    "truncated": (lambda: _zipfile({"a": b"1" * 100})[:-30], "end record|not a readable"),
    "not_a_zip": (lambda: b"plainly not a zip archive", "not a readable .zip"),
    "empty": (lambda: b"", "not a readable .zip"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_file_and_say_what_to_do(case):
    make, match = REFUSALS[case]
    message = str(_refused(make(), match, max_members=10))
    assert message.endswith(".") and ";" in message  # what was wrong; how to fix it


# ----------------------------------------------------------------- caps on every method

def _bomb(method: int, declared: int, inflated: int = 64 << 20) -> bytes:
    content = bytes(inflated)
    if method == DEFLATED:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        stored = compressor.compress(content) + compressor.flush()
    elif method == BZIP2:
        stored = bz2.compress(content, 9)
    else:
        stored = content
    return raw_zip([Entry("a", stored, method, zlib.crc32(bytes(declared)), declared)])


@pytest.mark.parametrize("method", [DEFLATED, BZIP2])
def test_a_member_stops_inflating_past_its_declared_size(method):
    chunks = open_archive(_bomb(method, 10), "x.zip").chunks("a")
    with pytest.raises(RepresentationError, match="inflates past its declared 10 bytes"):
        assert sum(len(chunk) for chunk in chunks) <= 11  # never more than the cap plus one byte


@pytest.mark.parametrize("method", [DEFLATED, BZIP2])
def test_a_declared_ratio_over_the_cap_is_refused_before_reading(method):
    _refused(_bomb(method, 64 << 20), "zip bomb")


@pytest.mark.parametrize("method", [DEFLATED, BZIP2])
def test_inflation_ratio_and_archive_caps_come_from_the_environment(method, monkeypatch):
    data = _bomb(method, 4 << 20, 4 << 20)
    _refused(data, "zip bomb")  # 4 MiB from a few bytes: over 200x (the default)
    monkeypatch.setenv("CKA_MODEL_INFLATION_RATIO", "1000000")
    assert len(open_archive(data, "x.zip").read("a")) == 4 << 20
    monkeypatch.setenv("CKA_MODEL_ARCHIVE_MB", "1")
    _refused(data, "CKA_MODEL_ARCHIVE_MB")


def test_a_lying_ratio_is_caught_while_inflating():
    """Declared within the ratio the caller allows, the stream then inflates further: stopped at the cap."""
    data = _bomb(DEFLATED, 10)
    archive = open_archive(data, "x.zip", max_ratio=None)
    with pytest.raises(RepresentationError, match="inflates past"):
        archive.read("a")


def test_a_caller_limit_is_checked_before_reading():
    with pytest.raises(RepresentationError, match="allowed here"):
        open_archive(_zipfile({"a": bytes(1000)}), "x.zip").read("a", limit=100)


# ----------------------------------------------------------------- no other exception, whatever the bytes

def _read_all(data: bytes) -> None:
    try:
        archive = open_archive(data, "fuzz.zip", max_members=100)
        for name in archive.names:
            archive.read(name)
    except RepresentationError:
        pass


SEEDS = [_zipfile({"a.txt": b"hello world " * 20, "b/": b"", "b/c": bytes(range(200))}, zipfile.ZIP_DEFLATED),
         _zipfile({"x": b"abc" * 30}, zipfile.ZIP_BZIP2), _numpy(False)]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_representation_error(data):
    _read_all(data)
    _read_all(b"PK\x03\x04" + data)
    _read_all(data + b"PK\x05\x06" + bytes(18))


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), data=st.data())
def test_mutated_archives_raise_only_representation_error(seed, data):
    archive = bytearray(SEEDS[seed])
    for position, value in data.draw(st.lists(st.tuples(st.integers(0, len(archive) - 1), st.integers(0, 255)),
                                              min_size=1, max_size=4)):
        archive[position] = value
    if data.draw(st.booleans()):
        archive = archive[: data.draw(st.integers(0, len(archive)))]
    _read_all(bytes(archive))
