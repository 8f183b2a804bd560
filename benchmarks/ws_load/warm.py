"""Warm a server before a class arrives: visit every page with its defaults, then every choice a
student can make there one control at a time (each option of a select box, radio or select
slider; a few values of each slider), so that the first student to make a choice does not wait for
its first computation. Every replica keeps its own caches, so each is warmed on its own port.

    python -m benchmarks.ws_load.warm http://127.0.0.1:8601 [--seconds 600] [--options 12]

Bounded: at most ``--options`` values per control and ``--seconds`` in all; it reports what it did
and the slowest first computations, and exits non-zero when a page showed an exception.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

from ui.frame.navigation import PAGES

from .session import StreamlitSession
from .widgets import Widget, new_state

#: The kinds of control whose every value is a choice a class makes.
CHOICES = ("selectbox", "radio", "select_slider", "segmented_control", "pills", "slider")


def choices(widget: Widget, limit: int) -> list:
    """The states a student can give ``widget`` other than its default, at most ``limit`` of them
    spread over its range (a slider: its ends and evenly spaced values between)."""
    p = widget.proto
    if widget.kind in ("selectbox", "radio"):
        return [new_state(widget.id, string_value=o) for o in _spread(widget.options, limit)]
    if widget.kind == "select_slider" and len(p.default) == 1:
        return [new_state(widget.id, string_array_value=[o]) for o in _spread(widget.options, limit)]
    if widget.kind in ("segmented_control", "pills"):
        return [new_state(widget.id, string_array_value=[o]) for o in _spread(widget.options, limit)]
    if widget.kind == "slider" and len(p.default) == 1 and p.step > 0:
        count = int(round((p.max - p.min) / p.step)) + 1
        values = [p.min + p.step * k for k in _spread(list(range(count)), limit)]
        return [new_state(widget.id, double_array_value=[v]) for v in values]
    return []


def _spread(values: list, limit: int) -> list:
    """At most ``limit`` of ``values``, evenly spaced, both ends kept."""
    if len(values) <= limit:
        return values
    return [values[round(k * (len(values) - 1) / (limit - 1))] for k in range(limit)]


async def warm(url: str, seconds: float, limit: int, timeout: float = 300.0) -> dict:
    """Warm the server at ``url``; returns what it did: pages, reruns, the slowest reruns, errors."""
    deadline = time.monotonic() + seconds
    session = StreamlitSession(url, timeout)
    slowest: list[tuple[float, str]] = []
    done = {"pages": 0, "reruns": 0, "errors": []}

    async def timed(what: str, request) -> None:
        start = time.monotonic()
        result = await request
        slowest.append((time.monotonic() - start, what))
        done["reruns"] += 1
        done["errors"].extend(f"{what}: {text}" for kind, text in session.tree.problems() if kind == "exception")
        return result

    await timed("first load", session.open())
    pages = [p for p in PAGES if p.url_path in session.pages]  # a baseline checkout may serve fewer
    for page in pages:  # every page's defaults first, then the choices page by page
        await timed(page.title, session.switch_page(page.url_path))
        done["pages"] += 1
    for page in pages:
        if time.monotonic() > deadline:
            break
        await timed(page.title, session.switch_page(page.url_path))
        main = session.main_hash
        for widget in [w for w in session.tree.widgets() if w.kind in CHOICES and w.script_hash != main
                       and w.movable]:
            default = session.widget_state(widget)
            for state in choices(widget, limit):
                if time.monotonic() > deadline:
                    break
                await timed(f"{page.title} · {widget.label} = {_shown(state)}", session.change(widget, state))
            if default is not None and session.widget_state(widget) != default:
                await timed(f"{page.title} · {widget.label} back", session.change(widget, default))
    await session.close()
    done["slowest"] = sorted(slowest, reverse=True)[:8]
    return done


def _shown(state) -> str:
    kind = state.WhichOneof("value")
    value = getattr(state, kind)
    return str(list(value.data) if hasattr(value, "data") else list(value) if kind.endswith("array_value") else value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ws_load.warm", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server (one replica's own port, not the proxy)")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long (default 600)")
    parser.add_argument("--options", type=int, default=12, help="values tried per control (default 12)")
    args = parser.parse_args(argv)
    done = asyncio.run(warm(args.url.rstrip("/"), args.seconds, args.options))
    print(f"warmed {args.url}: {done['pages']} pages, {done['reruns']} reruns; slowest: "
          + "; ".join(f"{what} {s:.1f} s" for s, what in done["slowest"][:4]))
    for error in done["errors"]:
        print(f"error: {error}", file=sys.stderr)
    return 1 if done["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
