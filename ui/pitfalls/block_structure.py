"""What the "Block structure" page shows (Nguyen, Raghu & Kornblith 2021, 2022; docs/theory.md §8.4): a
network's own CKA map, the block in it, the examples that dominate the block's first principal
component, and the map again without them, against the same number of random examples removed.

The maps without the first m examples of an order are cached per (network key, layer defining
dominance, random seed, m) and, for the removal curves, per (network key, layer, random seed): the
block found at the chosen threshold is summarised from them, so moving the threshold recomputes no map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cka_core import RepresentationError
from cka_core.pitfalls import blocks
from cka_core.pitfalls.blocks import BlockSummary

from ..frame import figures
from ..sources import models

NETWORK = "mlp_deep_wide"
#: Nguyen et al. use debiased (unbiased-HSIC) CKA; it also keeps maps over different numbers of rows comparable.
DEBIASED = True
THRESHOLD = 0.95
#: The m slider runs to this share of the examples; it opens at the share below (36 of the 359 test digits).
MOST_REMOVED, DEFAULT_REMOVED = 0.2, 0.1
#: Examples drawn as images: the first of the removed dominant ones.
SHOWN = 16


def networks() -> list[str]:
    """Trained ReLU MLPs (the zoo's and this session's fine-tunes), the block network first."""
    return sorted(models.names(trained=True, relu_mlp=True), key=lambda n: n != NETWORK)


def layers(name: str) -> tuple[str, ...]:
    return models.get(name).layers


def n_examples(name: str) -> int:
    return len(models.digits().y_test)


def m_range(name: str) -> tuple[int, int]:
    """(largest m, default m) for the network's test digits."""
    n = n_examples(name)
    return int(MOST_REMOVED * n), round(DEFAULT_REMOVED * n)


def _layers(name: str) -> list[np.ndarray]:
    test = models.activations(name)["test"]
    return [test[layer] for layer in layers(name)]


# ----------------------------------------------------------------------------- cached computations
@st.cache_data(max_entries=16, show_spinner="Computing the CKA map…")
def full_map(key: str, name: str) -> np.ndarray:
    """The network's own CKA map on every test digit."""
    return blocks.cka_map_without(_layers(name), [], debiased=DEBIASED)


@st.cache_data(max_entries=16)
def shares(key: str, name: str) -> np.ndarray:
    """lambda_1 / sum lambda of every layer (test digits)."""
    return np.array([blocks.top_pc_share(x) for x in _layers(name)])


@st.cache_data(max_entries=64)
def scores(key: str, name: str, layer: str) -> np.ndarray:
    """Each test digit's |projection| on the first principal axis of ``layer``."""
    return blocks.dominance_scores(models.activations(name)["test"][layer])


def block_of(name: str, threshold: float) -> tuple[int, int] | None:
    return blocks.detect_block(full_map(models.get(name).key, name), threshold)


def default_layer(name: str, threshold: float) -> str:
    """The block layer with the largest first-component share (the whole network's, without a block)."""
    found, share = block_of(name, threshold), shares(models.get(name).key, name)
    index = blocks.most_dominated_layer(share, found or (0, len(share) - 1))
    return layers(name)[index]


def removal_order(name: str, layer: str, random_seed: int | None) -> np.ndarray:
    """Every test digit, most dominant first (``random_seed`` None), or in a seeded random order."""
    if random_seed is None:
        return blocks.dominant_examples(scores(models.get(name).key, name, layer), n_examples(name))
    return blocks.random_examples(n_examples(name), n_examples(name), random_seed)


@st.cache_data(max_entries=128, show_spinner="Removing examples and recomputing the map…")
def removed_map(key: str, name: str, layer: str, random_seed: int | None, m: int) -> np.ndarray:
    """The CKA map without the first m examples of :func:`removal_order`."""
    return blocks.cka_map_without(_layers(name), removal_order(name, layer, random_seed)[:m], debiased=DEBIASED)


def curve_ms(name: str) -> list[int]:
    """The m of the removal curves: every second one up to the slider's end."""
    return list(range(0, m_range(name)[0] + 1, 2))


@st.cache_data(max_entries=32, show_spinner="Removing examples one group after another…")
def curve_maps(key: str, name: str, layer: str, random_seed: int | None) -> np.ndarray:
    """The CKA maps without the first m examples of :func:`removal_order`, for every m of :func:`curve_ms`
    (not keyed on the block: moving the threshold only re-reads them)."""
    return blocks.removal_maps(_layers(name), removal_order(name, layer, random_seed), curve_ms(name),
                               debiased=DEBIASED)


