"""The examples a model is run on: texts, images or arrays, read without executing anything.

Both models of a comparison see exactly the same :class:`Examples`, in the same order; its
``digest`` (SHA-256 over the examples, in order) is what the sanity panel and the exports record
to show that pairing.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field

import numpy as np

from ..errors import RepresentationError
from ..io.representations import load_representations
from ..io.safezip import open_archive

TEXT, IMAGE, ARRAY = "text", "image", "array"
MAX_EXAMPLES = 100_000
MAX_TEXT_CHARS = 10_000            # one example; longer lines are refused, not cut silently
MAX_IMAGE_PIXELS = 4096 * 4096     # one image, before the model's processor resizes it
MAX_ARCHIVE_BYTES = 512 * 2**20    # images in a .zip, inflated
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Examples:
    """n examples of one kind: ``texts`` (str), ``images`` (H x W x 3 uint8 arrays) or ``arrays``
    (name -> (n, ...) array, one entry per model input). ``labels``: optional class per example."""

    kind: str
    texts: tuple[str, ...] = ()
    images: tuple[np.ndarray, ...] = field(default=(), repr=False)
    arrays: dict = field(default_factory=dict, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    source: str = ""     # what the examples are, for captions and exports

    def __len__(self) -> int:
        if self.kind == TEXT:
            return len(self.texts)
        if self.kind == IMAGE:
            return len(self.images)
        return int(next(iter(self.arrays.values())).shape[0])

    def batch(self, start: int, stop: int) -> "Examples":
        """Examples start..stop-1, in order."""
        labels = None if self.labels is None else self.labels[start:stop]
        return Examples(self.kind, self.texts[start:stop], self.images[start:stop],
                        {k: v[start:stop] for k, v in self.arrays.items()}, labels, self.source)

    def as_matrix(self) -> np.ndarray:
        """The examples as one (n, features) float64 matrix, what deconfounded CKA regresses out:
        arrays flattened and side by side (by name), images' pixels flattened. Texts have no such
        matrix: a RepresentationError says to regress out a layer (the embeddings) instead."""
        if self.kind == TEXT:
            raise RepresentationError("texts are not numbers, so they cannot be regressed out as they are; regress out "
                                      "a layer instead (the embeddings, the first layer of a language model).")
        if self.kind == IMAGE:
            shapes = {image.shape for image in self.images}
            if len(shapes) > 1:
                raise RepresentationError(f"the images have {len(shapes)} different sizes, so their pixels do not form "
                                          "one matrix; resize them to one size, or regress out a layer instead.")
            return np.stack(self.images).reshape(len(self.images), -1).astype(np.float64)
        return np.hstack([np.asarray(self.arrays[name], dtype=np.float64).reshape(len(self), -1)
                          for name in sorted(self.arrays)])

    @property
    def digest(self) -> str:
        """SHA-256 of the examples in order: equal digests mean the same examples in the same order."""
        h = hashlib.sha256(self.kind.encode())
        if self.kind == TEXT:
            for text in self.texts:
                h.update(hashlib.sha256(text.encode()).digest())
        elif self.kind == IMAGE:
            for image in self.images:
                h.update(repr(image.shape).encode())
                h.update(np.ascontiguousarray(image).tobytes())
        else:
            for name in sorted(self.arrays):
                array = np.ascontiguousarray(self.arrays[name])
                h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
                h.update(array.tobytes())
        return h.hexdigest()


def _checked_count(n: int, what: str) -> None:
    if n == 0:
        raise RepresentationError(f"{what} holds no examples.")
    if n > MAX_EXAMPLES:
        raise RepresentationError(f"{what} holds {n:,} examples, over the limit of {MAX_EXAMPLES:,}; use a subset.")


def texts(lines, source: str = "texts") -> Examples:
    """Examples from strings, one per example (empty strings are refused: they have no tokens)."""
    lines = tuple(str(line) for line in lines)
    _checked_count(len(lines), source)
    empty = [i for i, line in enumerate(lines) if not line.strip()]
    if empty:
        raise RepresentationError(f"{source}: example {empty[0]} is empty; remove empty lines.")
    long = [i for i, line in enumerate(lines) if len(line) > MAX_TEXT_CHARS]
    if long:
        raise RepresentationError(f"{source}: example {long[0]} has {len(lines[long[0]]):,} characters, over the "
                                  f"limit of {MAX_TEXT_CHARS:,}; split it.")
    return Examples(TEXT, texts=lines, source=source)


def read_text_file(data: bytes, filename: str) -> Examples:
    """A .txt (one example per line; blank lines skipped) or .csv file (a column named 'text', else
    the first; an optional 'label' column gives classes)."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RepresentationError(f"{filename!r} is not UTF-8 text ({error.reason} at byte {error.start}); "
                                  "save it as UTF-8.") from None
    if filename.lower().endswith(".csv"):
        rows = _csv_rows(content, filename)
        if not rows:
            raise RepresentationError(f"{filename!r} is empty.")
        header = [cell.strip().lower() for cell in rows[0]]
        column = header.index("text") if "text" in header else 0
        body = [row for row in rows[1:] if row and any(cell.strip() for cell in row)]
        if any(len(row) <= column for row in body):
            raise RepresentationError(f"{filename!r}: some rows have no column {column + 1} ('text').")
        examples = texts([row[column] for row in body], filename)
        if "label" in header:
            labels = [row[header.index("label")] if len(row) > header.index("label") else "" for row in body]
            try:
                return Examples(TEXT, examples.texts, labels=np.array([int(v) for v in labels]), source=filename)
            except ValueError:
                raise RepresentationError(f"{filename!r}: the 'label' column must hold whole numbers.") from None
        return examples
    return texts([line for line in content.splitlines() if line.strip()], filename)


