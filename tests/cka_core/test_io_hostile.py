"""Hostile uploads to cka_core.io.load_representations (the app is hosted for classes).

Every input either loads as the rest of the library expects, or is refused with a RepresentationError
that says what is wrong: fuzzed bytes, truncations and corruptions of every format; pickles that would
run code, whatever extension they are uploaded under; headers claiming huge sizes; zip bombs.

Memory is measured with tracemalloc (numpy and Python allocations) or, for torch, which allocates
outside tracemalloc's view, as the peak resident size of a child process.
"""
import bz2
import collections
import io
import json
import pickle
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as st_save_numpy
from torch._utils import _rebuild_tensor_v2

from cka_core import RepresentationError
from cka_core.io import MAX_ELEMENTS, load_representations
from tests.files import npy_bytes as _npy, npz_bytes as _npz

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = 32 << 20  # peak Python allocation allowed while refusing a hostile file (its data are at most KBs)
GiB = 1 << 30

A = np.arange(1, 13, dtype=np.float32).reshape(4, 3)


# ----------------------------------------------------------------- building files

def _pt(obj, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buf.getvalue()


def _npy_raw(header: str, body: bytes = b"", version: int = 1, length: int | None = None) -> bytes:
    """An .npy file with any header text (and, optionally, a header length that lies)."""
    text = header.encode("utf-8", "surrogatepass") + b"\n"
    size = len(text) if length is None else length
    prefix = struct.pack("<H", size % 2**16) if version == 1 else struct.pack("<I", size % 2**32)
    return b"\x93NUMPY" + bytes([version, 0]) + prefix + text + body


def _npy_header(shape, descr="<f8") -> bytes:
    """The header part of an .npy file (what np.save writes before the data)."""
    return _npy_raw(repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}))


def _safetensors(header: dict, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


# Hand-made zips: full control over the sizes the directory declares and where it says things are.
Entry = collections.namedtuple("Entry", "name data method crc size")


def _entry(name, data, method=zipfile.ZIP_STORED, crc=None, size=None):
    """A member whose ``data`` are stored as given (already compressed when method is deflate)."""
    return Entry(name, data, method, zlib.crc32(data) if crc is None else crc, len(data) if size is None else size)


def _local(e: Entry) -> bytes:
    name = e.name.encode()
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, e.method, 0, 0x21, e.crc, len(e.data), e.size,
                       len(name), 0) + name + e.data


def _central(e: Entry, offset: int) -> bytes:
    name = e.name.encode()
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, e.method, 0, 0x21, e.crc, len(e.data), e.size,
                       len(name), 0, 0, 0, 0, 0, offset) + name


def _end(count: int, directory_size: int, directory_offset: int) -> bytes:
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, directory_size, directory_offset, 0)


def _raw_zip(entries) -> bytes:
    body, directory = b"", b""
    for e in entries:
        directory += _central(e, len(body))
        body += _local(e)
    return body + directory + _end(len(entries), len(directory), len(body))


# Deflate bombs without deflating GBs: after a full flush a deflate stream holds no back-references,
# so the compressed form of 1 MiB of zeros can be repeated; CRCs of long zero runs by GF(2) algebra.
_MiB_OF_ZEROS = None


def _deflate_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """Raw deflate data of ``prefix`` followed by ``n_zeros`` zero bytes (a multiple of 1 MiB)."""
    global _MiB_OF_ZEROS
    assert n_zeros % (1 << 20) == 0
    if _MiB_OF_ZEROS is None:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        _MiB_OF_ZEROS = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty last block
    return head + _MiB_OF_ZEROS * (n_zeros >> 20) + final


def _gf2_times(matrix, vector):
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _crc32_zeros(crc: int, n: int) -> int:
    """zlib.crc32(bytes(n), crc) in O(log n) (zlib's crc32_combine, for zeros)."""
    op = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit
    for _ in range(3):
        op = [_gf2_times(op, row) for row in op]  # one zero byte
    state = crc ^ 0xFFFFFFFF
    while n:
        if n & 1:
            state = _gf2_times(op, state)
        n >>= 1
        op = [_gf2_times(op, row) for row in op]
    return state ^ 0xFFFFFFFF