def curve(key: str, name: str, layer: str, random_seed: int | None, block: tuple[int, int]) -> list[BlockSummary]:
    """The block's summary without the first m examples of :func:`removal_order`, for every m of :func:`curve_ms`."""
    return [blocks.block_summary(C, block) for C in curve_maps(key, name, layer, random_seed)]


# ----------------------------------------------------------------------------- what the page shows
@dataclass(frozen=True)
class BlockView:
    name: str
    layers: tuple[str, ...]
    threshold: float
    layer: str                         # the layer whose first principal axis ranks the examples
    m: int
    seed: int                          # of the random removal
    n: int
    shares: np.ndarray                 # lambda_1 / sum lambda per layer
    map_all: np.ndarray
    map_removed: np.ndarray            # without the m dominant examples
    block: tuple[int, int] | None
    removed: np.ndarray                # indices of the m dominant examples, most dominant first
    labels: np.ndarray                 # of every test digit
    all_examples: BlockSummary | None
    dominant: BlockSummary | None      # without the m dominant examples
    random: BlockSummary | None        # without m random ones
    dominant_pairs: tuple[int, int] | None  # (pairs of the block's layers still >= threshold, pairs) without them
    random_pairs: tuple[int, int] | None    # the same without m random ones
    ms: list[int]
    dominant_curve: list[BlockSummary]
    random_curve: list[BlockSummary]

    @property
    def remaining(self) -> int:
        """How many test digits the map on the right is computed on."""
        return self.n - self.m

    @property
    def block_names(self) -> str:
        first, last = self.block
        return f"{self.layers[first]}–{self.layers[last]}"

    def class_counts(self) -> dict[int, int]:
        """How many of the removed dominant examples each class has, most first."""
        values, counts = np.unique(self.labels[self.removed], return_counts=True)
        return {int(v): int(c) for c, v in sorted(zip(counts, values), key=lambda item: (-item[0], item[1]))}


def view(name: str, threshold: float, layer: str, m: int, seed: int) -> BlockView:
    """Everything the controls drive, from the cached maps, scores and curves."""
    key, names = models.get(name).key, layers(name)
    if layer not in names:
        raise RepresentationError(f"{name} has no layer {layer!r}; pick one of {', '.join(names)}.")
    found = block_of(name, threshold)
    removed_all = removed_map(key, name, layer, None, m)
    summaries, pairs, curves = (None, None, None), (None, None), ([], [])
    if found is not None:
        removed_random = removed_map(key, name, layer, seed, m)
        summaries = (blocks.block_summary(full_map(key, name), found), blocks.block_summary(removed_all, found),
                     blocks.block_summary(removed_random, found))
        pairs = tuple(blocks.pairs_reaching(C, found, threshold) for C in (removed_all, removed_random))
        curves = (curve(key, name, layer, None, found), curve(key, name, layer, seed, found))
    return BlockView(name, names, threshold, layer, m, seed, n_examples(name), shares(key, name), full_map(key, name),
                     removed_all, found, removal_order(name, layer, None)[:m], models.labels(name)[0], *summaries,
                     *pairs, curve_ms(name), *curves)


def verdict(v: BlockView) -> str:
    """What the dominant removal does to the block, by the block's own definition (every pair of its
    layers at CKA >= the threshold): it stays (every pair still reaches it), frays (some pairs fall below,
    the mean does not) or dissolves (the mean inside falls below the threshold)."""
    reaching, total = v.dominant_pairs
    if reaching == total:
        return "the block stays"
    return "the block frays" if v.dominant.inside >= v.threshold else "the block dissolves"


def verdict_detail(v: BlockView) -> str:
    """The verdict with the numbers that decide it."""
    reaching, total = v.dominant_pairs
    words = verdict(v)
    if reaching == total:
        return f"{words}: all {total} pairs of its layers still reach {v.threshold:.2f}"
    if v.dominant.inside >= v.threshold:
        return f"{words}: {total - reaching} of its {total} pairs of layers fall below {v.threshold:.2f}, their mean does not"
    return (f"{words} at this threshold: its mean falls below {v.threshold:.2f}, as do {total - reaching} of its "
            f"{total} pairs of layers")


def pairs_fraction(pairs: tuple[int, int]) -> str:
    """'24/55': pairs of the block's layers at or above the threshold, of all its pairs."""
    return f"{pairs[0]}/{pairs[1]}"