def _csv_rows(content: str, filename: str) -> list[list[str]]:
    """The rows of a CSV text; csv's own errors (a field over its 131,072-character limit, a stray
    quote) become a RepresentationError naming the file and the line."""
    reader = csv.reader(io.StringIO(content))
    try:
        return list(reader)
    except csv.Error as error:
        raise RepresentationError(f"{filename!r}, line {reader.line_num}: not readable as CSV ({error}); write one "
                                  f"example per line, each under {MAX_TEXT_CHARS:,} characters.") from None


def _decode_image(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise RepresentationError(f"{name}: {image.width} x {image.height} pixels is over the limit of "
                                          f"{MAX_IMAGE_PIXELS:,}; resize it.")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise RepresentationError(f"{name} is not a readable PNG or JPEG image ({type(error).__name__}).") from None


def read_images(files: list[tuple[str, bytes]], source: str = "images") -> Examples:
    """Images from (name, bytes) pairs, in name order; a .zip among them is opened and its PNG/JPEG
    members taken (directories and other files ignored)."""
    found: list[tuple[str, bytes]] = []
    for name, data in files:
        if name.lower().endswith(".zip"):
            found += _zip_images(data, name)
        elif name.lower().endswith(IMAGE_SUFFIXES):
            found.append((name, data))
        else:
            raise RepresentationError(f"{name}: images must be PNG or JPEG files, or a .zip of them.")
    _checked_count(len(found), source)
    found.sort(key=lambda item: item[0])
    return Examples(IMAGE, images=tuple(_decode_image(data, name) for name, data in found), source=source)


def _zip_images(data: bytes, name: str) -> list[tuple[str, bytes]]:
    """The PNG/JPEG members of a .zip (read by the strict reader, inflation capped), in archive order.
    Directories, other files and archives inside the archive are ignored: nothing is opened twice."""
    archive = open_archive(data, name, fix="zip the PNG or JPEG files again with a standard zip tool")
    members = [m for m in archive.members if not m.is_dir and m.name.lower().endswith(IMAGE_SUFFIXES)
               and not m.name.startswith("__MACOSX/")]
    if sum(m.size for m in members) > MAX_ARCHIVE_BYTES:
        raise RepresentationError(f"{name}: its images inflate to more than {MAX_ARCHIVE_BYTES // 2**20} MiB.")
    return [(f"{name}/{m.name}", archive.read(m.name)) for m in members]


def read_arrays(data: bytes, filename: str) -> Examples:
    """Model inputs saved as .npy (one input) or .npz (one array per model input, by name; an array
    named 'labels' gives classes), parsed without unpickling."""
    arrays = load_representations(data, filename)
    labels = arrays.pop("labels", None)
    if not arrays:
        raise RepresentationError(f"{filename!r} holds no input arrays.")
    counts = {v.shape[0] for v in arrays.values()}
    if len(counts) > 1:
        raise RepresentationError(f"{filename!r}: the input arrays have different numbers of examples "
                                  f"({', '.join(f'{k}: {v.shape[0]}' for k, v in arrays.items())}).")
    _checked_count(counts.pop(), filename)
    return Examples(ARRAY, arrays=arrays, labels=labels, source=filename)