def _zero_bomb(name: str, prefix: bytes, n_zeros: int, declared: int | None = None) -> Entry:
    """A deflated member holding ``prefix`` + ``n_zeros`` zeros, declaring its true size unless told."""
    crc = _crc32_zeros(zlib.crc32(prefix), n_zeros)
    return _entry(name, _deflate_zeros(prefix, n_zeros), zipfile.ZIP_DEFLATED, crc,
                  len(prefix) + n_zeros if declared is None else declared)


# Hand-made torch.save archives: a tensor rebuilt from a storage record, with any claimed sizes.
class _Storage:
    def __init__(self, numel):
        self.numel = numel


class _Tensor:
    def __init__(self, storage, size, stride):
        self.args = (storage, 0, size, stride)

    def __reduce__(self):
        return _rebuild_tensor_v2, self.args + (False, collections.OrderedDict())


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, "0", "cpu", obj.numel) if isinstance(obj, _Storage) else None


def _tensor_pickle(storage_numel, size, stride) -> bytes:
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump({"a": _Tensor(_Storage(storage_numel), size, stride)})
    return buf.getvalue()


def _pt_archive(storage_numel, size, stride, record=bytes(24), extra=()) -> list:
    return [_entry("archive/data.pkl", _tensor_pickle(storage_numel, size, stride)),
            _entry("archive/version", b"3\n"), _entry("archive/byteorder", b"little"),
            record if isinstance(record, Entry) else _entry("archive/data/0", record), *extra]


def _pt_legacy_claim(storage_numel) -> bytes:
    """A legacy (pre-zip) torch.save stream whose storage claims ``storage_numel`` floats; 6 are stored."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    buf = io.BytesIO()
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION,
                   {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buf, protocol=2)

    class Legacy(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel, None) if isinstance(obj, _Storage) else None

    Legacy(buf, protocol=2).dump({"a": _Tensor(_Storage(storage_numel), (2, 3), (3, 1))})
    pickle.dump(["0"], buf, protocol=2)
    return buf.getvalue() + struct.pack("<q", 6) + bytes(24)


# ----------------------------------------------------------------- the contract

def _assert_contract(data: bytes, filename: str):
    """Either what the library expects (name -> finite float32/float64 array, >= 2-D after the
    one-feature reshape, at least one example and one feature) or a RepresentationError with a message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch and numpy warn about odd bytes; only exceptions matter
        try:
            out = load_representations(data, filename)
        except RepresentationError as error:
            assert str(error).strip()
            return None
    assert isinstance(out, dict) and out
    for name, array in out.items():
        assert isinstance(name, str)
        assert isinstance(array, np.ndarray)
        assert array.dtype in (np.dtype(np.float32), np.dtype(np.float64)) and array.dtype.isnative
        assert array.ndim >= 2 and array.shape[0] >= 1 and array.size > 0
        assert np.isfinite(array).all()
    return out


