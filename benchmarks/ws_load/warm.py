"""Warm a server before a class arrives, so that no student meets a first computation. In order,
most likely first: every page with its defaults; then on each page every choice a student can make
there, one control at a time from the defaults (every option of a select box, radio, segmented
control, pills or select slider; every value of a numeric slider with at most FULL_SLIDER values,
else its ends, evenly spaced values and every value one move from the default; a checkbox flipped;
a number input's nearby steps; a multiselect with one option more or less); then the sidebar's
sources on the pages that use them (``uses_source``): the default model's layers, each synthetic
set with its defaults and back, every other model at its default layer, then their other layers.
Each source is set once and the source pages visited with it. The source pages' caches are LRU
caches that keep about SOURCES_KEPT sources, so by default it stops after that many (``--sources
0``: all 840-odd, about 35 minutes, which leaves the least likely warm and evicts the rest).
Every replica keeps its own caches, so each is warmed on its own port.

    python -m benchmarks.ws_load.warm http://127.0.0.1:8601 [--seconds 600] [--options 12]
        [--pages estimators,outliers] [--models 3] [--sources 8]

Bounded by ``--seconds``. Its last line says what it did and whether that was everything or it
ran out of time (and what was left); it exits non-zero when a page showed an exception.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field

from streamlit.proto.ButtonGroup_pb2 import ButtonGroup

from ui.frame.navigation import PAGES, PageInfo

from .session import StreamlitSession
from .student import SOURCE_LABEL
from .widgets import SELECT_SLIDER_REACH, SLIDER_REACH, Widget, slider_grid, state_value

#: A numeric slider with at most this many values gets every one of them (a seed 0..9, k 1..20).
FULL_SLIDER = 25
#: Sources the warm-up visits: what the source pages' costly caches keep (Invariances' tables and Estimators'
#: curves: 128 each, LRU), less room for the layers a class picks beyond them. That covers every network's
#: default layer and every layer of the networks that are not pixel RNNs (whose 63 steps each are cheap);
#: warming more would evict the likelier sources warmed first.
SOURCES_KEPT = 96
#: The sidebar's controls (ui/sources/sidebar.py; the live warm in tests/benchmarks/test_warm.py finds them).
MODEL_OPTION, SYNTHETIC_OPTION = "Sample model", "Synthetic set"
MODEL_LABEL, LAYER_LABEL, SET_LABEL = "Model", "Layer", "Set"


class OutOfTime(Exception):
    """The warm-up reached its time limit."""


class SourcesDone(Exception):
    """The warm-up visited as many sources as it keeps warm."""


@dataclass
class Progress:
    """What the warm-up did, and what it had left when it stopped."""

    pages: int = 0
    pages_left: int | None = None                                       # pages' defaults not yet computed
    reruns: int = 0
    seconds: float = 0.0
    complete: bool = False
    phases: list[tuple[str, int, float]] = field(default_factory=list)  # name, reruns, seconds
    sources: list[str] = field(default_factory=list)                    # each source visited on every page
    controls_left: int | None = None                                    # pages' controls not yet warmed
    sources_planned: int | None = None                                  # sources it means to visit, known so far
    models_unseen: int = 0                                              # planned models whose layers were never shown
    slowest: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def sources_left(self) -> int | None:
        """Sources planned and not visited yet (None: not counted yet)."""
        return None if self.sources_planned is None else self.sources_planned - len(self.sources)


def choices(widget: Widget, limit: int) -> list:
    """The values a student can give ``widget`` other than its default (plain values, as
    :func:`state_value` gives them), those one move from the default first. Every option of a
    discrete choice; a numeric slider's every value when it has at most FULL_SLIDER, else the
    values one move away (Widget.change's reach) and ``limit`` values spread over its range, both
    ends kept. A range slider, a button or a text box: none."""
    default = state_value(widget.default_state())
    seen, values = {_hashable(default)}, []
    for value in _candidates(widget, default, limit):
        if _hashable(value) not in seen:
            seen.add(_hashable(value))
            values.append(value)
    return values


def _candidates(widget: Widget, default, limit: int) -> list:
    """Every value :func:`choices` considers for ``widget``, nearest the default first, repeats allowed."""
    p, kind = widget.proto, widget.kind
    if kind in ("selectbox", "radio"):
        return widget.options
    if kind in ("checkbox", "toggle"):
        return [not default]
    if kind == "number_input":
        return widget.number_steps(default)
    if kind == "multiselect":
        return [_toggled(default, o) for o in widget.options
                if o in default or not p.max_selections or len(default) < p.max_selections]
    if kind in ("segmented_control", "pills"):
        single = p.click_mode == ButtonGroup.SINGLE_SELECT
        return [[o] if single else _toggled(default, o) for o in widget.options] + ([[]] if single else [])
    if kind == "select_slider" and len(default) == 1:
        return [[o] for o in _near_first(widget.options, widget.options.index(default[0]), SELECT_SLIDER_REACH)]
    if kind == "slider" and len(default) == 1:
        grid = slider_grid(p.min, p.max, p.step)
        if len(grid) <= FULL_SLIDER:
            return [[v] for v in grid]
        at = min(range(len(grid)), key=lambda k: abs(grid[k] - default[0]))
        near = grid[max(0, at - SLIDER_REACH):at + SLIDER_REACH + 1]
        return [[v] for v in near + _spread(grid, limit)]
    return []


def _hashable(value):
    """A value that can be a dict key (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _toggled(chosen: list, option) -> list:
    """``chosen`` with ``option`` picked or unpicked."""
    return [o for o in chosen if o != option] if option in chosen else [*chosen, option]


def _near_first(values: list, at: int, reach: int) -> list:
    """``values``, those within ``reach`` of index ``at`` first."""
    near = values[max(0, at - reach):at + reach + 1]
    return near + [v for v in values if v not in near]


def _spread(values: list, limit: int) -> list:
    """At most ``limit`` of ``values``, evenly spaced, both ends kept."""
    if len(values) <= limit:
        return values
    return [values[round(k * (len(values) - 1) / (limit - 1))] for k in range(limit)]


class Warmer:
    """One session that makes the requests, counts them and stops at the deadline."""

    def __init__(self, url: str, seconds: float, limit: int, sources: int | None, timeout: float) -> None:
        """A warm-up of the server at ``url`` that has not started; ``sources``: the most sources it
        visits, the default one (computed with the pages' defaults) included (None: every one)."""
        self.session = StreamlitSession(url, timeout)
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.limit = limit
        self.cap = None if sources is None else max(0, sources - 1)
        self.known = self.unseen = 0  # sources known to be offered (an unseen model: one), models not shown yet
        self.progress = Progress()

    async def timed(self, what: str, request) -> None:
        """Make one request (after checking the deadline) and record its time and exceptions."""
        if time.monotonic() > self.deadline:
            request.close()  # the coroutine was made but is never sent
            raise OutOfTime
        start = time.monotonic()
        await request
        self.progress.slowest.append((time.monotonic() - start, what))
        self.progress.reruns += 1
        self.progress.errors.extend(f"{what}: {text}" for kind, text in self.session.tree.problems()
                                    if kind == "exception")

    def phase(self, name: str, reruns: int, since: float) -> None:
        """Record a finished phase: how many reruns it made and how long it took."""
        self.progress.phases.append((name, self.progress.reruns - reruns, time.monotonic() - since))

    # -- the pages and their own controls
    async def page_defaults(self, pages: list[PageInfo]) -> None:
        """Every page with its defaults."""
        self.progress.pages_left = len(pages)
        for page in pages:
            await self.timed(page.title, self.session.switch_page(page.url_path))
            self.progress.pages += 1
            self.progress.pages_left -= 1

    async def page_choices(self, pages: list[PageInfo]) -> None:
        """On each page, every choice of each of its own controls, one control at a time, each put
        back to its default before the next."""
        self.progress.controls_left = len(pages)  # a page counts as one until its controls are known
        for index, page in enumerate(pages):
            await self.timed(page.title, self.session.switch_page(page.url_path))
            controls = [w for w in self.session.tree.widgets()
                        if w.script_hash != self.session.main_hash and w.movable and w.kind != "button"]
            self.progress.controls_left = len(controls) + len(pages) - index - 1
            for widget in controls:
                await self.every_choice(page, widget)
                self.progress.controls_left -= 1

    async def every_choice(self, page: PageInfo, widget: Widget) -> None:
        """Give ``widget`` each of its choices, then its default again."""
        default = self.session.widget_state(widget)
        for value in choices(widget, self.limit):
            await self.timed(f"{page.title} · {widget.label} = {value}",
                             self.session.change(widget, widget.state_for(value)))
        if default is not None and self.session.widget_state(widget) != default:
            await self.timed(f"{page.title} · {widget.label} back", self.session.change(widget, default))

    # -- the sidebar's sources
    def sidebar(self, label: str) -> Widget:
        """The sidebar's (main script's) select box or radio with this label (LookupError: not shown)."""
        found = [w for w in self.session.tree.widgets() if w.script_hash == self.session.main_hash
                 and w.label == label and w.kind in ("selectbox", "radio")]
        if not found:
            raise LookupError(f"no sidebar control {label!r} on {self.session.page!r}")
        return found[0]

    async def choose(self, label: str, option: str) -> None:
        """Set the sidebar's ``label`` control to ``option`` (on the page shown) unless it is set."""
        widget = self.sidebar(label)
        if state_value(self.session.widget_state(widget)) != option:
            await self.timed(f"{self.session.page} · {label} = {option}",
                             self.session.change(widget, widget.state_for(option)))

    async def visit(self, source: str, pages: list[PageInfo]) -> None:
        """The source just set, on every page that uses it: the others in turn from the page shown
        (there it was computed when it was set), so the next source is set where this one ends."""
        here = self.session.page
        for page in [p for p in pages if p.url_path != here]:
            await self.timed(f"{page.title} with {source}", self.session.switch_page(page.url_path))
        self.progress.sources.append(source)
        if len(self.progress.sources) == self.cap:
            raise SourcesDone

    def plan(self, known: int, unseen: int) -> None:
        """Count the sources to visit: the ``known`` ones more (a model not shown yet counts as one;
        ``unseen`` models fewer or more), at most the cap."""
        self.known, self.unseen = self.known + known, self.unseen + unseen
        capped = self.cap is not None and self.known >= self.cap
        self.progress.sources_planned = self.cap if capped else self.known
        self.progress.models_unseen = 0 if capped else self.unseen

    async def sources(self, pages: list[PageInfo], model_count: int | None) -> None:
        """The sidebar's sources on ``pages``, most likely first: the default model's layers, each
        synthetic set (with its defaults) and back to the sample models, every other model at its
        default layer, then the other models' other layers. The upload source is left alone."""
        await self.timed(pages[0].title, self.session.switch_page(pages[0].url_path))
        models = self.sidebar(MODEL_LABEL).options[:model_count]
        default_model, default_source = self.shown(MODEL_LABEL), self.source_shown()  # visited with the defaults
        others = [m for m in models if m != default_model]
        default_layers = self.sidebar(LAYER_LABEL).options
        self.plan(len(default_layers) - 1 + 2 + len(others), len(others))  # the synthetic sets: at least 2
        if self.cap == 0:
            return
        await self.layers(default_model, default_layers, pages, skip=default_source)
        await self.synthetic(pages)
        layers = {}
        for model in others:  # each at its default layer, learning its layers
            await self.choose(MODEL_LABEL, model)
            layers[model] = self.sidebar(LAYER_LABEL).options
            self.plan(len(layers[model]) - 1, -1)
            await self.visit(self.source_shown(), pages)
        for model in others:
            await self.choose(MODEL_LABEL, model)
            await self.layers(model, layers[model], pages, skip=self.source_shown())

    def shown(self, label: str) -> str:
        """The value of the sidebar's ``label`` control now."""
        return state_value(self.session.widget_state(self.sidebar(label)))

    def source_shown(self) -> str:
        """The model source the sidebar shows now, as 'model/layer'."""
        return f"{self.shown(MODEL_LABEL)}/{self.shown(LAYER_LABEL)}"

    async def layers(self, model: str, layers: list[str], pages: list[PageInfo], skip: str | None = None) -> None:
        """Each of ``model``'s layers (but ``skip``, visited already) set in turn and visited."""
        for layer in layers:
            if f"{model}/{layer}" == skip:
                continue
            await self.choose(LAYER_LABEL, layer)
            await self.visit(f"{model}/{layer}", pages)

    async def synthetic(self, pages: list[PageInfo]) -> None:
        """Each synthetic set with its defaults, visited, then the sample models again."""
        await self.choose(SOURCE_LABEL, SYNTHETIC_OPTION)
        sets = self.sidebar(SET_LABEL).options
        self.plan(len(sets) - 2, 0)
        for name in sets:
            await self.choose(SET_LABEL, name)
            await self.visit(f"{SYNTHETIC_OPTION}/{name}", pages)
        await self.choose(SOURCE_LABEL, MODEL_OPTION)


async def warm(url: str, seconds: float, limit: int, only: list[str] | None = None, models: int | None = None,
               sources: int | None = SOURCES_KEPT, timeout: float = 300.0) -> Progress:
    """Warm the server at ``url`` (its pages ``only``, if given; the first ``models`` sample
    models, if given; at most ``sources`` sources, None: all) for at most ``seconds``; returns what it did."""
    warmer = Warmer(url, seconds, limit, sources, timeout)
    progress = warmer.progress
    try:
        await warmer.timed("first load", warmer.session.open())
        pages = [p for p in PAGES if p.url_path in warmer.session.pages  # a baseline checkout may serve fewer
                 and (only is None or p.url_path in only)]
        steps = [("pages' defaults", lambda: warmer.page_defaults(pages)),
                 ("pages' choices", lambda: warmer.page_choices(pages))]
        source_pages = [p for p in pages if p.uses_source]
        if source_pages:
            steps.append(("sidebar sources", lambda: warmer.sources(source_pages, models)))
        else:
            progress.sources_planned = 0
        for name, step in steps:
            since, reruns = time.monotonic(), progress.reruns
            try:
                await step()
            except SourcesDone:  # as many sources as the caches keep: the plan is done
                pass
            finally:  # a phase cut short is reported too: what it did before the limit
                warmer.phase(name, reruns, since)
        progress.complete = True
    except OutOfTime:
        pass
    finally:
        await warmer.session.close()
        progress.seconds = time.monotonic() - warmer.started
    progress.slowest = sorted(progress.slowest, reverse=True)[:8]
    return progress


def summary(url: str, progress: Progress, seconds: float) -> str:
    """The warm-up's last line: what it did, and whether that was everything."""
    did = f"warmed {url}: {progress.pages} pages, {progress.reruns} reruns in {progress.seconds:.0f} s"
    if progress.complete:
        return f"{did}, complete"
    return f"{did}, stopped at the {seconds:g} s limit with {', '.join(_left(progress))} left"


def _left(progress: Progress) -> list[str]:
    """What the warm-up had not done, part by part (a part it never reached: by name)."""
    unseen = f" (and the other layers of {progress.models_unseen} models)" if progress.models_unseen else ""
    parts = [(progress.pages_left, "pages' defaults", "the pages' defaults"),
             (progress.controls_left, "page controls", "the pages' controls"),
             (progress.sources_left, "sources" + unseen, "the sidebar sources")]
    return [never if left is None else f"{left} {name}" for left, name, never in parts if left != 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ws_load.warm", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server (one replica's own port, not the proxy)")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long (default 600)")
    parser.add_argument("--options", type=int, default=12,
                        help=f"values spread over a slider of more than {FULL_SLIDER} values (default 12)")
    parser.add_argument("--pages", help="only these pages (url paths, comma-separated; the default page: '')")
    parser.add_argument("--models", type=int, help="only the first MODELS sample models of the sidebar's list")
    parser.add_argument("--sources", type=int, default=SOURCES_KEPT,
                        help=f"visit at most this many sidebar sources, the default one included (default "
                             f"{SOURCES_KEPT}: what the source pages' caches keep; 0: every one)")
    args = parser.parse_args(argv)
    only = None if args.pages is None else args.pages.split(",")
    progress = asyncio.run(warm(args.url.rstrip("/"), args.seconds, args.options, only, args.models,
                                args.sources or None))
    for error in progress.errors:
        print(f"error: {error}", file=sys.stderr, flush=True)
    for name, reruns, seconds in progress.phases:
        print(f"{name}: {reruns} reruns in {seconds:.0f} s")
    print("slowest: " + "; ".join(f"{what} {s:.1f} s" for s, what in progress.slowest[:4]))
    print(summary(args.url, progress, args.seconds))
    return 1 if progress.errors else 0


if __name__ == "__main__":
    sys.exit(main())
