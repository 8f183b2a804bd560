"""One simulated student: arrives, loads the app (the default page, or another now and then),
tours the pages in a random order and then visits random ones, and on each page makes a few moves
(a random widget, weighted toward the page's own controls, changed to a nearby or default value),
pausing an exponential think time between actions; now and then it uploads a small file through
the sidebar's "Uploaded file" source. It stops starting actions at the deadline. Every request is
recorded with its latency; exceptions and unexpected error alerts on the page, page-not-found and
compile errors, failed uploads, timeouts and lost connections are recorded too. After a lost
connection it reconnects to its session as the frontend does (rerunning when a run was in flight)."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from benchmarks.load_test.app_pages import EXPECTED_ERROR_ALERTS
from benchmarks.load_test.results import without_incident_reference
from ui.frame.navigation import PAGES

from .records import Move, Problem, Results
from .session import SOCKET_ERRORS, RunResult, StreamlitSession
from .widgets import Widget, state_value

#: The sidebar's source chooser and its upload option (ui/sources/sidebar.py: the "Source" radio,
#: KINDS["upload"], and the file uploader it shows; tests/benchmarks/test_ws_load.py checks them).
SOURCE_LABEL, UPLOAD_OPTION, UPLOADER_LABEL = "Source", "Uploaded file", "Representation file"

#: How often a student reaches for each kind of widget (buttons: ``Behaviour.buttons``).
KIND_WEIGHTS = {"slider": 3.0, "select_slider": 3.0, "selectbox": 2.0, "radio": 2.0, "number_input": 1.0,
                "checkbox": 1.0, "toggle": 1.0, "multiselect": 1.0, "segmented_control": 1.0, "pills": 1.0,
                "data_editor": 0.5}
#: The shared sidebar's widgets (drawn by the main script) weigh this much less than the page's own.
SIDEBAR_SHARE = 0.3
#: Chance that a student starts on another page than the default one (a link a classmate shared).
DEEP_START = 0.3


class _Gone(Exception):
    """The student lost its connection for good."""


@dataclass
class Behaviour:
    """What every student does, and how patiently."""

    think: float = 5.0                      # mean seconds between actions (exponential)
    timeout: float = 60.0                   # seconds a request may take before it counts as timed out
    moves_per_page: tuple[int, int] = (1, 4)
    uploads: float = 0.05                   # chance that an action is an upload
    buttons: float = 0.2                    # weight of a button press among the widget moves


class Student:
    """One simulated student until ``deadline`` (epoch seconds)."""

    def __init__(self, index: int, url: str, rng: random.Random, behaviour: Behaviour, results: Results,
                 deadline: float, files: dict[str, bytes], pages: list[str] | None = None) -> None:
        """A student that has not arrived yet; ``pages``: the url paths the server serves (a link may open
        any of them; default: this checkout's pages)."""
        self.index, self.url, self.rng, self.behaviour = index, url, rng, behaviour
        self.pages = [p.url_path for p in PAGES] if pages is None else pages
        self.results, self.deadline, self.files = results, deadline, files
        self.session = StreamlitSession(url, behaviour.timeout)
        self.tour: list[str] = []
        self.moves_left = 0

    async def run(self, delay: float) -> None:
        """Arrive after ``delay`` s, then act until the deadline."""
        await asyncio.sleep(delay)
        seen = self.results.pages_seen.setdefault(self.index, set())
        try:
            start = "" if self.rng.random() >= DEEP_START else self.rng.choice(self.pages)
            try:
                result = await self._timed("load", start, start, lambda: self.session.open(start))
            except SOCKET_ERRORS as error:
                self._problem("load", "connection", f"could not open the app: {type(error).__name__}: {error}")
                self.results.failed_students += 1
                return
            seen.add(self.session.page)
            self._check(result, "load")
            self.tour = [p for p in self.session.pages if p != self.session.page]
            self.rng.shuffle(self.tour)
            self.moves_left = self.rng.randint(*self.behaviour.moves_per_page)
            while await self._think():
                await self._reconnect(rerun=False)  # the server closed the socket while the student read
                await self._act()
                await self._reconnect(rerun=True)   # the request's run was cut short
                seen.add(self.session.page)
        except _Gone:
            self.results.failed_students += 1
        finally:
            await self.session.close()
            self.results.messages.update(self.session.messages)
            self.results.cache_hits += self.session.cache.hits
            self.results.bytes_received += self.session.bytes_received
            self.results.lost_sessions += self.session.session_changes

    async def _think(self) -> bool:
        """Pause for a think time (exponential, mean ``behaviour.think``); False at the deadline."""
        left = self.deadline - time.time()
        if left <= 0:
            return False
        pause = self.rng.expovariate(1 / self.behaviour.think) if self.behaviour.think > 0 else 0.0
        await asyncio.sleep(min(pause, left))
        return time.time() < self.deadline

    # -- actions
    async def _act(self) -> None:
        """One action: a page switch when the page's moves are used up, else an upload or a move."""
        movable = [w for w in self.session.tree.widgets() if w.movable and self._weight(w) > 0]
        if self.moves_left <= 0 or not movable:
            await self._switch()
        elif self.files and self.rng.random() < self.behaviour.uploads:
            await self._upload()
        else:
            await self._move(movable)

    def _weight(self, widget: Widget) -> float:
        """How likely a student is to reach for this widget."""
        weight = self.behaviour.buttons if widget.kind == "button" else KIND_WEIGHTS.get(widget.kind, 0.0)
        return weight * (SIDEBAR_SHARE if widget.script_hash == self.session.main_hash else 1.0)

    async def _switch(self) -> None:
        """To the next page of the tour, or once it is done, to a random other page."""
        here = self.session.page
        others = [p for p in self.session.pages if p != here]
        if not others:
            return
        while self.tour and self.tour[0] not in others:
            self.tour.pop(0)
        target = self.tour.pop(0) if self.tour else self.rng.choice(others)
        result = await self._timed("switch", target, target, lambda: self.session.switch_page(target))
        self.moves_left = self.rng.randint(*self.behaviour.moves_per_page)
        self._check(result, "switch")

    async def _move(self, movable: list[Widget]) -> None:
        """Change one widget (chosen by weight) to another valid value and rerun."""
        widget = self.rng.choices(movable, weights=[self._weight(w) for w in movable])[0]
        self.moves_left -= 1
        state = widget.change(self.session.widget_state(widget), self.rng)
        if state is None:
            return
        result = await self._timed(widget.kind, self.session.page, widget.label,
                                   lambda: self.session.change(widget, state), fragment=bool(widget.fragment_id),
                                   value=repr(state_value(state))[:80])
        self._check(result, widget.kind)

    def _find(self, kind: str, label: str) -> Widget | None:
        """The widget of this kind and label on the page, if any."""
        return next((w for w in self.session.tree.widgets() if w.kind == kind and w.label == label), None)

    async def _upload(self) -> None:
        """Choose the sidebar's "Uploaded file" source (if it is not chosen yet), then upload one
        of the sample files through its file uploader."""
        source = self._find("radio", SOURCE_LABEL)
        if source is None or source.disabled:
            return
        if state_value(self.session.widget_state(source)) != UPLOAD_OPTION:
            state = source.default_state()
            state.string_value = UPLOAD_OPTION
            result = await self._timed("radio", self.session.page, source.label,
                                       lambda: self.session.change(source, state), value=repr(UPLOAD_OPTION))
            self._check(result, "radio")
        uploader = self._find("file_uploader", UPLOADER_LABEL)
        if uploader is None:
            if self.session.connected:
                self._problem("upload", "upload", f"no {UPLOADER_LABEL!r} uploader after choosing {UPLOAD_OPTION!r}")
            return
        name = self.rng.choice(sorted(self.files))
        at, page = time.time(), self.session.page
        result, put_seconds, failure = await self.session.upload(uploader, name, self.files[name])
        self._record("upload", page, name, at, result, upload_put=put_seconds)
        if failure:
            self._problem("upload", "upload", failure)
        self._check(result, "upload")

    # -- bookkeeping
    async def _timed(self, action: str, page: str, target: str, request, fragment: bool = False,
                     value: str = "") -> RunResult:
        """Make a request and record it."""
        at = time.time()
        result = await request()
        self._record(action, page, target, at, result, fragment=fragment, value=value)
        return result

    def _record(self, action: str, page: str, target: str, at: float, result: RunResult, fragment: bool = False,
                upload_put: float | None = None, value: str = "") -> None:
        """Record one request."""
        self.results.moves.append(Move(self.index, page, action, target, at, result.outcome, result.latency,
                                       result.drawn, result.script, fragment, upload_put, value,
                                       result.job))

    def _problem(self, action: str, kind: str, text: str) -> None:
        """Record one error."""
        self.results.problems.append(Problem(self.index, self.session.page, action, kind, text, time.time()))

    def _check(self, result: RunResult, action: str) -> None:
        """Record what the request showed: new exceptions and error alerts (the app's expected
        ones only counted) and the session's incidents."""
        for kind, text in sorted(result.problems):
            text = without_incident_reference(text)
            expected = next((name for name, pattern in EXPECTED_ERROR_ALERTS.items() if pattern.search(text)), None)
            if kind == "error" and expected:
                self.results.expected_alerts[expected] += 1
            else:
                self._problem(action, "exception" if kind == "exception" else "error alert", text)
        while self.session.incidents:
            kind, text = self.session.incidents.pop(0)
            self._problem(action, kind, text)

    async def _reconnect(self, rerun: bool) -> None:
        """When the socket is closed: reconnect (counted as a disconnect) and, with ``rerun`` (a
        request was in flight), rerun the page with every widget state, as the frontend does."""
        if self.session.connected:
            return
        self.results.disconnects += 1
        if not await self.session.reconnect():
            self._problem("reconnect", "connection", "could not reconnect")
            raise _Gone
        if rerun:
            result = await self._timed("reconnect", self.session.page, self.session.page, self.session.rerun)
            self._check(result, "reconnect")
