"""One strict zip reader for every zip archive the product opens (.npz, .pt, .pt2, zips of images or
of a model directory).

Python's ``zipfile`` and torch's reader (miniz) read a zip differently: zipfile finds the directory
next to the end record, miniz where the end record says; with two members of one name, each takes a
different one. A hostile archive exploits such disagreements to show a checker one member and a
loader another. So :func:`open_archive` parses the *whole* archive itself and accepts only the one
reading every zip reader agrees on: local records tiling the file from offset 0, one central
directory right after them, its entries matching the local records field by field, one end record
(zip64 records where needed) at the very end, and nothing else: no prepended or trailing byte, no
comment, no duplicate or unsafe names, no encryption, no links.

Reading a member never trusts its declared sizes: it is inflated in chunks with a running cap, and
stops as soon as it exceeds its declared size or ``caps.inflation_ratio`` times its stored size (a
zip bomb); declared sizes are summed against ``caps.archive_bytes`` before anything is read, and
the CRC is checked at the end. Every refusal is a RepresentationError naming the file and member.
"""
from __future__ import annotations

import bz2
import struct
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import RepresentationError

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
METHOD_NAMES = {STORED: "stored", DEFLATED: "deflate", BZIP2: "bzip2", LZMA: "LZMA", 9: "deflate64", 99: "AES"}
DEFAULT_MAX_MEMBERS = 10_000
#: Inflated bytes a member may have beyond ``inflation_ratio`` x its stored size (small files, headers).
RATIO_SLACK = 1 << 20
_CHUNK = 1 << 20  # compressed bytes fed, and inflated bytes taken, at a time

_LOCAL, _CENTRAL, _END = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_END64, _LOCATOR64, _DESCRIPTOR = b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08"
_LOCAL_FMT, _CENTRAL_FMT, _END_FMT = "<4sHHHHHLLLHH", "<4sHHHHHHLLLHHHHHLL", "<4sHHHHLLH"
_END64_FMT, _LOCATOR64_FMT = "<4sQHHLLQQQQ", "<4sLQL"
_FLAG_ENCRYPTED, _FLAG_DESCRIPTOR, _FLAG_STRONG, _FLAG_UTF8 = 0x1, 0x8, 0x40, 0x800
_UNIX, _S_IFMT, _S_IFREG, _S_IFDIR = 3, 0o170000, 0o100000, 0o040000
_FIX = "re-create the archive with a standard zip tool (or the library that wrote it) from the original files"


@dataclass(frozen=True)
class Member:
    """One file or directory of an archive, as its (checked) central directory entry describes it."""

    name: str
    size: int              # declared inflated size (never trusted: reads stop beyond it)
    compressed_size: int
    method: int
    crc: int
    is_dir: bool
    data_offset: int       # where its stored bytes start in the archive


def _caps():
    """The model caps in force (imported here: cka_core.models imports this module's users)."""
    from .caps import current

    return current()


class _Bad(Exception):
    """What the parser found wrong (open_archive words it as a RepresentationError)."""

    def __init__(self, why: str, member: str | None = None, fix: str | None = None):
        super().__init__(why)
        self.why, self.member, self.fix = why, member, fix


def _refuse(filename: str, why: str, member: str | None = None, fix: str = _FIX) -> RepresentationError:
    where = f"{filename!r}" + (f", member {member!r}," if member is not None else "")
    return RepresentationError(f"{where} is refused: {why}; {fix}.")


class Archive:
    """A validated archive over ``data``: its members (in file order) and bounded reads of them."""

    def __init__(self, data, filename: str, members: tuple[Member, ...], max_ratio: int | None, fix: str):
        self.data, self.filename, self.members = data, filename, members
        self.max_ratio, self.fix = max_ratio, fix
        self._by_name = {m.name: m for m in members}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def member(self, name: str) -> Member:
        """The member called ``name`` (a RepresentationError if there is none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise _refuse(self.filename, "it has no such member", name, "add it, or upload the right archive") from None

    def chunks(self, name: str, *, limit: int | None = None) -> Iterator[bytes]:
        """The member's inflated bytes, a chunk at a time, capped (see the module docstring; ``limit``
        lowers the cap further). Raises RepresentationError past a cap, on corrupt data or a bad CRC."""
        member = self.member(name)
        cap = member.size if self.max_ratio is None else min(member.size, _ratio_cap(member, self.max_ratio))
        if limit is not None and member.size > limit:
            raise _refuse(self.filename, f"it inflates to {_size(member.size)}, over the {_size(limit)} allowed here",
                          name, "upload a smaller file")
        stored = memoryview(self.data)[member.data_offset: member.data_offset + member.compressed_size]
        crc = produced = 0
        for chunk in _inflate(member.method, stored, cap, self.filename, name, self.fix):
            produced += len(chunk)
            if produced > cap:
                raise _refuse(self.filename, f"it inflates past its declared {_size(member.size)} or the "
                                             "inflation ratio allowed (a zip bomb?)", name, self.fix)
            crc = zlib.crc32(chunk, crc)
            yield chunk
        if produced != member.size or crc != member.crc:
            raise _refuse(self.filename, "its content does not match its declared size and checksum (corrupt)", name,
                          self.fix)

    def read(self, name: str, *, limit: int | None = None) -> bytes:
        """The member's whole inflated content (bounded as :meth:`chunks` is)."""
        return b"".join(self.chunks(name, limit=limit))


