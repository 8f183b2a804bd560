"""One browser session of the load test: a Chromium context (its own Streamlit session) and the
plumbing its moves share: timing an input until the app is idle again, recording the move, checking
the page for problems (with a screenshot), notes, full page loads and sidebar navigation.
``moves.SessionDriver`` adds the random moves and the loop until the deadline."""
from __future__ import annotations

import random
import time
from pathlib import Path

from .app_pages import BASE_PATH_PROBE, DEEP_LINKS, EXPECTED_ERROR_ALERTS, PAGES
from .page_scripts import CLICK_OBSTACLE, PROBLEMS, STATE_RECORDER, WAIT_IDLE
from .results import Move, Problem, Results, without_incident_reference

VIEWPORT = {"width": 1024, "height": 768}  # smaller viewports cost the (software-rendering) browsers less


class BrowserSession:
    """One browser context = one Streamlit session: opening it, timed inputs, checks, navigation."""

    def __init__(self, index: int, browser, url: str, rng: random.Random, results: Results, shots: Path,
                 timeout_s: float):
        self.index, self.browser, self.url, self.rng = index, browser, url, rng
        self.results, self.shots, self.timeout_ms = results, shots, timeout_s * 1000
        self.page = None
        self.current = None  # url path of the page shown
        self.console: list[str] = []
        self.shown_problems: set[str] = set()
        self.action = "open"

    # -- plumbing
    async def open(self) -> None:
        self.context = await self.browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(min(self.timeout_ms, 60_000))
        await self.context.add_init_script(STATE_RECORDER)
        await self._new_page()

    async def _new_page(self) -> None:
        self.page = await self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))
        self.page.on("crash", lambda _page: self.console.append("page crashed"))

    def _on_console(self, message) -> None:
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and (
                not where.startswith(self.url) or BASE_PATH_PROBE.match(where)):
            return
        self.console.append(f"console error: {message.text[:400]}" + (f" ({where})" if where else ""))

    async def close(self) -> None:
        try:
            await self.context.close()
        except Exception:  # noqa: BLE001 - closing at the end must not hide the results
            pass

    async def _now(self) -> float:
        return await self.page.evaluate("performance.now()")

    async def _wait_idle(self, t0: float, mode: str = "rerun", expect_change: bool = True) -> dict:
        start_ms = 45_000 if expect_change else 1_500  # a loaded server may take long to start the run
        result = await self.page.evaluate(WAIT_IDLE, [t0, mode, start_ms, 300, self.timeout_ms])
        if expect_change and mode == "rerun" and result["done"] and not result["ran"]:
            log = await self.page.evaluate("(t0) => window.__lt.log.filter(e => e[0] >= t0 - 1000)", t0)
            self.note(f"{self.action}: no script run within {start_ms / 1000:.0f} s of the input "
                      f"(url {self.page.url}, page {self.current!r}, state log {log})")
        return result

    async def diagnose(self, locator, what: str, error: Exception) -> None:
        """A note and a screenshot on what stood in the way of a click."""
        shot = self.shots / f"s{self.index:02d}_note_{int(time.time())}.png"
        try:
            state = await locator.first.evaluate(CLICK_OBSTACLE)
            await self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception as why:  # noqa: BLE001
            state = f"(could not look: {type(why).__name__}: {str(why).splitlines()[0][:200]})"
        self.note(f"{what}: {str(error).splitlines()[0][:200]}; {state}; screenshot {shot}")

    def note(self, text: str) -> None:
        """A line in driver_notes.log: what the driver saw that is neither a timing nor an error."""
        with (self.shots.parent / "driver_notes.log").open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} s{self.index} {PAGES.get(self.current, '?')}: {text}\n")

    async def _timed(self, action: str, do, expect_change: bool = True, page: str | None = None) -> dict | None:
        """Run the input ``do``, wait until the app is idle, record the move and check for problems."""
        self.action = action
        t0 = await self._now()
        try:
            await do()
        except Exception as error:  # noqa: BLE001 - a busy renderer can acknowledge an input very late
            ran = await self.page.evaluate(
                "(t0) => window.__lt.log.some(e => e[0] >= t0 && (e[1] === 'started' || e[1] === 'finished'))", t0)
            if not ran:
                raise
            self.note(f"{action}: the input reached the app, but the call did not return ({type(error).__name__})")
        result = await self._wait_idle(t0, expect_change=expect_change)
        await self._settle(result, action, page)
        return result

    async def _settle(self, result: dict, action: str, page: str | None = None) -> None:
        page = self.current if page is None else page
        timed = result["ran"] and result["latency"] is not None
        self.results.moves.append(Move(self.index, page, action, result["latency"] / 1000 if timed else None,
                                       result["runs"], time.time(), result["ready"] / 1000 if timed else None,
                                       result["script"] / 1000 if timed and result["script"] else None))
        if not result["done"]:
            await self._problem("stuck", f"not idle after {self.timeout_ms / 1000:.0f} s "
                                         f"(script {result['state']}, connection {result['conn']})")
        if result["drops"]:
            await self._problem("disconnect", f"the connection dropped {result['drops']} time(s) during the move")
        await self._check(result.get("problems"))

    async def _problem(self, kind: str, text: str, where: str | None = None) -> None:
        shot = self.shots / f"s{self.index:02d}_{len(self.results.problems):03d}_{kind.replace(' ', '_')}.png"
        try:
            if where:
                await self.page.locator(where).first.scroll_into_view_if_needed(timeout=5_000)
            await self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception:  # noqa: BLE001 - a crashed page cannot be photographed
            shot = None
        self.results.problems.append(Problem(self.index, PAGES.get(self.current, self.current or "?"),
                                             self.action, kind, text, str(shot) if shot else None))

    async def _check(self, found: dict | None = None) -> None:
        """Exception boxes, unexpected error alerts, lost connection, console and JS errors (in
        ``found``, the snapshot the idle wait returns, or looked up now)."""
        found = found or await self.page.evaluate(PROBLEMS)
        found["exceptions"] = [without_incident_reference(t) for t in found["exceptions"]]
        found["errors"] = [without_incident_reference(t) for t in found["errors"]]
        now_shown = set()
        for text in found["exceptions"]:
            now_shown.add("x" + text)
            if "x" + text not in self.shown_problems:
                await self._problem("exception", text, "[data-testid='stException']")
        for text in found["errors"]:
            now_shown.add("e" + text)
            if "e" + text in self.shown_problems:
                continue
            expected = next((name for name, pattern in EXPECTED_ERROR_ALERTS.items() if pattern.search(text)), None)
            if expected:
                self.results.expected_alerts[expected] += 1
            else:
                await self._problem("error alert", text, "[data-testid='stAlertContentError']")
        self.shown_problems = now_shown
        if found["conn"] != "CONNECTED":
            await self._problem("disconnect", f"connection state {found['conn']}")
        while self.console:
            await self._problem("console", self.console.pop(0))

    # -- navigation
    async def load(self, path: str, query: str = "", action: str = "deep link") -> None:
        """A full page load (a new Streamlit session), timed from navigation start."""
        self.action, self.current = action, path
        await self.page.goto(f"{self.url}/{path}{query}", wait_until="domcontentloaded", timeout=self.timeout_ms)
        result = await self.page.evaluate(WAIT_IDLE, [0, "load", 0, 300, self.timeout_ms])
        self.shown_problems = set()
        await self._settle(result, action)
        self.results.pages_visited[self.index].add(path)

    def _shown_path(self) -> str:
        return self.page.url.split("?")[0].removeprefix(self.url).strip("/")

    async def navigate(self, path: str) -> None:
        if path == self.current:
            return
        if self.rng.random() < 0.15:
            links = DEEP_LINKS.get(path) or [""]
            await self.load(path, self.rng.choice(links))
            return
        link = self.page.locator(f"[data-testid='stSidebarNavLink'][href='{self.url}/{path}']")

        async def click() -> None:
            try:
                await link.click(timeout=30_000)
            except Exception as error:  # noqa: BLE001 - on a busy renderer the click can return late
                if self._shown_path() != path:
                    raise
                self.note(f"navigate to {path!r}: the page switched, but the click did not return "
                          f"({type(error).__name__})")

        for attempt in range(2):
            previous, self.current = self.current, path
            try:
                await self._timed("navigate", click, page=path)
            except Exception:
                self.current = previous
                raise
            shown = self._shown_path()
            if shown == path:
                self.results.pages_visited[self.index].add(path)
                return
            self.note(f"navigate to {path!r} (try {attempt + 1}): the browser still shows {self.page.url}")
            self.current = shown if shown in PAGES else previous
        raise RuntimeError(f"the sidebar link to {path!r} did not switch the page")
