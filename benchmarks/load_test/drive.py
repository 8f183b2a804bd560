"""The browsers of the load test: one headless Chromium, a warm-up session that loads every page,
then the concurrent sessions (``SessionDriver``), each with its share of the pages, until the
deadline."""
from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from .app_pages import PAGES
from .moves import SessionDriver
from .page_scripts import STATE_RECORDER, WAIT_IDLE
from .resource_usage import Sampler, descendants, processes, renice_children
from .results import Problem, Results
from .session import VIEWPORT
from .upload_files import make_upload_files

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


async def _warm_up(browser, url: str, timeout_s: float) -> None:
    """One session loads every page: first captures and shared caches are not the load test's."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await context.add_init_script(STATE_RECORDER)
    for path in PAGES:
        await page.goto(f"{url}/{path}", wait_until="domcontentloaded", timeout=timeout_s * 1000)
        await page.evaluate(WAIT_IDLE, [0, "load", 0, 300, timeout_s * 1000])
    await context.close()


def page_shares(sessions: int, pages_each: int) -> list[list[str]]:
    """The pages each session must visit: ``pages_each`` consecutive pages of the page list per
    session, round robin, so that every page gets the same number of visitors (all pages each when
    ``pages_each`` is the number of pages; none when 0)."""
    order = list(PAGES)
    count = min(pages_each, len(order))
    return [[order[(i * count + j) % len(order)] for j in range(count)] for i in range(sessions)]


async def drive(url: str, sessions: int, seconds: float, seed: int, workdir: Path, sampler: Sampler | None = None,
                moves_per_page: tuple[int, int] = (1, 3), timeout_s: float = 180.0, pages_each: int = 0,
                warm_up: bool = True, nice: int = 0, think_s: float = 0.0) -> Results:
    """Warm up (one session loads every page; skipped with ``warm_up=False``, so the sessions meet
    cold caches), then ``sessions`` concurrent sessions for ``seconds``. Each starts with every page
    (or with its share of ``pages_each`` pages, :func:`page_shares`) in a random order, the page of
    its assigned long job first; with ``pages_each`` it goes on past the deadline until it has
    visited its share, making its moves on each."""
    from playwright.async_api import async_playwright

    results = Results()
    files = make_upload_files(workdir / "uploads", seed)
    shots = workdir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    server_tree = descendants(processes(), sampler.server_pid) if sampler is not None else set()
    async with async_playwright() as playwright:
        if nice:  # the Playwright driver first: the browser it starts inherits its priority
            renice_children(nice, server_tree)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if nice:
            renice_children(nice, server_tree)
        started = time.time()
        if warm_up:
            await _warm_up(browser, url, timeout_s)
        results.warmup_seconds = time.time() - started
        if sampler is not None:
            sampler.mark("start")
            sampler.start_cpu()
        results.started = time.time()
        deadline = results.started + seconds
        jobs = ["upload", "infer", "train"]
        shares = page_shares(sessions, pages_each)
        drivers = [SessionDriver(i, browser, url, random.Random(seed * 1000 + i), results, deadline, files, shots,
                                 {jobs[i % len(jobs)]} if i < 2 * len(jobs) else set(), moves_per_page, timeout_s,
                                 shares[i], think_s)
                   for i in range(sessions)]
        outcomes = await asyncio.gather(*(d.run(delay=i * 1.0) for i, d in enumerate(drivers)),
                                        return_exceptions=True)
        results.ended = time.time()
        if sampler is not None:
            sampler.mark("end")
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                results.problems.append(Problem(i, "?", drivers[i].action, "session failed",
                                                f"{type(outcome).__name__}: {outcome}"))
        await asyncio.gather(*(d.close() for d in drivers))
        await browser.close()
    return results
