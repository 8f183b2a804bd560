"""Exports of a layer x layer heatmap: the JSON document, CSV tables and a PNG.

The command line (``python -m cka_core compare --out``) and the app's Compare page both write
through these functions, so a file from either is read by the same code.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RepresentationError
from ..stats.corrections import adjusted_p_values, P_ADJUSTMENTS
from ..measures.registry import MEASURES, colour_range

FORMATS = (".csv", ".json", ".png")

BOOTSTRAP_METHOD = ("percentile bootstrap over examples (same rows resampled on both sides), re-centred on the "
                    "full-data value: [v + q_lo - median, v + q_hi - median] (cka_core.stats.resampling.bootstrap)")
PERMUTATION_METHOD = ("rows of side B shuffled against side A; p = (1 + #{null at least as similar as observed}) "
                      "/ (1 + n_permutations) (cka_core.stats.resampling.permutation_test)")
MARKING_RULE = ("not_above_null: permutation p (adjusted, when p_values_adjusted is given) > 0.05, or the "
                "bootstrap interval overlaps the shuffled-rows null mean ± 2 sd (cka_core.stats.sanity.not_above_null)")

CELL_COLUMNS = ("layer_a", "layer_b", "value", "ci_low", "ci_high", "p_value", "p_adjusted", "null_mean", "null_sd",
                "not_above_null")


def check_outputs(paths: list[Path]) -> None:
    """Refuse, before any work, an output whose suffix names no format."""
    for out in paths:
        if Path(out).suffix.lower() not in FORMATS:
            raise RepresentationError(f"--out {out}: unknown output format {Path(out).suffix or '(none)'!r}; "
                                      "use .csv, .json or .png.")


def _matrix(array) -> list[list[float]]:
    return np.asarray(array, dtype=np.float64).tolist()


def heatmap_document(values, names_a, names_b, settings: dict, *, bootstrap=None, permutation=None,
                     flagged=None, p_adjustment: str = "none") -> dict:
    """Everything needed to read and reproduce a heatmap, as JSON-ready data.

    ``settings`` (measure, estimator options, sources, n_examples...) are stored at the top level;
    ``bootstrap`` / ``permutation`` are results of :mod:`cka_core.stats.resampling`; ``p_adjustment`` the
    correction for testing every cell at once (a key of ``P_ADJUSTMENTS``); ``flagged`` the cells
    not above the null (:func:`cka_core.stats.sanity.not_above_null`, given the adjusted p-values).
    """
    doc = {"layers_a": list(map(str, names_a)), "layers_b": list(map(str, names_b)), "values": _matrix(values),
           **settings}
    if bootstrap is not None:
        doc["ci_low"], doc["ci_high"] = _matrix(bootstrap.low), _matrix(bootstrap.high)
        doc["bootstrap"] = {"n_resamples": bootstrap.n_resamples, "confidence": bootstrap.confidence,
                            "seed": settings.get("seed", 0), "method": BOOTSTRAP_METHOD}
    if permutation is not None:
        doc["p_values"] = _matrix(permutation.p_values)
        doc["null_mean"], doc["null_sd"] = _matrix(permutation.null_mean), _matrix(permutation.null_std)
        doc["permutations"] = {"n_permutations": permutation.n_permutations, "seed": settings.get("seed", 0),
                               "method": PERMUTATION_METHOD, "p_adjustment": P_ADJUSTMENTS[p_adjustment]}
        if p_adjustment != "none":
            doc["p_values_adjusted"] = _matrix(adjusted_p_values(permutation.p_values, p_adjustment))
    if flagged is not None:
        doc["not_above_null"] = np.asarray(flagged, dtype=bool).tolist()
        doc["marking_rule"] = MARKING_RULE
    return doc


def _csv_cell(text: str) -> str:
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r#') else text


def _number(value) -> str:
    return "" if value is None else repr(float(value))


def matrix_csv(values, names_a, names_b) -> str:
    """The matrix as CSV: header "layer,<layers of B>", one row per layer of A."""
    lines = [",".join(["layer"] + [_csv_cell(n) for n in names_b])]
    lines += [",".join([_csv_cell(a)] + [repr(float(v)) for v in row]) for a, row in zip(names_a, values)]
    return "\n".join(lines) + "\n"


MATRICES = ("layers_a", "layers_b", "values", "ci_low", "ci_high", "p_values", "p_values_adjusted", "null_mean",
            "null_sd", "not_above_null")


def settings_of(doc: dict) -> dict:
    """Everything in ``doc`` but the per-cell matrices: what a CSV's sidecar holds."""
    return {key: value for key, value in doc.items() if key not in MATRICES}


