"""CSV files: one row per example, numbers only, an optional header row; rows read with a bound on
their memory.
"""
from __future__ import annotations
import array
import csv
import io
import numpy as np
from ..errors import RepresentationError
from .checks import check_size, max_values, MAX_CSV_COLUMNS


def read_csv(data: bytes, filename: str, stem: str) -> dict[str, np.ndarray]:
    """Rows are parsed one at a time into one flat float64 buffer: 8 bytes per value, where every value
    takes at least 2 bytes of the file, and no Python object per cell outlives its row."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(_bounded_lines(text, filename))
    values = array.array("d")
    width = n_rows = 0
    header_seen = False
    try:
        for row in reader:
            if len(row) != width:  # the first row, a blank line, or a ragged row: the common path skips this
                if not any(cell.strip() for cell in row):
                    continue
                if n_rows:
                    raise RepresentationError(
                        f"{filename!r}, line {reader.line_num}: {len(row)} columns where earlier lines have {width}."
                    )
                if not header_seen and not _is_numeric_row(row):
                    header_seen = True  # a header row of feature names
                    continue
                width = len(row)
            try:
                values.extend(map(float, row))
            except ValueError:
                if not any(cell.strip() for cell in row):
                    continue  # blank cells only: the first one failed, so nothing was appended
                bad = next(cell for cell in row if not _is_number(cell))
                raise RepresentationError(
                    f"{filename!r}, line {reader.line_num}: {bad[:40]!r} is not a number; every cell after the "
                    "optional header row must be numeric."
                ) from None
            n_rows += 1
            if len(values) > max_values():
                check_size((n_rows, width), 8, filename, stem)
    except UnicodeDecodeError:
        raise RepresentationError(f"{filename!r} is not UTF-8 text; save the CSV as plain UTF-8.") from None
    except csv.Error as error:  # a field over csv's size limit, a stray quote after a quoted field...
        raise RepresentationError(
            f"{filename!r}, line {reader.line_num}: not readable as CSV ({error}); write plain numbers "
            "separated by commas, one example per line."
        ) from None
    if not n_rows:
        raise RepresentationError(
            f"{filename!r} has {'a header but ' if header_seen else ''}no data rows; write one example per line, "
            "one feature per column."
        )
    return {stem: np.frombuffer(values, dtype=np.float64).reshape(n_rows, width)}


def _bounded_lines(text, filename: str):
    """The file's lines, refusing one with more than MAX_CSV_COLUMNS cells before csv splits it
    (quoted commas count too: the bound only errs on the safe side)."""
    for line in text:
        if line.count(",") >= MAX_CSV_COLUMNS:
            raise RepresentationError(
                f"{filename!r} has a line of more than {MAX_CSV_COLUMNS} columns; save such wide activations "
                "as .npy or .safetensors."
            )
        yield line


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_numeric_row(row: list[str]) -> bool:
    return all(_is_number(cell) for cell in row)
