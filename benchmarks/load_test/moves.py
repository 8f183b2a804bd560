"""The moves of the load test's sessions: each session (``SessionDriver``) takes the pages in a
random order, then random pages, and on each page makes random moves: a slider by keyboard, a radio,
a selectbox by arrow keys, a checkbox, a number input's step buttons, an expander, a sidebar control,
an upload; rarely, and at least once per run, a long job (Compare's intervals and p-values,
Manipulate's training) stopped a moment later. A move the driver cannot make is noted and the
session gets back to a known state."""
from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

from .app_pages import PAGES
from .page_scripts import LISTBOX_OPTIONS, WIDGET_INVENTORY
from .results import Move, Results
from .session import BrowserSession


class SessionDriver(BrowserSession):
    """One browser session moving at random until the deadline (or, with a share of pages, until it
    has visited them)."""

    def __init__(self, index: int, browser, url: str, rng: random.Random, results: Results, deadline: float,
                 files: dict[str, Path], shots: Path, must_do: set[str], moves_per_page: tuple[int, int],
                 timeout_s: float, share: list[str], think_s: float = 0.0):
        super().__init__(index, browser, url, rng, results, shots, timeout_s)
        self.think_s = think_s  # mean pause after each move (a student reading the page); 0: none
        self.deadline, self.files = deadline, files
        self.must_do, self.moves_per_page = set(must_do), moves_per_page
        self.share = share  # pages to visit before stopping, past the deadline if need be (see page_shares)

    # -- moves
    async def move(self) -> None:
        roll = self.rng.random()
        page = self.current
        for job, job_page, start in (("infer", "compare", self.compare_inference),
                                     ("train", "manipulate", self.manipulate_training)):
            if page == job_page and (job in self.must_do or roll < 0.05):
                if not await start() and job in self.must_do:  # the button is off in this state: fresh defaults
                    self.note(f"{job}: the button was not enabled; reloading {job_page} with its defaults")
                    await self.load(job_page, action="deep link")
                    await start()
                self.must_do.discard(job)
                return
        if "upload" in self.must_do or 0.05 <= roll < 0.09:
            self.must_do.discard("upload")
            if page == "compare" and self.rng.random() < 0.4:
                return await self.compare_upload()
            return await self.sidebar_upload()
        if 0.09 <= roll < 0.18:
            return await self.widget_move("[data-testid='stSidebar']", "sidebar ")
        await self.widget_move("[data-testid='stMain']", "")

    async def widget_move(self, root: str, prefix: str) -> None:
        inventory = await self.page.evaluate(WIDGET_INVENTORY, root)
        if not prefix:  # expanders only in the main area, and rarely
            inventory = [w for w in inventory if w[0] != "expander" or self.rng.random() < 0.15]
        if not inventory:
            return
        kind, i, info = self.rng.choice(inventory)
        widget = self.page.locator(root).get_by_test_id(
            {"slider": "stSlider", "radio": "stRadio", "selectbox": "stSelectbox", "checkbox": "stCheckbox",
             "number": "stNumberInput", "expander": "stExpander"}[kind]).nth(i)
        if kind == "slider":
            await self.slider_move(widget, info, prefix)
        elif kind == "radio":
            option = widget.get_by_test_id("stRadioOption").nth(self.rng.choice(info["options"]))
            await self._timed(prefix + "radio", lambda: option.click())
        elif kind == "selectbox":
            await self.selectbox_move(widget, prefix)
        elif kind == "checkbox":
            await self._timed(prefix + "checkbox", lambda: widget.locator("label").first.click())
        elif kind == "number":
            button = widget.get_by_test_id(f"stNumberInput{self.rng.choice(info['dirs'])}")
            await self._timed(prefix + "number input", lambda: button.click())
        else:  # open or close an expander: no rerun, not timed
            self.action = "expander"
            self.results.expanders += 1
            await widget.locator("summary").click()
            await self.page.wait_for_timeout(200)
            await self._check()

    async def slider_move(self, widget, info: dict, prefix: str) -> None:
        thumb = widget.locator("input[type='range']").nth(info["thumb"])
        up = ["ArrowRight", "ArrowRight", "PageUp", "End"] if info["value"] < info["max"] else []
        down = ["ArrowLeft", "ArrowLeft", "PageDown", "Home"] if info["value"] > info["min"] else []
        if not up + down:
            return
        key = self.rng.choice(up + down)
        presses = self.rng.randint(1, 3) if key.startswith("Arrow") else 1

        async def press():
            await thumb.focus()
            for _ in range(presses):
                await thumb.press(key)

        self.action = prefix + "slider"
        t0 = await self._now()
        await press()
        changed = float(await thumb.input_value()) != info["value"]
        result = await self._wait_idle(t0, expect_change=changed)
        await self._settle(result, prefix + "slider")

    async def selectbox_move(self, widget, prefix: str) -> None:
        """Open the list, walk to another option with the arrow keys, Enter. (Clicking an option
        can wait a long time for the popover to be 'stable' on a busy renderer; keys cannot.)"""
        self.action = prefix + "selectbox"
        box = widget.locator("input[role='combobox']")
        before = await box.input_value()
        for way in ("ArrowDown", "click", "button"):  # a click opens it only some of the time
            if way == "ArrowDown":
                await box.focus()
                await box.press("ArrowDown")
            elif way == "click":
                await box.click()
            else:
                await widget.locator("button[aria-label='Open']").click()
            for _ in range(25):
                if await box.get_attribute("aria-expanded") == "true":
                    break
                await asyncio.sleep(0.2)
            else:
                continue
            if way != "ArrowDown":
                self.note(f"{self.action} {before!r}: opened by {way} after ArrowDown did not open it")
            break
        else:
            raise RuntimeError("the selectbox did not open")
        options = await box.evaluate(LISTBOX_OPTIONS)
        others = [i for i, (selected, _) in enumerate(options) if not selected]
        if not others:
            await box.press("Escape")
            return
        selected = next((i for i, (s, _) in enumerate(options) if s), 0)
        focused = next((i for i, (_, f) in enumerate(options) if f), selected)
        target = self.rng.choice(others)
        key = "ArrowDown" if target > focused else "ArrowUp"
        for _ in range(abs(target - focused)):
            await box.press(key)
        t0 = await self._now()
        await box.press("Enter")
        changed = await box.input_value() != before
        result = await self._wait_idle(t0, expect_change=changed)
        await self._settle(result, prefix + "selectbox")

    async def sidebar_upload(self) -> None:
        sidebar = self.page.get_by_test_id("stSidebar")
        choice = sidebar.get_by_test_id("stRadioOption").filter(has_text="Uploaded file")
        folded = sidebar.get_by_test_id("stExpander").filter(has_text="not used on this page")
        if await folded.count() and not await choice.is_visible():  # pages that ignore it fold the panel away
            await folded.locator("summary").click()
        if await choice.get_attribute("data-selected") != "true":
            await self._timed("sidebar source", lambda: choice.click())
        name = self.rng.choice(["npz", "npy", "csv"])
        field_ = sidebar.get_by_test_id("stFileUploaderDropzoneInput")
        await field_.wait_for(state="attached", timeout=30_000)
        await self._timed(f"upload .{name}", lambda: field_.set_input_files(str(self.files[name])))
        self.results.jobs[f"sidebar upload .{name}"] += 1

    async def compare_upload(self) -> None:
        side = self.rng.randrange(2)
        radio = self.page.get_by_test_id("stMain").get_by_test_id("stRadio").filter(has_text="Upload files").nth(side)
        choice = radio.get_by_test_id("stRadioOption").filter(has_text="Upload files")
        if await choice.get_attribute("data-selected") != "true":
            await self._timed("radio", lambda: choice.click())
        uploader = self.page.get_by_test_id("stMain").get_by_test_id("stFileUploader").filter(
            has_text="Representation files")
        # the uploaders of the sides that are in upload mode, in order; pick the one of this side
        count = await uploader.count()
        if not count:
            return
        target = uploader.nth(min(side, count - 1)).get_by_test_id("stFileUploaderDropzoneInput")
        path = self.files["side_a" if side == 0 else "side_b"]
        await self._timed("upload .npz (Compare)", lambda: target.set_input_files(str(path)))
        self.results.jobs["compare upload .npz"] += 1

    async def compare_inference(self) -> bool:
        """Start the intervals and p-values, then Stop a moment later (False: the button is not there).
        Mostly with 2000 bootstrap resamples first (as tests/e2e/test_compare.py does), so that
        the Stop lands while the job runs."""
        run = self.page.get_by_role("button", name="Compute intervals and p-values")
        if not await run.count() or not await run.is_enabled():
            return False
        box = self.page.get_by_role("spinbutton", name="Bootstrap resamples")
        if self.rng.random() < 0.7:
            if not await box.is_visible():
                self.action = "expander"
                self.results.expanders += 1
                await self.page.get_by_text("Settings: bootstrap resamples").click()
                await box.wait_for(state="visible")
            if await box.input_value() != "2000":
                await box.fill("2000")
                await self._timed("number input", lambda: box.press("Enter"))
        self.action = "inference start"
        t0 = await self._now()
        await run.click()
        stop = self.page.get_by_role("button", name="Stop computing")
        try:
            await stop.wait_for(state="visible", timeout=self.timeout_ms)
        except Exception:  # noqa: BLE001 - it may have finished (a stored result) before the check
            result = await self._wait_idle(t0)
            await self._settle(result, "inference start")
            self.results.jobs["inference finished before Stop"] += 1
            return True
        await self.page.wait_for_timeout(self.rng.randint(300, 2000))
        self.action = "inference stop"
        t1 = await self._now()
        clicked = True
        try:
            await stop.click(timeout=self.timeout_ms / 2)
        except Exception as error:  # noqa: BLE001 - fine if it finished meanwhile; a problem if it still runs
            clicked = False
            if await stop.count() and await stop.is_visible():
                await self._problem("stop", f"inference: Stop computing could not be clicked ({type(error).__name__})")
        result = await self._wait_idle(t1, expect_change=clicked)
        await self._settle(result, "inference stop")
        stopped = await self.page.get_by_text("nothing was stored").count()
        finished = await self.page.get_by_test_id("stMetric").filter(has_text="Cells beyond chance").count()
        if stopped:
            self.results.jobs["inference stopped"] += 1
        elif finished:
            self.results.jobs["inference finished before Stop"] += 1
        else:
            await self._problem("stop", "after Stop: neither the 'nothing was stored' note nor a result")
        return True

    async def manipulate_training(self) -> bool:
        """Train, then Stop a few seconds later; the best network so far must be kept, or, stopped while it waited
        for the server's worker, the page must say there is none (False: Train is off)."""
        main = self.page.get_by_test_id("stMainBlockContainer")
        train = main.get_by_role("button", name="Train")
        if not await train.count() or not await train.is_enabled():
            return False
        self.action = "training start"
        t0 = await self._now()
        await train.click()
        # the progress bar, or the caption of a job waiting in line for the server's worker
        started = self.page.locator("[data-testid='stProgress'], [data-testid='stCaptionContainer']",
                                    has_text=re.compile(r"epoch \d+ of \d+|Waiting for the server's worker"))
        try:
            await started.first.wait_for(state="visible", timeout=self.timeout_ms)
        except Exception:  # noqa: BLE001
            await self._problem("train", f"Train was clicked, but no training started within "
                                         f"{self.timeout_ms / 1000:.0f} s")
            return True
        latency = (await self._now() - t0) / 1000
        self.results.moves.append(Move(self.index, self.current, "training start", latency, 1, time.time(), latency))
        await self.page.wait_for_timeout(self.rng.randint(2000, 5000))
        self.action = "training stop"
        stop = main.get_by_role("button", name="Stop")
        # the result, or (Stop while the job waited in line for the server's worker) the note that there was none
        outcome = self.page.get_by_text(re.compile(r"(stopped early|finished) after \d+ of \d+ epochs|"
                                                   r"Stopped before the first epoch"))
        t1 = await self._now()
        clicked = True
        try:
            await stop.click(timeout=self.timeout_ms / 2)
        except Exception as error:  # noqa: BLE001 - fine if the run has finished; a problem if it still trains
            clicked = False
            await self.diagnose(stop, "training Stop could not be clicked", error)
            if not await outcome.count():
                await self._problem("stop", f"training: the Stop button could not be clicked ({type(error).__name__})")
        try:
            await outcome.first.wait_for(state="visible", timeout=self.timeout_ms)
        except Exception:  # noqa: BLE001
            await self._problem("stop", "training: no result shown after Stop")
        result = await self._wait_idle(t1, expect_change=clicked)
        await self._settle(result, "training stop")
        text = await outcome.first.inner_text() if await outcome.count() else ""
        self.results.jobs["training stopped" if "stopped early" in text else "training stopped in line"
                          if "before the first epoch" in text else "training finished before Stop"] += 1
        return True

    # -- the loop
    async def run(self, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)  # visitors arrive one after another, not in the same instant
        await self.open()
        await self.load("", action="open")
        first_pass = list(self.share or PAGES)
        self.rng.shuffle(first_pass)
        for job, page in (("infer", "compare"), ("train", "manipulate")):  # the page of a must-do job first
            if job in self.must_do:
                if page in first_pass:
                    first_pass.remove(page)
                first_pass.append(page)
        tries: dict[str, int] = {}
        while True:
            over = time.time() >= self.deadline
            if over and (not self.share or not first_pass):
                break
            if first_pass:
                target = first_pass.pop()
            else:
                target = self.rng.choice([p for p in PAGES if p != self.current])
            try:
                await self.navigate(target)
                low, high = self.moves_per_page
                for _ in range(self.rng.randint(low, high)):
                    if time.time() >= self.deadline and not self.share and not (
                            self.must_do and target in ("compare", "manipulate")):
                        break
                    await self.move()
                    if self.think_s:
                        await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.think_s)
            except Exception as error:  # noqa: BLE001 - a driver mishap: note it, get back to a known state
                await self._recover(error, target)
                tries[target] = tries.get(target, 0) + 1
                if self.share and target not in self.results.pages_visited[self.index] and tries[target] < 3:
                    first_pass.insert(0, target)  # visit it again later

    async def _recover(self, error: Exception, target: str) -> None:
        message = str(error).splitlines()[0][:200] if str(error) else ""
        self.results.driver_skips.append(f"s{self.index} {PAGES.get(self.current, '?')} / {self.action}: "
                                         f"{type(error).__name__}: {message}")
        shot = self.shots / f"s{self.index:02d}_mishap_{len(self.results.driver_skips):03d}.png"
        try:
            await self.page.screenshot(path=str(shot), timeout=30_000)
        except Exception:  # noqa: BLE001
            shot = None
        with (self.shots.parent / "driver_mishaps.log").open("a") as log:
            log.write(f"--- s{self.index} {PAGES.get(self.current, '?')} / {self.action} (screenshot {shot})\n"
                      f"{error}\n")
        if self.page.is_closed():
            await self._problem("crash", f"the page closed: {message}")
            await self._new_page()
        try:
            await self.page.keyboard.press("Escape")
            await self._wait_idle(await self._now(), expect_change=False)
            await self._check()
            return
        except Exception:  # noqa: BLE001 - start this page afresh
            pass
        try:
            await self.load(target, action="reload after driver error")
        except Exception as again:  # noqa: BLE001
            await self._problem("reload failed", f"{type(again).__name__}: {str(again).splitlines()[0][:200]}")