def _peak(data: bytes, filename: str):
    """(outcome, peak bytes Python/numpy allocated during the call); outcome is the result or the error."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        try:
            outcome = load_representations(data, filename)
        except RepresentationError as error:
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


VALID = {
    ".npy": [_npy(A), _npy(np.asfortranarray(A.astype(">f8")))],
    ".npz": [_npz(False, a=A, b=A[:, :2]), _npz(True, a=A, b=A[:, :2])],
    ".pt": [_pt({"a": torch.from_numpy(A), "b": torch.from_numpy(A[:, :2].copy())}),
            _pt({"a": torch.from_numpy(A)}, legacy=True)],
    ".safetensors": [st_save_numpy({"a": A, "b": A[:, :2].copy()})],
    ".csv": [b"f0,f1,f2\n1,2,3\n4,5,6\n7,8.5,9\n", b"1,2\r\n3,4\r\n"],
}
VALID[".pth"] = VALID[".pt"]
EXTENSIONS = list(VALID)
MAGIC = {".npy": b"\x93NUMPY\x01\x00", ".npz": b"PK\x03\x04", ".pt": b"PK\x03\x04", ".pth": b"\x80\x02",
         ".safetensors": b"\x40\x00\x00\x00\x00\x00\x00\x00{", ".csv": b""}


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_the_valid_seeds_load(ext):
    """The files the fuzzers truncate and corrupt are themselves valid, so the fuzzers start on real formats."""
    for data in VALID[ext]:
        assert _assert_contract(data, "seed" + ext) is not None


# ----------------------------------------------------------------- 1. fuzzing

@pytest.mark.parametrize("ext", EXTENSIONS)
@FUZZ
@given(data=st.binary(max_size=600), with_magic=st.booleans())
def test_arbitrary_bytes(ext, data, with_magic):
    _assert_contract((MAGIC[ext] if with_magic else b"") + data, "upload" + ext)


@pytest.mark.parametrize("ext", EXTENSIONS)
@FUZZ
@given(draw=st.data())
def test_truncated_files(ext, draw):
    valid = draw.draw(st.sampled_from(VALID[ext]))
    _assert_contract(valid[: draw.draw(st.integers(0, len(valid) - 1))], "upload" + ext)


@pytest.mark.parametrize("ext", EXTENSIONS)
@FUZZ
@given(draw=st.data())
def test_corrupted_files(ext, draw):
    data = bytearray(draw.draw(st.sampled_from(VALID[ext])))
    flips = st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255))
    for position, value in draw.draw(st.lists(flips, min_size=1, max_size=4)):
        data[position] = value
    _assert_contract(bytes(data), "upload" + ext)


_DESCRS = ["'<f8'", "'>f4'", "'<f2'", "'<f16'", "'|b1'", "'<i8'", "'>u8'", "'|u1'", "'|O'", "'<U3'", "'|S0'",
           "'|V8'", "'(2,)<f8'", "'<c16'", "'<M8[ns]'", "[('a', '<f8')]", "[('a', '<f8', (-2,))]", "5", "None", "'x'"]
_DIMS = st.one_of(st.integers(-3, 8), st.integers(0, 2**70), st.sampled_from([10**6, 2**31, 2**63, 2**64, 10**400]))
_SHAPES = st.one_of(
    st.lists(_DIMS, max_size=4).map(lambda dims: "(" + "".join(f"{d}, " for d in dims) + ")"),
    st.sampled_from(["()", "(True, 2)", "(2.0, 3)", "[2, 3]", "None", "(" * 300, "(" + "-" * 3000 + "1,)",
                     "(1,)*3", "(" + "1, " * 65 + ")", "(-1, -1)"]),
    st.text(max_size=30),
)
_HEADERS = st.one_of(
    st.builds("{{'descr': {}, 'fortran_order': {}, 'shape': {}{}}}".format,
              st.one_of(st.sampled_from(_DESCRS), st.text(max_size=10).map(repr)),
              st.sampled_from(["False", "True", "0", "'no'"]), _SHAPES,
              st.sampled_from(["", ", 'extra': 1", " junk", ","])),
    st.text(max_size=300),
)


@FUZZ
@given(header=_HEADERS, version=st.sampled_from([1, 2, 3]), lie=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
       body=st.one_of(st.binary(max_size=64), st.integers(0, 400).map(bytes)))
def test_npy_arbitrary_header(header, version, lie, body):
    _assert_contract(_npy_raw(header, body, version, lie), "upload.npy")


@pytest.mark.parametrize("header", [
    "{'descr': '<f16', 'fortran_order': False, 'shape': (2, 2)}",   # long double: torch has no such dtype
    "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2)}",    # big-endian: torch refuses the byte order
    "{'descr': '>u8', 'fortran_order': True, 'shape': (2, 2)}",     # uint64: torch has it, validation did not
    "{'descr': '<f8', 'fortran_order': False, 'shape': (" + "9" * 400 + ", 0)}",  # int too large for float
    "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, 0)}" % 2**63,       # too large for a dimension
    "{'descr': '<f8', 'fortran_order': False, 'shape': (True, 4)}",              # a bool is an int
    "{'descr': '<f8', 'fortran_order': False, 'shape': (" + "-" * 3000 + "1, 2)}",  # RecursionError in ast
    "{'descr': '<f8', 'fortran_order': False, 'shape': (" + "1, " * 65 + ")}",   # more dims than numpy allows
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)",                  # tokenize.TokenError
])
def test_npy_headers_that_used_to_escape(header):
    """Each of these raised something other than RepresentationError (TypeError, ValueError from torch or
    numpy, OverflowError, RecursionError, TokenError) before the hardening."""
    _assert_contract(_npy_raw(header, bytes(64)), "upload.npy")


def test_numeric_npy_dtypes_load_as_native_floats():
    for descr, expected in [("<f16", np.float64), (">f8", np.float64), (">u8", np.float64), ("<f2", np.float32)]:
        out = _assert_contract(_npy_header((2, 2), descr) + bytes(64), "x.npy")
        assert out is not None and out["x"].dtype == expected, descr


TORCH_ODDITIES = {
    "sparse": lambda: torch.eye(3).to_sparse(),
    "sparse_csr": lambda: torch.eye(3).to_sparse_csr(),
    "quantized": lambda: torch.quantize_per_tensor(torch.eye(3), 0.1, 0, torch.quint8),
    "nested": lambda: torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(3, 3)]),
    "complex32": lambda: torch.eye(3).to(torch.complex32),
    "conjugated": lambda: torch.ones(3, 3, dtype=torch.complex64).conj(),
    "float8": lambda: torch.eye(3).to(torch.float8_e4m3fn),
    "uint16": lambda: torch.eye(3).to(torch.uint16),
    "negative_view": lambda: torch.eye(3)._neg_view(),
    "big_int_key": lambda: {10**5000: torch.eye(3)},
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # beta/prototype/deprecated tensor kinds
@pytest.mark.parametrize("kind", list(TORCH_ODDITIES))
def test_torch_tensors_weights_only_rebuilds(kind):
    """torch.load(weights_only=True) rebuilds sparse, quantized, nested... tensors; .numpy() used to
    raise TypeError or RuntimeError on them."""
    _assert_contract(_pt(TORCH_ODDITIES[kind]()), "upload.pt")


def test_safetensors_dtypes_torch_cannot_map():
    for dtype in ["F8_E4M3", "F8_E5M2", "F8_E8M0"]:  # KeyError and TypeError before the hardening
        _assert_contract(_safetensors({"a": {"dtype": dtype, "shape": [2, 4], "data_offsets": [0, 8]}}, bytes(8)),
                         "upload.safetensors")


@pytest.mark.parametrize("data", [b"1,2\r3\r\n", b'"' + b"1" * 200_000 + b'"\n'],
                         ids=["lone_cr", "field_over_csv_limit"])
def test_csv_that_used_to_raise_csv_error(data):
    assert _assert_contract(data, "upload.csv") is None


# ----------------------------------------------------------------- 2. nothing executes

class _Touch:
    """Unpickling this creates the file ``path``: proof that something ran the pickle."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _payloads(marker) -> dict[str, bytes]:
    evil = _Touch(marker)
    objects = np.empty(2, dtype=object)
    objects[:] = [evil, 1]
    npy_evil = _npy(objects, allow_pickle=True)
    return {
        "npy_object_array": npy_evil,
        "npz_object_member": _zip({"ok.npy": _npy(A), "evil.npy": npy_evil}),
        "pt_dict_with_object": _pt({"x": torch.zeros(3, 2), "y": evil}),
        "pt_handmade_zip": _zip({"archive/data.pkl": pickle.dumps({"x": evil}, protocol=2),
                                 "archive/version": b"3\n", "archive/byteorder": b"little"}),
        "pt_legacy_format": _pt({"x": evil}, legacy=True),
        "raw_pickle": pickle.dumps({"x": evil}),
        "text_pickle": pickle.dumps(evil, protocol=0),
    }