def _ratio_cap(member: Member, ratio: int) -> int:
    """What ``member`` may inflate to at ``ratio`` times its stored size, plus a slack for small files."""
    return member.compressed_size * ratio + RATIO_SLACK


def _size(n: int) -> str:
    """A byte count for a message."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _inflate(method: int, stored: memoryview, cap: int, filename: str, name: str, fix: str) -> Iterator[bytes]:
    """Inflated chunks of ``stored``, never more than ``cap`` + 1 bytes in all (a decompressor is asked
    for at most what is left under the cap, so a bomb costs one chunk). Fails if the compressed stream
    ends early or has bytes after its end."""
    if method == STORED:
        for start in range(0, len(stored), _CHUNK):
            yield bytes(stored[start: start + _CHUNK])
        return
    if method == DEFLATED:
        decompressor = zlib.decompressobj(-15)
    elif method == BZIP2:
        decompressor = bz2.BZ2Decompressor()
    else:
        raise _refuse(filename, f"it uses the {METHOD_NAMES.get(method, f'unknown ({method})')} compression method, "
                                "which this tool does not read", name,
                      "re-create the archive with stored or deflate (standard zip) compression")
    position = produced = 0
    pending, stalled = b"", False
    try:
        while not decompressor.eof:
            # zlib hands back the input it did not use; bz2 keeps it and says when it needs more.
            hungry = not pending if method == DEFLATED else decompressor.needs_input
            if hungry and position < len(stored):
                pending, position = bytes(stored[position: position + _CHUNK]), position + _CHUNK
            elif hungry and stalled:
                raise _refuse(filename, "its compressed data ends early (truncated or corrupt)", name, fix)
            chunk = decompressor.decompress(pending, min(_CHUNK, cap + 1 - produced))
            pending = decompressor.unconsumed_tail if method == DEFLATED else b""
            stalled = not chunk
            produced += len(chunk)
            if chunk:
                yield chunk
            if produced > cap:
                return
    except (zlib.error, OSError, EOFError, ValueError) as error:
        raise _refuse(filename, f"its compressed data is corrupt ({type(error).__name__})", name, fix) from None
    if pending or position < len(stored) or decompressor.unused_data:
        raise _refuse(filename, "it has bytes after the end of its compressed data", name, fix)


# ----------------------------------------------------------------- parsing

_CAPS_RATIO = object()  # open_archive's default: the ratio of the caps in force


def open_archive(data, filename: str, *, max_members: int = DEFAULT_MAX_MEMBERS, max_ratio=_CAPS_RATIO,
                 fix: str = _FIX) -> Archive:
    """Parse and validate the whole of ``data`` (bytes, or any buffer: an mmap of a large file) as one
    zip archive; a RepresentationError naming the file, the member and ``fix`` if anything is amiss
    (see the module docstring). Nothing is inflated here: :meth:`Archive.read` does that, capped.

    ``max_ratio``: how many times its stored size a member may inflate to (default
    ``caps.inflation_ratio``); None where the caller bounds each member's content itself (an .npz
    array by its .npy header), so that a legitimately compressible array still loads."""
    if max_ratio is _CAPS_RATIO:
        max_ratio = _caps().inflation_ratio
    # Released on the way out, even on an error: a caller may close the mmap it passed.
    with memoryview(data) as view:
        try:
            cd_offset, count, cd_end = _end_records(view)
            if count > max_members:
                raise _Bad(f"it lists {count:,} members, over the limit of {max_members:,}")
            members = _match_local_records(view, _central_entries(view, cd_offset, cd_end, count), cd_offset)
            _check_names(members)
        except _Bad as bad:
            raise _refuse(filename, bad.why, bad.member, bad.fix or fix) from None
    total = sum(m.size for m in members)
    archive_bytes = _caps().archive_bytes
    if total > archive_bytes:
        raise _refuse(filename, f"its members declare {_size(total)} inflated, over the limit of "
                                f"{_size(archive_bytes)} (CKA_MODEL_ARCHIVE_MB)", fix=fix)
    for m in members:
        if max_ratio is not None and m.size > _ratio_cap(m, max_ratio):
            raise _refuse(filename, f"it declares {_size(m.size)} inflated from {_size(m.compressed_size)} stored, "
                                    f"more than {max_ratio}x (a zip bomb?)", m.name, fix)
    return Archive(data, filename, tuple(members), max_ratio, fix)


def _unpack(fmt: str, view: memoryview, offset: int, what: str) -> tuple:
    if offset < 0 or offset + struct.calcsize(fmt) > len(view):
        raise _Bad(f"its {what} lies outside the file (truncated or not a zip archive)")
    return struct.unpack_from(fmt, view, offset)


def _end_records(view: memoryview) -> tuple[int, int, int]:
    """(directory offset, entry count, where the directory must end) from the end
    record, which must be the file's last 22 bytes (no comment), and the zip64 records before it."""
    end = len(view) - 22
    if end < 0 or bytes(view[end:end + 4]) != _END:
        raise _Bad("it is not a readable .zip archive (it does not end with a zip end record: truncated, not "
                   "a zip, or data or a comment after the archive)")
    _, disk, cd_disk, here, count, cd_size, cd_offset, comment = _unpack(_END_FMT, view, end, "end record")
    if comment or disk or cd_disk or here != count:
        raise _Bad("its end record has a comment or spans several disks")
    cd_end = end
    locator = end - 20
    if locator >= 0 and bytes(view[locator:locator + 4]) == _LOCATOR64:
        _, disk64, record, disks = _unpack(_LOCATOR64_FMT, view, locator, "zip64 locator")
        if disk64 or disks != 1 or record != locator - 56:
            raise _Bad("its zip64 locator does not point right before itself")
        (sig, size, _, _, d1, d2, here64, count64, cd_size64, cd_offset64) = _unpack(
            _END64_FMT, view, record, "zip64 end record")
        if sig != _END64 or size != 44 or d1 or d2 or here64 != count64:
            raise _Bad("its zip64 end record is malformed")
        for value, value64 in ((count, count64), (cd_size, cd_size64), (cd_offset, cd_offset64)):
            if value not in (value64, 0xFFFF, 0xFFFFFFFF):
                raise _Bad("its end record and zip64 end record disagree")
        count, cd_size, cd_offset, cd_end = count64, cd_size64, cd_offset64, record
    elif 0xFFFF in (count,) or 0xFFFFFFFF in (cd_size, cd_offset):
        raise _Bad("its end record points to zip64 records it does not have")
    if cd_offset + cd_size != cd_end:
        raise _Bad("its central directory does not end where its end record begins (a second "
                                "directory, or bytes between them)")
    return cd_offset, count, cd_end