def pairs_text(pairs: tuple[int, int], threshold: float) -> str:
    reaching, total = pairs
    return f"all {total} pairs ≥ {threshold:.2f}" if reaching == total else f"{reaching} of {total} pairs ≥ {threshold:.2f}"


def lead_text(v: BlockView) -> str:
    """How far the block stands out from the other layers, before and after the dominant removal, as
    differences of mean CKA (a ratio of the two would pass 100% whenever the outside falls faster)."""
    before, after = v.all_examples.contrast, v.dominant.contrast
    if after > before:
        return (f"Its lead over the other layers (inside minus outside) still grows, from {before:.3f} to "
                f"{after:.3f}, as their CKA with it falls faster")
    return f"Its lead over the other layers (inside minus outside) falls from {before:.3f} to {after:.3f}"


def outside_caption(v: BlockView) -> str:
    """The mean CKA between the block and the other layers under each removal (the metrics show the inside)."""
    return (f"Mean CKA between the block {v.block_names} and the other layers: {v.all_examples.outside:.3f} on every "
            f"digit, {v.dominant.outside:.3f} without the top {v.m}, {v.random.outside:.3f} without {v.m} random ones.")


def makeup(v: BlockView) -> str:
    """The classes of the removed dominant examples in words ('all 36 are 4s', '30 are 4s, 6 are 6s')."""
    counts = v.class_counts()
    if len(counts) == 1:
        [(label, count)] = counts.items()
        return {1: f"it is a {label}", 2: f"both are {label}s"}.get(count, f"all {count} are {label}s")
    parts = [f"{count} {'is a' if count == 1 else 'are'} {label}{'' if count == 1 else 's'}"
             for label, count in list(counts.items())[:3]]
    rest = v.m - sum(list(counts.values())[:3])
    return ", ".join(parts) + (f", {rest} other" if rest else "")


def takeaway(v: BlockView) -> str:
    """The page's lesson in one sentence, with the numbers of the current settings."""
    if v.block is None:
        return (f"No two neighbouring layers of {v.name} reach CKA {v.threshold:.2f} with each other, so at this "
                "threshold its map has no block to dissolve; lower the threshold or pick a larger network.")
    a, d, r = v.all_examples, v.dominant, v.random
    if v.m == 0:
        return (f"{v.block_names} of {v.name} are a block at CKA ≥ {v.threshold:.2f}: mean CKA {a.inside:.3f} inside "
                f"against {a.outside:.3f} with the other layers. Move the slider to remove the examples that dominate "
                f"the first principal component of {v.layer}.")
    return (f"{v.block_names} of {v.name} are a block at CKA ≥ {v.threshold:.2f} (mean CKA {a.inside:.3f} inside, "
            f"{a.outside:.3f} with the other layers). Removing the {v.m} test digits furthest along the first "
            f"principal component of {v.layer} "
            f"({makeup(v)}) takes it to {d.inside:.3f} (outside {d.outside:.3f}), so {verdict_detail(v)}. "
            f"{lead_text(v)}. Removing {v.m} random digits leaves {r.inside:.3f} "
            f"({pairs_text(v.random_pairs, v.threshold)}).")


def _half_way(v: BlockView) -> tuple[int, float]:
    """(m on the curve nearest to half the current m, the block's mean CKA without that many dominant examples)."""
    m = min(v.ms, key=lambda k: abs(k - v.m / 2))
    return m, v.dominant_curve[v.ms.index(m)].inside


def paper_note(v: BlockView) -> str | None:
    """What this network shows against what Nguyen et al. report, from the numbers (None without a block or m)."""
    if v.block is None or v.m == 0:
        return None
    label, count = next(iter(v.class_counts().items()))
    in_class = int(np.sum(v.labels == label))
    if count == v.m == in_class:
        who = f"all {v.m} removed digits are {label}s, every {label} in the test set: the dominant group is one class"
    elif count == v.m:
        who = f"all {v.m} removed digits are {label}s ({count} of the {in_class} in the test set)"
    else:
        who = f"the removed digits mix classes ({makeup(v)})"
    half, at_half = _half_way(v)
    return (f"Nguyen et al. trace the block to a small group of dominant examples with very large activations that "
            f"share an image statistic (e.g. a background colour on CIFAR images), and find no block in the CKA "
            f"of the remaining examples. On {v.name}, {who}. They are {v.m / v.n:.0%} of the {v.n} test digits; "
            f"without them, {pairs_text(v.dominant_pairs, v.threshold)} among the block's layers "
            f"(without {v.m} random digits, {pairs_text(v.random_pairs, v.threshold)}), and without half as many "
            f"(m = {half}) its mean CKA reads {at_half:.3f}.")