class _Unpickler(pickle.Unpickler):
    """Plain unpickling, with torch's tensor machinery stubbed out (it is not what is on trial)."""

    def persistent_load(self, pid):
        return None

    def find_class(self, module, name):
        return (lambda *args, **kwargs: None) if module.startswith("torch") else super().find_class(module, name)


def _unpickle_everything(source: str, data: bytes) -> None:
    """What a careless loader would do with each payload (numpy allow_pickle, plain pickle)."""
    if source == "npy_object_array":
        np.load(io.BytesIO(data), allow_pickle=True)
    elif source == "npz_object_member":
        np.load(io.BytesIO(data), allow_pickle=True)["evil"]
    elif source in ("pt_dict_with_object", "pt_handmade_zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            _Unpickler(io.BytesIO(archive.read(name))).load()
    else:  # a pickle stream: the legacy torch format is several pickles in a row
        stream = io.BytesIO(data)
        for _ in range(4 if source == "pt_legacy_format" else 1):
            _Unpickler(stream).load()


@pytest.mark.parametrize("source", list(_payloads("x")))
def test_payloads_really_execute_when_unpickled(tmp_path, source):
    """Guard for the tests below: each payload does create its marker if anything unpickles it."""
    marker = tmp_path / "executed"
    _unpickle_everything(source, _payloads(marker)[source])
    assert marker.exists()


# test_io.py covers the payloads uploaded under their own extension; these are the disguises.
_COVERED = {("npy_object_array", ".npy"), ("npz_object_member", ".npz"), ("pt_dict_with_object", ".pt"),
            ("raw_pickle", ".pt")}
_DISGUISES = [(s, e) for s in _payloads("x") for e in EXTENSIONS if (s, e) not in _COVERED]


@pytest.mark.parametrize(("source", "ext"), _DISGUISES)
def test_pickles_never_execute_under_any_extension(tmp_path, source, ext):
    marker = tmp_path / "executed"
    data = _payloads(marker)[source]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RepresentationError) as info:
            load_representations(data, "evil" + ext)
    assert str(info.value).strip()
    assert not marker.exists()