@dataclass(frozen=True)
class _Entry:
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    offset: int
    is_dir: bool


def _central_entries(view: memoryview, start: int, stop: int, count: int) -> list[_Entry]:
    entries, position = [], start
    for _ in range(count):
        (sig, made_by, _, flags, method, _, _, crc, csize, size, name_len, extra_len, comment_len, disk, _,
         external, offset) = _unpack(_CENTRAL_FMT, view, position, "central directory")
        if sig != _CENTRAL:
            raise _Bad("its central directory is malformed")
        raw_name = bytes(view[position + 46: position + 46 + name_len])
        extra = bytes(view[position + 46 + name_len: position + 46 + name_len + extra_len])
        name = _decode_name(raw_name, flags)
        if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG) or method == 99:
            raise _Bad("it is encrypted", name, "upload an archive without a password")
        if disk:
            raise _Bad("it spans several disks", name)
        size, csize, offset = _zip64_values(extra, (size, csize, offset), name)
        mode = external >> 16 if made_by >> 8 == _UNIX else 0
        kind = mode & _S_IFMT
        is_dir = name.endswith("/")
        if kind not in (0, _S_IFDIR if is_dir else _S_IFREG) or (external & 0x10 and not is_dir):
            raise _Bad("it is a link or another special file, not a plain file or directory", name)
        if is_dir and size:
            raise _Bad("it is a directory with content", name)
        if method == STORED and size != csize:
            raise _Bad("it is stored uncompressed but declares two different sizes", name)
        entries.append(_Entry(raw_name, name, flags, method, crc, csize, size, offset, is_dir))
        position += 46 + name_len + extra_len + comment_len
    if position != stop:
        raise _Bad("its central directory holds more or fewer bytes than its entries (a second "
                                "directory?)")
    return entries


