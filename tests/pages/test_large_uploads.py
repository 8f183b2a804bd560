"""Very wide, very long and odd uploads through the sidebar's "Uploaded file" source, on every page.

Each page either handles the upload (its main output is drawn) or refuses it with an ``st.error``
that names the reason; nothing raises, the error boundary's generic "unexpected error" never
shows, and switching the sidebar back to a sample model draws the page as usual. The arrays are
generated once per module; one AppTest session per case is reused across the pages.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.pages.apptest import ROOT, metric
from tests.files import npy_bytes as _npy, npz_bytes as _npz

from streamlit.testing.v1 import AppTest

PAGES = {  # page -> how to recognise its main output
    "pages/home.py": ("title", "CKA Pitfalls Explorer"),
    "pages/estimators.py": ("metric", "Biased CKA"),
    "pages/compare.py": ("metric", "Examples"),
    "pages/outliers.py": ("metric", "Linear CKA"),
    "pages/invariances.py": ("metric", "Linear CKA"),
    "pages/separability.py": ("metric", "Linear CKA"),
    "pages/function_preserving.py": ("metric", "Linear CKA"),
    "pages/manipulate.py": ("metric", "Test accuracy now"),
    "pages/neural_diversity.py": ("metric", "Spearman ρ"),
}
#: Pages that compute on the sidebar's representation; the others only go through the sidebar.
USES_SOURCE = ("pages/outliers.py", "pages/invariances.py", "pages/separability.py")

OK = "output"


def _labelled(n: int, d: int, classes: int, rng) -> dict[str, np.ndarray]:
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.integers(0, classes, n).astype(np.int8)
    X[:, 0] += 2 * y  # classes a linear probe can find
    return {"hidden": X, "labels": y}


def _wide(rng):  # 200 x 60,000 float32 (48 MB): wide-but-short works through the n x n forms
    return "wide.npz", _npz(**_labelled(200, 60_000, 4, rng))


def _long(rng):  # 1,000,000 x 12 float32 (48 MB): no n x n anything; RBF CKA skipped, plot subsampled
    return "long.npz", _npz(**_labelled(1_000_000, 12, 10, rng))


def _image(rng):  # (8, 3, 400, 400): 8 examples that flatten to 480,000 features
    return "maps.npz", _npz(conv=rng.standard_normal((8, 3, 400, 400), dtype=np.float32),
                            labels=np.arange(8) % 2)


def _square(rng):  # 2,500 x 2,500: n * d * min(n, d) = 1.6e10 multiply-adds per product, over the limit
    return "square.npz", _npz(**_labelled(2_500, 2_500, 3, rng))


def _many(rng):  # 500 arrays and a labels array one entry short
    arrays = {f"layer{i:03d}": rng.standard_normal((100, 20), dtype=np.float32) for i in range(500)}
    return "many.npz", _npz(**arrays, labels=np.arange(99) % 3)


def _three_rows(rng):
    return "three.npy", _npy(rng.standard_normal((3, 10)))


def _constant(rng):
    return "constant.npy", _npy(np.full((300, 20), 0.5, dtype=np.float32))


def _int_column(rng):  # one int16 feature per example, integer labels
    y = rng.integers(0, 3, 300)
    return "column.npz", _npz(h=(rng.integers(-50, 50, (300, 1)) + 20 * y[:, None]).astype(np.int16), labels=y)


def _bool_constant_column(rng):  # bool features, one of them constant
    X = rng.random((300, 30)) > 0.5
    X[:, 4] = True
    return "flags.npz", _npz(h=X, labels=rng.integers(0, 2, 300))


def _wide_csv(rng):  # 10 rows x 120,000 columns of text
    buffer = io.StringIO()
    np.savetxt(buffer, rng.standard_normal((10, 120_000)).round(4), delimiter=",", fmt="%g")
    return "wide.csv", buffer.getvalue().encode()


def _bomb(rng):  # 100 KB of .npz that inflates to 25M float32 values (100 MB): refused before inflating
    return "bomb.npz", _npz(compressed=True, z=np.zeros((5_000, 5_000), dtype=np.float32))


# case -> (maker, {page: expected}); pages not listed expect their main output.
CASES = {
    "wide": (_wide, {}),
    "long": (_long, {}),
    "image": (_image, {}),
    "square": (_square, {"pages/outliers.py": "over this page's limit", "pages/separability.py": "over this page's limit",
                         "pages/invariances.py": None}),  # Invariances takes an evenly spaced subset, as for "wide"
    "many_arrays": (_many, {"pages/separability.py": "needs class labels"}),
    "three_rows": (_three_rows, {"pages/outliers.py": "at least 4 examples", "pages/separability.py": "needs class labels",
                                 "pages/invariances.py": "too few"}),
    "constant": (_constant, {"pages/outliers.py": "constant across examples", "pages/separability.py": "needs class labels",
                             "pages/invariances.py": "constant"}),
    # Integer and 0/1 data are not run on Invariances (None): RSA ranks their many tied distances, and the rounding
    # of a rotation or rescaling breaks the ties, so that page reports a declared invariance as moved (a property
    # of cka_core's RSA with ties, not of the upload's size or dtype handling).
    "int_column": (_int_column, {"pages/separability.py": "span all 1 features", "pages/invariances.py": None}),
    "bool_constant_column": (_bool_constant_column, {"pages/invariances.py": None}),
    "wide_csv": (_wide_csv, {"pages/separability.py": "needs class labels"}),
    "bomb": (_bomb, {}),
}
#: The pages that ignore the sidebar's source are checked with the large and the refused files only.
LIGHT_CASES = ("wide", "bomb")
SIDEBAR_ERRORS = {"bomb": "over the limit of 16,777,216 values (128 MiB) this tool loads"}
SIDEBAR_WARNINGS = {"many_arrays": "holds 99 labels but"}

PARAMS = [pytest.param(case, page, id=f"{case}-{page[6:-3]}") for case in CASES for page in PAGES
          if (page in USES_SOURCE or case in LIGHT_CASES) and CASES[case][1].get(page, OK) is not None]


@pytest.fixture(scope="module")
def session(request):
    """One app session per case, with the file generated once; the sidebar is left on "Uploaded file"."""
    sessions = {}

    def get(case: str):
        if case not in sessions:
            for old in list(sessions):  # one case at a time: free the previous file and its caches
                _close(sessions.pop(old)[0])
            maker, expected = CASES[case]
            name, raw = maker(np.random.default_rng(0))
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
            at.run()
            at.radio(key="src_kind").set_value("Uploaded file").run()
            sessions[case] = (at, (name, raw, "application/octet-stream"), expected)
        return sessions[case]

    yield get
    for at, _, _ in sessions.values():
        _close(at)


def _close(at: AppTest) -> None:
    """Drop the session-scoped caches (the parsed upload, its float64 copy) of a finished session."""
    from streamlit.runtime.caching import cache_resource_api

    for session_id in [k for k in cache_resource_api._resource_caches._function_caches if k is not None]:
        cache_resource_api.clear_session_cache(session_id)


def _has_output(at: AppTest, page: str) -> bool:
    kind, label = PAGES[page]
    if kind == "title":
        return any(label in t.value for t in at.title)
    return any(m.label.startswith(label) for m in at.metric)


def _messages(elements) -> list[str]:
    return [e.value for e in elements]


@pytest.mark.parametrize(("case", "page"), PARAMS)
def test_page_handles_or_refuses_the_upload_and_recovers(session, case, page):
    at, upload, expected = session(case)
    at.file_uploader(key="src_upload").set_value(upload)
    at.switch_page(page).run()

    assert not at.exception, [e.message for e in at.exception]
    errors, infos = _messages(at.error), _messages(at.info)
    assert not any("unexpected error" in e for e in errors), errors
    sidebar_errors = _messages(at.sidebar.error)
    if case in SIDEBAR_ERRORS:  # refused while loading: the page falls back to the default source
        assert any(SIDEBAR_ERRORS[case] in e for e in sidebar_errors), sidebar_errors
    else:
        assert not sidebar_errors, sidebar_errors
    if case in SIDEBAR_WARNINGS:
        assert any(SIDEBAR_WARNINGS[case] in w for w in _messages(at.sidebar.warning))
    want = expected.get(page, OK) if page in USES_SOURCE else OK
    if want == OK:
        assert _has_output(at, page), f"{page} drew no main output for {case}: errors {errors}, infos {infos}"
        assert not [e for e in errors if e not in sidebar_errors], errors
    else:
        # a refusal of the whole page is an error or an info; measures that do not apply to it (Invariances) a warning
        warnings = _messages(at.warning)
        assert any(want in message for message in errors + infos + warnings), (want, errors, infos, warnings)

    if case == "long" and page == "pages/outliers.py":
        _check_long_outliers(at)

    # The session stays usable: back to a sample model, the page draws as usual.
    at.radio(key="src_kind").set_value("Sample model").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, _messages(at.error)
    assert _has_output(at, page)
    if page in USES_SOURCE:
        assert any("mlp_seed0" in c.value for c in at.caption)
        if page != "pages/invariances.py":
            assert 0.0 <= metric(at, "Linear CKA") <= 1.0
    at.radio(key="src_kind").set_value("Uploaded file").run()  # ready for the next page of this case



def _check_long_outliers(at: AppTest) -> None:
    """1,000,000 examples: RBF CKA (n x n) is not computed, and the scatter plot gets a subset."""
    captions = " ".join(c.value for c in at.caption)
    assert "1,000,000 examples is over the limit of 2,000" in captions
    assert "The plot shows 5,00" in captions
    assert next(m for m in at.metric if m.label.startswith("RBF CKA")).value == "—"
    points = sum(len(trace.get("x", [])) for chart in at.get("plotly_chart")
                 for trace in json.loads(chart.proto.spec)["data"] if trace.get("type") == "scattergl")
    assert 0 < points <= 4 * 5_100  # before and after panels, at most MAX_PLOT_POINTS (+ moved rows) each


# ------------------------------------------------------------------ the policy and its helpers, directly
def test_an_inflating_npz_is_refused_from_its_headers_before_anything_is_inflated():
    import tracemalloc

    from cka_core import RepresentationError
    from cka_core.io import load_representations
    from ui.sources import limits

    name, raw = _bomb(None)
    assert len(raw) < 1_000_000
    tracemalloc.start()
    with pytest.raises(RepresentationError, match=f"25000000 values.*over the limit of {limits.MAX_VALUES:,} values"):
        load_representations(raw, name, max_values=limits.MAX_VALUES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20  # nothing of the 25M values was inflated
    # bool and int8 values count as the float64 they become: two 2^23+1-value bool arrays are refused
    half = np.zeros(limits.MAX_VALUES // 2 + 1, dtype=bool)
    with pytest.raises(RepresentationError, match="more than the 128 MiB of arrays"):
        load_representations(_npz(a=half, b=half), "x.npz", max_values=limits.MAX_VALUES)


def test_labels_are_used_only_as_one_whole_number_per_example():
    from ui.sources import data, limits

    X = np.zeros((6, 2))
    good = data.class_labels({"h": X, "labels": np.array([[0.0], [1], [1], [2], [0], [2]])}, "h")
    assert good[1] is None and good[0].dtype == np.int64 and good[0].tolist() == [0, 1, 1, 2, 0, 2]
    assert data.class_labels({"h": X}, "h") == (None, None)
    for labels, reason in [(np.zeros((5, 1)), "holds 5 labels but 'h' has 6"),
                           (np.eye(6)[:, :3], "one integer class per example"),
                           (np.full((6, 1), 0.5), "not whole numbers")]:
        y, note = data.class_labels({"h": X, "y": labels}, "h")
        assert y is None and reason in note, note
    many = np.arange(limits.MAX_CLASSES + 1, dtype=np.float64).reshape(-1, 1)
    y, note = data.class_labels({"h": np.zeros((many.shape[0], 2)), "labels": many}, "h")
    assert y is None and "distinct values" in note


def test_page_limits_say_why_and_what_to_do():
    from ui.sources import limits

    rng = np.random.default_rng(0)
    assert limits.problem(rng.standard_normal((300, 20)), None, limits.OUTLIERS) is None
    assert "at least 4 examples" in limits.problem(rng.standard_normal((3, 20)), None, limits.OUTLIERS)
    square = np.broadcast_to(np.arange(2_500.0), (2_500, 2_500))  # no memory: only the shape matters
    message = limits.problem(square, None, limits.OUTLIERS)
    assert "2,500 examples × 2,500 features" in message and "Upload a random subsample" in message
    assert "constant across examples" in limits.problem(np.ones((50, 4)), None, limits.SEPARABILITY)
    long = np.broadcast_to(np.arange(3.0), (200_000, 3))
    labels = np.arange(200_000) % 100
    assert "one score per example and class" in limits.problem(long, labels, limits.SEPARABILITY)


def test_plot_rows_keep_moved_examples_and_stay_bounded():
    from ui.sources import limits

    keep = np.zeros(1_000_000, dtype=bool)
    keep[[5, 500_000, 999_999]] = True
    rows = limits.plot_rows(keep.size, keep=keep)
    assert rows.size <= limits.MAX_PLOT_POINTS + 3 and np.all(np.diff(rows) > 0) and keep[rows].sum() == 3
    assert limits.plot_rows(100).tolist() == list(range(100))
    assert "5,003 of the 1,000,000" in limits.plot_caption(rows.size, keep.size)


@pytest.mark.parametrize("shape", [(300, 40), (30, 400)])
def test_top_axes_are_the_leading_principal_axes(shape):
    from ui.pitfalls import translation

    rng = np.random.default_rng(1)
    X = rng.standard_normal(shape) * np.linspace(3, 1, shape[1]) + 5
    mean, axes = translation.top_axes(X, 2)
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(mean, X.mean(axis=0))
    np.testing.assert_allclose(np.abs(np.sum(axes * vt[:2].T, axis=0)), [1.0, 1.0], atol=1e-8)
    one = translation.top_axes(X[:, :1], 2)[1]
    assert one.shape == (1, 2) and one[0, 1] == 0.0


def test_linear_cka_in_row_blocks_is_the_full_data_value():
    from cka_core import linear_cka
    from ui.pitfalls import translation

    rng = np.random.default_rng(3)
    X = rng.standard_normal((400_000, 4)) + 100.0
    Y = X @ rng.standard_normal((4, 3)) + rng.standard_normal((400_000, 3))
    for debiased in (False, True):
        assert translation.paired_linear_cka(X, Y, debiased=debiased) == pytest.approx(
            linear_cka(X, Y, debiased=debiased), abs=1e-12)


def test_probe_accuracy_curve_from_intervals_matches_argmax():
    from ui.pitfalls.separability import correct_counts

    rng = np.random.default_rng(4)
    c = np.logspace(-2, 4, 241)
    for shift in (rng.standard_normal(5), np.zeros(5), np.array([0.5, 0.5, -1.0, 0.0, 0.5])):
        scores = rng.integers(0, 4, (2_000, 5)).astype(np.float64)  # integer scores: many exact ties
        column = rng.integers(0, 5, 2_000)
        expected = [(np.argmax(scores + k * shift, axis=1) == column).sum() for k in c]
        np.testing.assert_array_equal(correct_counts(scores, column, shift, c), expected)