@pytest.fixture(scope="module")
def module_payloads(tmp_path_factory):
    marker = tmp_path_factory.mktemp("pickles") / "executed"
    return marker, _payloads(marker)


@FUZZ
@given(draw=st.data())
def test_corrupted_pickles_never_execute(module_payloads, draw):
    marker, payloads = module_payloads
    data = bytearray(payloads[draw.draw(st.sampled_from(sorted(payloads)))])
    if draw.draw(st.booleans()):
        data = data[: draw.draw(st.integers(1, len(data)))]
    for position, value in draw.draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                                               max_size=3)):
        data[position] = value
    _assert_contract(bytes(data), "evil" + draw.draw(st.sampled_from(EXTENSIONS)))
    assert not marker.exists()


# ----------------------------------------------------------------- 3. size claims, checked before allocating

HUGE = (10**6, 10**6)  # 10^12 float64 values: 8 TB

SIZE_CLAIMS = {
    "npy_header": (lambda: _npy_header(HUGE) + bytes(16), "claim.npy", True),
    "npy_header_v2": (lambda: _npy_raw(repr({"descr": "<f8", "fortran_order": False, "shape": HUGE}), bytes(16), 2),
                      "claim.npy", True),
    "npz_member_header": (lambda: _zip({"ok.npy": _npy(A), "huge.npy": _npy_header(HUGE) + bytes(16)}),
                          "claim.npz", True),
    "npz_member_header_deflated": (lambda: _zip({"huge.npy": _npy_header(HUGE) + bytes(1 << 20)},
                                                zipfile.ZIP_DEFLATED), "claim.npz", True),
    "safetensors_tensor": (lambda: _safetensors({"a": {"dtype": "F64", "shape": list(HUGE),
                                                       "data_offsets": [0, 8 * 10**12]}}, bytes(16)),
                           "claim.safetensors", False),
    "safetensors_header_length": (lambda: struct.pack("<Q", 2**62) + b'{"a": 1}', "claim.safetensors", False),
    "safetensors_shape_overflow": (lambda: _safetensors({"a": {"dtype": "F64", "shape": [2**40, 2**40],
                                                               "data_offsets": [0, 0]}}), "claim.safetensors", False),
    "csv_too_many_columns": (lambda: b"0," * (4 << 20) + b"0\n", "claim.csv", False),
}


@pytest.mark.parametrize("case", list(SIZE_CLAIMS))
def test_size_claims_are_refused_before_allocating(case):
    make, filename, names_limit = SIZE_CLAIMS[case]
    data = make()
    outcome, peak = _peak(data, filename)
    assert isinstance(outcome, RepresentationError), outcome
    assert peak < SMALL, f"{peak / 2**20:.1f} MiB allocated while refusing {case}"
    if names_limit:
        assert f"{MAX_ELEMENTS:,}" in str(outcome) and "limit" in str(outcome), str(outcome)


def test_csv_too_many_columns_says_why():
    with pytest.raises(RepresentationError, match=r"(?i)columns.*\.npy"):
        load_representations(b"0," * (4 << 20) + b"0\n", "wide.csv")


@pytest.mark.parametrize(("rows", "columns"), [(1 << 15, 1), (4, 100_000)], ids=["tall", "wide"])
def test_large_csv_memory_is_a_small_multiple_of_the_file(rows, columns):
    """The worst case for a CSV: one-character cells ('0,'), 2 bytes of file per value, become 8 bytes of
    float64. The old reader kept a Python list and a float object per cell (~20x the file)."""
    data = (",".join(["0"] * columns) + "\n").encode() * rows
    outcome, peak = _peak(data, "big.csv")
    assert isinstance(outcome, dict) and outcome["big"].shape == (rows, columns)
    assert peak < 6 * len(data) + (1 << 20), f"{peak / len(data):.1f}x the file size"