def _zip64_values(extra: bytes, values: tuple[int, ...], name: str) -> tuple[int, ...]:
    """Sizes and offset with those marked 0xFFFFFFFF taken, in order, from the zip64 extra field."""
    fields, position = {}, 0
    while position + 4 <= len(extra):
        key, length = struct.unpack_from("<HH", extra, position)
        if key in fields or position + 4 + length > len(extra):
            raise _Bad("its extra fields are malformed", name)
        fields[key] = extra[position + 4: position + 4 + length]
        position += 4 + length
    if position != len(extra):
        raise _Bad("its extra fields are malformed", name)
    wanted = [i for i, v in enumerate(values) if v == 0xFFFFFFFF]
    if not wanted:
        return values
    field = fields.get(0x0001, b"")
    if len(field) < 8 * len(wanted):
        raise _Bad("its zip64 sizes are missing", name)
    out = list(values)
    for k, i in enumerate(wanted):
        out[i] = struct.unpack_from("<Q", field, 8 * k)[0]
    return tuple(out)


def _decode_name(raw: bytes, flags: int) -> str:
    try:
        return raw.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
    except UnicodeDecodeError:
        raise _Bad(f"a member name {raw[:80]!r} is not valid UTF-8") from None


def _match_local_records(view: memoryview, entries: list[_Entry], cd_offset: int) -> list[Member]:
    """Each entry's local record, checked against it; the records (header, data, descriptor) must tile
    the file from offset 0 to the central directory exactly, with no gap and no overlap."""
    ordered = sorted(entries, key=lambda e: e.offset)
    members, position = [], 0
    for index, entry in enumerate(ordered):
        if entry.offset != position:
            raise _Bad("bytes before or between its records (prepended data, a hidden member or a "
                                    "second directory)", entry.name)
        (sig, _, flags, method, _, _, crc, csize, size, name_len, extra_len) = _unpack(
            _LOCAL_FMT, view, position, "local header")
        raw_name = bytes(view[position + 30: position + 30 + name_len])
        if sig != _LOCAL or raw_name != entry.raw_name or method != entry.method or flags != entry.flags:
            raise _Bad("its local header and its central directory entry disagree", entry.name)
        data_offset = position + 30 + name_len + extra_len
        extra = bytes(view[position + 30 + name_len: data_offset])
        described = (crc, csize, size) if not flags & _FLAG_DESCRIPTOR else None
        if described is not None:
            size, csize = _zip64_values(extra, (size, csize), entry.name)
            if (crc, csize, size) != (entry.crc, entry.compressed_size, entry.size):
                raise _Bad("its local header and its central directory entry disagree on size or "
                                        "checksum", entry.name)
        data_end = data_offset + entry.compressed_size
        following = ordered[index + 1].offset if index + 1 < len(ordered) else cd_offset
        if data_end > following:
            raise _Bad("its data overlaps the next record", entry.name)
        descriptor = bytes(view[data_end:following])
        if described is None:
            _check_descriptor(descriptor, entry)
        elif descriptor:
            raise _Bad("bytes after its data (a hidden member or prepended data)", entry.name)
        members.append(Member(entry.name, entry.size, entry.compressed_size, entry.method, entry.crc, entry.is_dir,
                              data_offset))
        position = following
    if position != cd_offset:
        raise _Bad("bytes before its central directory that belong to no member")
    return members


def _check_descriptor(descriptor: bytes, entry: _Entry) -> None:
    """A data descriptor (with or without its signature, 32- or 64-bit sizes) matching the entry."""
    body = descriptor[4:] if descriptor[:4] == _DESCRIPTOR else descriptor
    expected = entry.crc, entry.compressed_size, entry.size
    if len(body) == 12 and struct.unpack("<LLL", body) == expected:
        return
    if len(body) == 20 and struct.unpack("<LQQ", body) == expected:
        return
    raise _Bad("its data descriptor is missing or disagrees with the central directory", entry.name)


def _check_names(members: list[Member]) -> None:
    """No duplicate names (also after normalising Unicode, case and slashes) and no name that could
    reach outside the directory it is unpacked into."""
    seen: dict[str, str] = {}
    for member in members:
        name = member.name
        parts = name.rstrip("/").split("/")
        if not name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise _Bad("its name points outside the archive (absolute, a drive letter, a backslash or '..')", name)
        if any(c < " " for c in name):
            raise _Bad("its name holds a NUL or control characters", name)
        key = unicodedata.normalize("NFC", "/".join(p for p in parts if p not in ("", "."))).casefold()
        if key in seen:
            raise _Bad(f"two members are named alike ({seen[key]!r}); a zip reader may take either",
                       name, "keep one of them")
        seen[key] = name


# ----------------------------------------------------------------- extraction

def extract(archive: Archive, into: Path) -> None:
    """Write every member under ``into`` (directories created, files streamed to disk a chunk at a time,
    every cap applied); names were checked when the archive was opened."""
    root = Path(into).resolve()
    for member in archive.members:
        target = (root / member.name).resolve()
        if target != root and root not in target.parents:
            raise _refuse(archive.filename, "it points outside the archive", member.name, archive.fix)
        if member.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            for chunk in archive.chunks(member.name):
                out.write(chunk)
