"""The one list of the app's pages: app.py builds its navigation from it, the Home page its map of
pitfalls, and the tests and the load test their list of pages to visit."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    path: str        # the page's file, relative to the app's root
    title: str
    icon: str
    url_path: str    # "" for the default page
    group: str       # the navigation section
    lesson: str      # the page's point, in one line (the Home page's map)
    uses_source: bool = False  # works on the sidebar's representation (others pick their own networks)


PAGES = (
    PageInfo("pages/home.py", "Home", ":material/home:", "", "Learn",
             "What CKA is, and the map of where it misleads."),
    PageInfo("pages/estimators.py", "Estimators", ":material/functions:", "estimators", "Learn",
             "The estimator can decide the number: biased CKA of unrelated data nears 1 when features outnumber "
             "examples, minibatches, float32 Grams and tiny RBF bandwidths mislead too.", uses_source=True),
    PageInfo("pages/theory.py", "Derivations", ":material/menu_book:", "theory", "Learn",
             "Every formula the pages use, derived step by step, with the papers it comes from."),
    PageInfo("pages/compare.py", "Compare models", ":material/compare:", "compare", "Compare",
             "Two networks or your own activations, layer by layer, with intervals, p-values and the sanity "
             "checks that catch the bugs peer libraries shipped."),
    PageInfo("pages/trust.py", "Which measure to trust?", ":material/verified:", "trust", "Compare",
             "Every measure through ReSi's six grounding tests on groups of trained networks: which follow "
             "accuracy, outputs, training differences and layer order, with intervals over models (Klabunde et al.)."),
    PageInfo("pages/outliers.py", "Outliers", ":material/scatter_plot:", "outliers", "Davari et al.'s pitfalls",
             "Translating one point, or a subset, far enough drives CKA to a limit near 0, whatever the "
             "direction, even one the network cannot see (Davari et al. Thm 1, Cor. 3).", uses_source=True),
    PageInfo("pages/invariances.py", "Invariances", ":material/sync_alt:", "invariances", "Davari et al.'s pitfalls",
             "CKA ignores rotations and isotropic scaling, but not per-feature scaling or invertible linear maps; "
             "CCA ignores all of them. Which measure moves under which transformation, and which is a distance "
             "(1 − CKA breaks the triangle inequality)?", uses_source=True),
    PageInfo("pages/separability.py", "Separability", ":material/call_split:", "separability", "Davari et al.'s pitfalls",
             "Move a class along a direction every decision boundary ignores: the classifier's decisions are "
             "untouched, CKA collapses (Davari et al. Cor. 4).", uses_source=True),
    PageInfo("pages/function_preserving.py", "Function-preserving edits", ":material/tune:", "function_preserving",
             "Davari et al.'s pitfalls", "Rescale neurons across a ReLU, or translate in the next layer's null space: the network "
                           "computes exactly the same function, yet its layer-by-layer CKA map changes."),
    PageInfo("pages/manipulate.py", "Manipulate", ":material/model_training:", "manipulate", "Davari et al.'s pitfalls",
             "Fine-tune a network toward any CKA map you choose while its accuracy barely moves (Davari et al. §4.3)."),
    PageInfo("pages/sensitivity.py", "Specific and sensitive?", ":material/troubleshoot:", "sensitivity", "More pitfalls",
             "Delete a layer's low-variance principal components: the network loses accuracy, yet CKA stays closer "
             "to the original than a network retrained from another seed (Ding et al.)."),
    PageInfo("pages/block_structure.py", "Block structure", ":material/view_module:", "block_structure",
             "More pitfalls", "A network large for its data shows a block of layers CKA calls identical: remove the "
                           "examples that dominate those layers' first principal component and see whether it "
                           "survives (Nguyen et al.)."),
    PageInfo("pages/confounders.py", "Confounders", ":material/join_inner:", "confounders", "More pitfalls",
             "Untrained networks look like trained ones in early layers because every network reads the same "
             "inputs; regressing the inputs out (deconfounded CKA) shows what training shared (Cui et al.)."),
    PageInfo("pages/pooling.py", "Pooling", ":material/grid_view:", "pooling", "More pitfalls",
             "Flatten a feature map, average it, or make every position or step a row: CKA can rank the same "
             "networks differently under each, so a comparison holds only for its reduction."),
    PageInfo("pages/neural_diversity.py", "Neural diversity", ":material/neurology:", "neural_diversity", "Neurons that adapt",
             "Neurons that learn their own activation curves, their robustness to input shifts, and whether CKA "
             "ranks that robustness (Geadah et al.)."),
)

GROUPS = tuple(dict.fromkeys(page.group for page in PAGES))


def by_path(path: str) -> PageInfo:
    return next(page for page in PAGES if page.path == path)


def by_url_path(url_path: str) -> PageInfo:
    return next(page for page in PAGES if page.url_path == url_path)


def pitfall_map() -> dict[str, list[PageInfo]]:
    """Every page but Home, by navigation group (the Home page's map of pitfalls)."""
    return {group: [p for p in PAGES if p.group == group and p.url_path] for group in GROUPS}