# torch allocates outside tracemalloc: these run in a child process that reports its peak resident size.
_RSS_CHILD = textwrap.dedent("""
    import io, json, resource, sys, warnings
    import torch
    from cka_core import RepresentationError
    from cka_core.io import load_representations
    warnings.simplefilter("ignore")
    warm = io.BytesIO(); torch.save({"a": torch.ones(4, 3)}, warm)
    load_representations(warm.getvalue(), "warm.pt")  # imports and first-use allocations out of the way
    report = {}
    for path in sys.argv[1:]:
        data = open(path, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            out = load_representations(data, path.rsplit("/", 1)[-1])
            outcome = "loaded " + repr({k: v.shape for k, v in out.items()})
        except RepresentationError as error:
            outcome = "refused: " + str(error)
        except Exception as error:
            outcome = f"raised {type(error).__name__}: {error}"
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        report[path] = {"outcome": outcome, "growth_mib": growth / 1024}
    print(json.dumps(report))
""")

BOMB = int(2.5 * GiB)  # over the 2 GiB a file may unpack to


def _pt_declared_bomb():
    """A .pt whose storage record is a deflated 2.5 GiB run of zeros, declared honestly, behind a (2, 3)
    tensor: torch would allocate and inflate all of it, then hand out the small view."""
    record = _zero_bomb("archive/data/0", b"", BOMB)
    return _raw_zip(_pt_archive(BOMB // 4, (2, 3), (3, 1), record))


def _pt_second_directory():
    """Two central directories: zipfile reads the one next to the end record (all small); torch's reader
    follows the end record's offset to the other, where 'byteorder' is a deflated 512 MiB of zeros."""
    good = _pt_archive(6, (2, 3), (3, 1))
    bomb = _zero_bomb("archive/byteorder", b"", 512 << 20)
    body, offsets = b"", []
    for e in good + [bomb]:
        offsets.append(len(body))
        body += _local(e)
    honest = b"".join(_central(e, o) for e, o in zip(good, offsets))
    evil = b"".join(_central(bomb if e.name == "archive/byteorder" else e,
                             offsets[-1] if e.name == "archive/byteorder" else o) for e, o in zip(good, offsets))
    assert len(evil) == len(honest)  # the same names: torch reads exactly as many bytes of directory
    return body + evil + honest + _end(len(good), len(honest), len(body))


PT_CLAIMS = {
    "broadcast_view_of_huge_shape": lambda: _raw_zip(_pt_archive(6, HUGE, (0, 0))),
    "storage_claim_over_its_record": lambda: _raw_zip(_pt_archive(2**40, (2**20, 2**20), (2**20, 1))),
    "declared_deflate_bomb": _pt_declared_bomb,
    "second_central_directory": _pt_second_directory,
    "legacy_storage_claim": lambda: _pt_legacy_claim(2**31),  # 8 GiB of floats claimed, 24 bytes stored
}


def test_pt_size_claims_are_refused_with_bounded_memory(tmp_path):
    paths = []
    for case, make in PT_CLAIMS.items():
        path = tmp_path / f"{case}.pt"
        path.write_bytes(make())
        paths.append(str(path))
    result = subprocess.run([sys.executable, "-c", _RSS_CHILD, *paths], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)  # the child loads the installed cka_core
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for case, path in zip(PT_CLAIMS, paths):
        outcome, growth = report[path]["outcome"], report[path]["growth_mib"]
        assert outcome.startswith("refused"), f"{case}: {outcome}"
        assert growth < 64, f"{case}: peak resident size grew {growth:.0f} MiB"
    assert "limit" in report[paths[0]]["outcome"]
    assert "GiB" in report[paths[2]]["outcome"]


def test_torch_reads_the_second_directory():
    """Guard for the test above: the two directories really differ, and zipfile sees only the small one."""
    data = _pt_second_directory()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert max(info.file_size for info in archive.infolist()) < 1024
    end = len(data) - 22
    stated = struct.unpack_from("<L", data, end + 16)[0]
    assert data[stated: stated + 4] == b"PK\x01\x02" and stated != archive.start_dir


def test_pt_zip64_archive_still_loads(monkeypatch):
    """The directory check follows zip64 end records (torch writes them for files over 4 GiB): a
    torch.save archive rewritten with zip64 records throughout loads as before."""
    with zipfile.ZipFile(io.BytesIO(VALID[".pt"][0])) as source:
        records = {info.filename: source.read(info) for info in source.infolist()}
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)  # every size and offset "needs" zip64
    data = _zip(records)
    assert data[-42:-38] == b"PK\x06\x07"  # the zip64 locator before the end record
    out = load_representations(data, "zip64.pt")
    assert list(out) == ["a", "b"] and out["a"].shape == (4, 3)


# ----------------------------------------------------------------- 4. zip bombs in .npz

class _CountingInflater:
    """Wraps zipfile's decompressor to count the bytes it inflates."""

    def __init__(self, inner, counter):
        self._inner, self._counter = inner, counter

    def decompress(self, data, max_length=0):
        out = self._inner.decompress(data, max_length)
        self._counter[0] += len(out)
        return out

    def flush(self, *args):
        out = self._inner.flush(*args)
        self._counter[0] += len(out)
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture
def inflated(monkeypatch):
    counter = [0]
    original = zipfile._get_decompressor
    monkeypatch.setattr(zipfile, "_get_decompressor",
                        lambda method: None if (d := original(method)) is None else _CountingInflater(d, counter))
    return counter


TWO_GIB = 2 * GiB
SMALL_HEADER = _npy_header((16, 16))  # 2 KiB of float64 promised


def _bomb_npz(*entries):
    return _raw_zip(list(entries))


NPZ_BOMBS = {
    # 2 GiB of zeros behind a header that promises 2 KiB: refused after reading 2 KiB + 1 byte.
    "small_header_2gib_member": lambda: _bomb_npz(_zero_bomb("a.npy", SMALL_HEADER, TWO_GIB)),
    # The header itself claims more than the limit: refused before reading any data.
    "header_over_limit_2gib_member": lambda: _bomb_npz(
        _zero_bomb("a.npy", _npy_header((MAX_ELEMENTS + 1,)), TWO_GIB)),
    # No .npy header at all, 2 GiB of zeros.
    "headerless_2gib_member": lambda: _bomb_npz(_zero_bomb("a.npy", b"", TWO_GIB)),
    # The zip declares 2 KiB + header (consistent with the .npy header) but the stream inflates to 2 GiB.
    "declared_size_lies": lambda: _bomb_npz(_entry(
        "a.npy", _deflate_zeros(SMALL_HEADER, TWO_GIB), zipfile.ZIP_DEFLATED,
        _crc32_zeros(zlib.crc32(SMALL_HEADER), 2048), len(SMALL_HEADER) + 2048)),
    # A header within the limit (1 GiB) over 100 bytes of data: nothing of the claimed size is allocated.
    "claim_within_limit_no_data": lambda: _zip({"a.npy": _npy_header((GiB // 8,)) + bytes(100)},
                                               zipfile.ZIP_DEFLATED),
    # Many arrays: 10,000 members.
    "ten_thousand_members": lambda: _zip({f"m{i}.npy": _npy(np.ones((2, 1))) for i in range(10_000)}),
    # A zip inside the npz: never opened (only .npy members are read), so it holds no arrays.
    "nested_zip_only": lambda: _zip({"inner.npz": _bomb_npz(_zero_bomb("a.npy", SMALL_HEADER, TWO_GIB))}),
    # ... and named like an array: not an .npy file.
    "nested_zip_named_npy": lambda: _zip({"inner.npy": _bomb_npz(_zero_bomb("a.npy", SMALL_HEADER, TWO_GIB))}),
    # bzip2 decompresses a whole read at once: ~100 bytes here inflate to 48 MiB in one call.
    "bzip2_member": lambda: _bomb_npz(_entry("a.npy", bz2.compress(SMALL_HEADER + bytes(48 << 20), 1), 12,
                                             _crc32_zeros(zlib.crc32(SMALL_HEADER), 48 << 20),
                                             len(SMALL_HEADER) + (48 << 20))),
}


@pytest.mark.parametrize("case", list(NPZ_BOMBS))
def test_npz_zip_bombs(case, inflated):
    """Refused (or, where the lie is harmless, loaded as the small array the header promised) with the
    peak Python allocation under 32 MiB and at most a few MiB inflated."""
    data = NPZ_BOMBS[case]()
    outcome, peak = _peak(data, "bomb.npz")
    if case == "declared_size_lies" and isinstance(outcome, dict):
        assert outcome["a"].shape == (16, 16)
    else:
        assert isinstance(outcome, RepresentationError), outcome
        assert str(outcome).strip()
    assert peak < SMALL, f"{peak / 2**20:.1f} MiB allocated"
    assert inflated[0] < 8 << 20, f"{inflated[0] / 2**20:.0f} MiB inflated"


def test_npz_nested_zip_next_to_an_array_is_ignored(inflated):
    data = _zip({"layer.npy": _npy(A), "inner.zip": _bomb_npz(_zero_bomb("a.npy", SMALL_HEADER, TWO_GIB))})
    outcome, peak = _peak(data, "mixed.npz")
    assert list(outcome) == ["layer"]
    assert peak < SMALL and inflated[0] < 1 << 20


def test_npz_bombs_are_what_they_claim():
    """Guard for the bomb tests: the hand-made zips are valid archives whose members really inflate
    as claimed (checked on a 3 MiB version; the 2 GiB ones repeat the same block)."""
    data = _bomb_npz(_zero_bomb("a.npy", SMALL_HEADER, 3 << 20))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every CRC matches
        assert archive.read("a.npy") == SMALL_HEADER + bytes(3 << 20)
    assert _crc32_zeros(123, 5000) == zlib.crc32(bytes(5000), 123)
    with zipfile.ZipFile(io.BytesIO(NPZ_BOMBS["small_header_2gib_member"]())) as archive:
        assert archive.infolist()[0].file_size == len(SMALL_HEADER) + TWO_GIB
        with archive.open("a.npy") as member:
            assert member.read(len(SMALL_HEADER) + (4 << 20)) == SMALL_HEADER + bytes(4 << 20)


def test_npz_compressible_array_within_the_limit_costs_about_its_own_size():
    """32 MiB of zeros deflate to ~32 KiB; loading them is legitimate and costs the array itself, not the
    3-4 copies reading the member into bytes, then into BytesIO, then np.load's array made."""
    size = 32 << 20
    data = _bomb_npz(_zero_bomb("a.npy", _npy_header((size // 8,)), size))
    outcome, peak = _peak(data, "zeros.npz")
    assert outcome["a"].shape == (size // 8, 1)
    assert peak < 1.25 * size, f"{peak / size:.2f}x the array"


# ----------------------------------------------------------------- 5. messages

class _Opaque:
    """Any class of the uploader's: torch.load(weights_only=True) refuses to rebuild it."""


MESSAGES = {
    "npy_object_dtype": (lambda: _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "x.npy",
                         ["never", "allow_pickle=False", "np.save"]),
    "npy_size_claim": (lambda: _npy_header(HUGE), "x.npy", ["limit", "subsample"]),
    "npy_not_npy": (lambda: b"PK\x03\x04 a zip", "x.npy", ["not a valid .npy", "numpy.save"]),
    "npz_corrupt_member": (lambda: VALID[".npz"][1][:200] + b"\xff" * 40 + VALID[".npz"][1][240:], "x.npz",
                           ["numpy.savez"]),
    "npz_bzip2": (lambda: _zip({"a.npy": _npy(A)}, zipfile.ZIP_BZIP2), "x.npz", ["compression", "numpy.savez"]),
    "npz_many_members": (lambda: _zip({f"m{i}.npy": _npy(A) for i in range(1100)}), "x.npz", ["layers"]),
    "pt_pickled_object": (lambda: _pt({"x": _Opaque()}), "x.pt",
                          ["never unpickled", "torch.save", ".safetensors"]),
    "pt_sparse": (lambda: _pt(torch.eye(3).to_sparse()), "x.pt", ["sparse", "dense"]),
    "safetensors_garbage": (lambda: b"\x10" + bytes(40), "x.safetensors", ["safetensors.torch.save_file"]),
    "csv_not_utf8": (lambda: b"1,2\n\xff\xfe,3\n", "x.csv", ["UTF-8"]),
    "csv_field_over_limit": (lambda: b'1,2\n3,"' + b"4" * 200_000 + b'"\n', "x.csv", ["line 2", "CSV", "numbers"]),
}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_messages_say_what_is_wrong_and_what_to_do(case):
    make, filename, needles = MESSAGES[case]
    with pytest.raises(RepresentationError) as info:
        load_representations(make(), filename)
    message = str(info.value)
    assert filename in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