def class_frame(v: BlockView) -> pd.DataFrame:
    """Per class: how many of the removed dominant examples, and of all the test digits, it has."""
    classes = np.arange(int(v.labels.max()) + 1)
    removed = np.bincount(v.labels[v.removed], minlength=classes.size)
    return pd.DataFrame({"class": classes, "removed": removed, "test digits": np.bincount(v.labels)})


# ----------------------------------------------------------------------------- figures
def map_figure(v: BlockView, values: np.ndarray, title: str) -> go.Figure:
    """A CKA map with the block outlined."""
    fig = figures.heatmap(values, list(v.layers), list(v.layers), title=title)
    if v.block is not None:
        first, last = v.block
        fig.add_shape(type="rect", x0=first - 0.5, x1=last + 0.5, y0=first - 0.5, y1=last + 0.5,
                      line=dict(color=figures.COLOURS["current"], width=3))
    fig.update_layout(margin=dict(l=70, r=10, t=50, b=70))
    fig.update_traces(texttemplate=None)  # 15 x 15 numbers cannot be read at half the page; hover has them
    return fig


def curve_figure(v: BlockView) -> go.Figure:
    """The block's mean CKA (and the rest of the map's) against m, dominant and random removal."""
    series = {"block, dominant removed": [s.inside for s in v.dominant_curve],
              "block, random removed": [s.inside for s in v.random_curve],
              "outside the block, dominant removed": [s.outside for s in v.dominant_curve],
              "outside the block, random removed": [s.outside for s in v.random_curve]}
    fig = figures.curve(np.array(v.ms), series, title=f"Block {v.block_names}: mean CKA as examples are removed",
                        x_title="examples removed m", y_title="mean CKA", y_range=(0.0, 1.02),
                        marker=(v.m, {"block, dominant removed": v.dominant.inside,
                                      "block, random removed": v.random.inside}))
    colours = {"dominant": figures.COLOURS["moved"], "random": figures.COLOURS["original"]}
    for name in series:
        fig.update_traces(line=dict(color=colours[name.split(", ")[1].split(" ")[0]],
                                    dash="dot" if name.startswith("outside") else "solid"), selector=dict(name=name))
    fig.add_hline(y=v.threshold, line=dict(color=figures.COLOURS["current"], dash="dash", width=1),
                  annotation_text=f"threshold {v.threshold:.2f}: below it in the mean, the block dissolves",
                  annotation_position="bottom right")
    fig.update_layout(legend=dict(orientation="h", y=-0.25), margin=dict(l=60, r=20, t=50, b=110), height=420)
    return fig


def shares_figure(v: BlockView) -> go.Figure:
    """lambda_1 / sum lambda per layer, the block's layers in colour."""
    inside = np.zeros(len(v.layers), dtype=bool)
    if v.block is not None:
        inside[v.block[0]:v.block[1] + 1] = True
    colours = [figures.COLOURS["current"] if i else figures.COLOURS["original"] for i in inside]
    fig = figures.bars(list(v.layers), [float(s) for s in v.shares], colours=colours, y_range=(0.0, 1.12),
                       title="Share of each layer's variance on its first principal component",
                       y_title="λ₁ / Σλ")
    fig.update_traces(texttemplate="%{y:.2f}")
    return fig


def examples_figure(v: BlockView) -> go.Figure:
    """The first :data:`SHOWN` removed dominant digits as 8x8 images in one mosaic, each titled with its class."""
    shown = v.removed[:SHOWN]
    per_row, across, down = 8, 9, 12   # a pixel between images, three rows above each for its class
    rows = -(-shown.size // per_row)
    mosaic = np.full((rows * down, per_row * across - 1), np.nan)
    pixels = models.digits().X_test
    annotations = []
    for k, index in enumerate(shown):
        r, c = divmod(k, per_row)
        mosaic[r * down + 3:r * down + 11, c * across:c * across + 8] = pixels[index].reshape(8, 8)
        annotations.append(dict(x=c * across + 3.5, y=r * down + 1.5, text=f"{v.labels[index]}", showarrow=False,
                                font=dict(size=12)))
    fig = go.Figure(go.Heatmap(z=mosaic, colorscale="Greys", showscale=False, hoverinfo="skip"))
    fig.update_layout(title=f"The {shown.size} most dominant test digits along {v.layer}'s first component (class above)",
                      annotations=annotations, **{**figures.LAYOUT, "height": 120 + 110 * rows,
                                                  "margin": dict(l=10, r=10, t=70, b=10)})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig
