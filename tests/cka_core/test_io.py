"""cka_core.io.load_representations: every format round-trips; nothing is ever unpickled; every
bad file is a RepresentationError."""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.numpy import save as st_save_numpy
from safetensors.torch import save as st_save_torch

import cka_core
from cka_core.io import load_representations
from tests.files import npy_bytes as _npy, npz_bytes as _npz

RNG = np.random.default_rng(0)
A2 = RNG.standard_normal((12, 5))
A3 = RNG.standard_normal((12, 2, 3)).astype(np.float32)
A1 = RNG.standard_normal(12)


def _pt(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _equal(got, expected):
    got = np.asarray(got)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.astype(np.float64), expected.astype(np.float64))


# ----------------------------------------------------------------- round trips

@pytest.mark.parametrize("array", [A2, A3, A2.astype(np.float32), A2.astype(np.float16)],
                         ids=["f64-2d", "f32-3d", "f32-2d", "f16-2d"])
def test_npy_round_trip(array):
    out = load_representations(_npy(array), "acts/layer4.npy")
    assert list(out) == ["layer4"]
    _equal(out["layer4"], array)
    assert out["layer4"].dtype.kind == "f"


def test_npy_one_dimensional_is_one_feature_per_example():
    out = load_representations(_npy(A1), "scores.npy")
    _equal(out["scores"], A1.reshape(12, 1))


def test_npy_integers_become_floats():
    ints = np.arange(24).reshape(8, 3)
    out = load_representations(_npy(ints), "ints.npy")
    assert out["ints"].dtype.kind == "f"
    _equal(out["ints"], ints)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_round_trip_in_file_order(compressed):
    data = _npz(compressed, zeta=A2, alpha=A3, mid=A1)
    out = load_representations(data, "model.npz")
    assert list(out) == ["zeta", "alpha", "mid"]
    _equal(out["zeta"], A2)
    _equal(out["alpha"], A3)
    _equal(out["mid"], A1.reshape(-1, 1))


def test_pt_single_tensor_and_dict():
    out = load_representations(_pt(torch.from_numpy(A2)), "feats.pt")
    assert list(out) == ["feats"]
    _equal(out["feats"], A2)
    d = {"conv1": torch.from_numpy(A3), "fc": torch.from_numpy(A2).float()}
    out = load_representations(_pt(d), "model.pt")
    assert list(out) == ["conv1", "fc"]
    _equal(out["conv1"], A3)
    _equal(out["fc"], A2.astype(np.float32))
    assert out["fc"].dtype == np.float32


def test_pt_tensor_that_required_grad_and_bfloat16():
    t = torch.from_numpy(A2).float().requires_grad_(True)
    out = load_representations(_pt({"x": t.detach(), "y": t.detach().to(torch.bfloat16)}), "m.pt")
    _equal(out["x"], A2.astype(np.float32))
    _equal(out["y"], t.detach().to(torch.bfloat16).float().numpy())


def test_safetensors_round_trip():
    arrays = {"block.0": A2, "block.1": A3, "head": A2[:, :2].copy()}
    out = load_representations(st_save_numpy(arrays), "reps.safetensors")
    assert set(out) == set(arrays)
    for k, v in arrays.items():
        _equal(out[k], v)
    out = load_representations(st_save_torch({"t": torch.from_numpy(A3)}), "t.safetensors")
    _equal(out["t"], A3)


@pytest.mark.parametrize("header", [True, False])
def test_csv_round_trip(header):
    buf = io.StringIO()
    if header:
        buf.write(",".join(f"f{i}" for i in range(A2.shape[1])) + "\n")
    np.savetxt(buf, A2, delimiter=",", fmt="%.17g")
    out = load_representations(buf.getvalue().encode(), "table.csv")
    assert list(out) == ["table"]
    _equal(out["table"], A2)


def test_loaded_layers_feed_cka_matrix():
    out = load_representations(_npz(a=A2, b=A3), "m.npz")
    M = cka_core.cka_matrix(out)
    assert M.shape == (2, 2)
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-6)


# ----------------------------------------------------------------- never unpickle

class _Payload:
    """Unpickling this runs os.system(touch marker): proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_payload_really_executes_when_unpickled(tmp_path):
    """Guard for the two tests below: the payload does create the marker if anything unpickles it."""
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_npy_object_array_with_pickle_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned_npy"
    arr = np.empty(3, dtype=object)
    arr[:] = [_Payload(marker), 1, 2]
    data = _npy(arr, allow_pickle=True)
    with pytest.raises(cka_core.RepresentationError):
        load_representations(data, "evil.npy")
    assert not marker.exists()
    # the same inside an .npz
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.npy", _npy(A2))
        z.writestr("evil.npy", data)
    with pytest.raises(cka_core.RepresentationError):
        load_representations(buf.getvalue(), "evil.npz")
    assert not marker.exists()


@pytest.mark.parametrize("payload_kind", ["bare", "in_dict"])
def test_pt_malicious_pickle_is_refused_without_executing(tmp_path, payload_kind):
    marker = tmp_path / f"pwned_pt_{payload_kind}"
    obj = _Payload(marker) if payload_kind == "bare" else {"x": torch.zeros(3, 2), "y": _Payload(marker)}
    data = _pt(obj)
    with pytest.raises(cka_core.RepresentationError):
        load_representations(data, "evil.pt")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_raw_pickle_renamed_to_pt_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned_raw"
    data = pickle.dumps({"x": _Payload(marker)})
    with pytest.raises(cka_core.RepresentationError):
        load_representations(data, "legacy.pt")
    assert not marker.exists()


# ----------------------------------------------------------------- bad files

BAD = {
    "nan_npy": (lambda: _npy(np.where(np.eye(4, 3) > 0, np.nan, 1.0)), "x.npy", r"(?i)nan|finite"),
    "inf_npz": (lambda: _npz(a=A2, b=np.full((12, 2), np.inf)), "x.npz", r"(?i)inf|finite"),
    "inf_pt": (lambda: _pt({"a": torch.tensor([[1.0, float("inf")], [0.0, 1.0]])}), "x.pt", r"(?i)inf|finite"),
    "nan_safetensors": (lambda: st_save_numpy({"a": np.array([[np.nan, 1.0], [2.0, 3.0]])}), "x.safetensors",
                        r"(?i)nan|finite"),
    "nan_csv": (lambda: b"1,2\nnan,4\n5,6\n", "x.csv", r"(?i)nan|finite"),
    "string_npy": (lambda: _npy(np.array([["a", "b"], ["c", "d"]])), "x.npy", r"(?i)numeric|dtype|string"),
    "garbage_npy": (lambda: b"\x00\x01not an npy file at all" * 10, "x.npy", None),
    "garbage_npz": (lambda: b"PK\x03\x04garbage" * 20, "x.npz", None),
    "garbage_pt": (lambda: os.urandom(300), "x.pt", None),
    "garbage_safetensors": (lambda: b"\xff" * 64, "x.safetensors", None),
    "truncated_npy": (lambda: _npy(A2)[:-16], "x.npy", None),
    "empty_npy": (lambda: b"", "x.npy", r"(?i)empty|0 bytes"),
    "empty_csv": (lambda: b"", "x.csv", None),
    "unknown_extension": (lambda: _npy(A2), "x.pkl", r"\.npy"),
    "no_extension": (lambda: _npy(A2), "activations", None),
    "non_numeric_csv": (lambda: b"a,b\n1,2\n3,oops\n", "x.csv", None),
    "zero_d_npy": (lambda: _npy(np.float64(3.0)), "x.npy", None),
    "empty_array_npy": (lambda: _npy(np.zeros((0, 4))), "x.npy", None),
    "empty_npz": (lambda: _npz(), "x.npz", None),
    "complex_npy": (lambda: _npy(np.ones((3, 2), dtype=complex)), "x.npy", None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_raise_representation_error(case):
    make, filename, pattern = BAD[case]
    with pytest.raises(cka_core.RepresentationError) as info:
        load_representations(make(), filename)
    message = str(info.value)
    assert len(message) > 15
    if pattern:
        import re
        assert re.search(pattern, message), message


def _state_dict_file(fmt: str) -> tuple[bytes, str]:
    import io as _io

    import sample_models
    from safetensors.torch import save as st_save

    state = sample_models.load("mlp_seed0").state_dict()
    if fmt == "npz":
        buffer = _io.BytesIO()
        np.savez(buffer, **{k: v.numpy() for k, v in state.items()})
        return buffer.getvalue(), "weights.npz"
    if fmt == "pt":
        buffer = _io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue(), "weights.pt"
    return st_save(dict(state)), "weights.safetensors"


@pytest.mark.parametrize("fmt", ["npz", "pt", "safetensors"])
def test_a_state_dict_is_refused_as_weights_not_activations(fmt):
    """Regression: an MLP's state_dict (64-row weights and 64-long biases) passed as '64 examples x 8
    layers' and drew a believable heatmap."""
    from cka_core.io import activation_layers

    data, name = _state_dict_file(fmt)
    with pytest.raises(cka_core.RepresentationError, match=r"looks like a model's weights .*hidden\d.linear.(weight|bias).*Your model"):
        activation_layers(load_representations(data, name), name)  # refused by the reader itself, before this


def test_activations_named_after_modules_are_not_taken_for_weights():
    from cka_core.io import activation_layers, weights_reason

    rng = np.random.default_rng(0)
    acts = {"bert.embeddings": rng.normal(size=(20, 8)), "encoder.layer.0.output": rng.normal(size=(20, 8)),
            "fc.weighted_sum": rng.normal(size=(20, 3)), "labels": np.arange(20)}
    assert weights_reason({k: v for k, v in acts.items() if k != "labels"}) is None
    assert list(activation_layers(acts, "acts.npz")) == ["bert.embeddings", "encoder.layer.0.output", "fc.weighted_sum"]