def cells_csv(doc: dict) -> str:
    """One row per cell (see ``CELL_COLUMNS``) under a single header line, so any CSV reader takes it
    as is; the settings travel in the JSON (or the CSV's ``.settings.json`` sidecar)."""
    lines = [",".join(CELL_COLUMNS)]
    for i, a in enumerate(doc["layers_a"]):
        for j, b in enumerate(doc["layers_b"]):
            def cell(key):
                return doc[key][i][j] if key in doc else None
            flag = cell("not_above_null")
            lines.append(",".join([
                _csv_cell(a), _csv_cell(b), _number(doc["values"][i][j]), _number(cell("ci_low")),
                _number(cell("ci_high")), _number(cell("p_values")), _number(cell("p_values_adjusted")),
                _number(cell("null_mean")),
                _number(cell("null_sd")), "" if flag is None else str(bool(flag)).lower(),
            ]))
    return "\n".join(lines) + "\n"


def write_png(doc: dict, path, *, dpi: int = 150) -> None:
    """The heatmap as a PNG (matplotlib with the Agg backend): values written in the cells when
    they fit, cells not above the null marked with x."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise RepresentationError("writing .png needs matplotlib; pip install matplotlib==3.11.2.") from None
    values = np.asarray(doc["values"], dtype=np.float64)
    names_a, names_b = doc["layers_a"], doc["layers_b"]
    info = MEASURES.get(doc.get("measure", ""), None)
    # An unbounded distance's colour scale ends at the data's largest value, not at infinity.
    low, high = colour_range(info.name, values) if info is not None else (float(values.min()), float(values.max()))
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(min(3 + 0.7 * cols, 24), min(2.5 + 0.55 * rows, 24)))
    image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, aspect="auto")
    fig.colorbar(image, ax=ax, label=info.label if info is not None else "value")
    ax.set_xticks(range(cols), names_b, rotation=45, ha="right")
    ax.set_yticks(range(rows), names_a)
    ax.set_xlabel("B")
    ax.set_ylabel("A")
    flagged = np.asarray(doc.get("not_above_null", np.zeros_like(values, dtype=bool)), dtype=bool)
    if values.size <= 144:
        middle = (low + high) / 2
        for i in range(rows):
            for j in range(cols):
                text = f"{values[i, j]:.2f}" + (" ×" if flagged[i, j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="black" if values[i, j] > middle else "white")
    else:
        ys, xs = np.nonzero(flagged)
        ax.scatter(xs, ys, marker="x", color="red", s=12)
    label = doc.get("measure_label") or (info.label if info is not None else "values")
    if doc.get("debiased") and "debiased" not in label and "unbiased" not in label:
        label += " (debiased)"
    batch = f", batch {doc['batch_size']}" if doc.get("batch_size") and "b =" not in label else ""
    title = f"{label}{batch}, n = {doc.get('n_examples', '?')}"
    if flagged.any():
        title += "\n× = not above the shuffled-rows null"
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write(out: Path, doc: dict) -> list[Path]:
    """Write ``doc`` to ``out`` in the format its suffix names; returns the paths written."""
    suffix = out.suffix.lower()
    if suffix == ".csv":
        out.write_text(matrix_csv(doc["values"], doc["layers_a"], doc["layers_b"]))
        sidecar = out.with_name(out.stem + ".settings.json")
        sidecar.write_text(json.dumps(settings_of(doc), indent=2))
        written = [out, sidecar]
        if "ci_low" in doc or "p_values" in doc:
            cells = out.with_name(out.stem + ".cells.csv")
            cells.write_text(cells_csv(doc))
            written.append(cells)
        return written
    if suffix == ".json":
        out.write_text(json.dumps(doc, indent=2))
        return [out]
    if suffix == ".png":
        write_png(doc, out)
        return [out]
    raise RepresentationError(f"--out {out}: unknown output format {suffix or '(none)'!r}; use .csv, .json or .png.")
