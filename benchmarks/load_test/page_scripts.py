"""The JavaScript the load test runs in the app's pages, one ``.js`` file per script next to this
module, read once at import. Each file starts with ``//`` lines that say what it does; the text
sent to the page is the code after them (a script or a function, which Playwright calls with its
argument)."""
from __future__ import annotations

from pathlib import Path


def _script(name: str) -> str:
    lines = Path(__file__).with_name(name).read_text().splitlines()
    while lines and lines[0].startswith("//"):
        lines.pop(0)
    return "\n".join(lines) + "\n"


#: Runs in every page before the app's own scripts: window.__lt.log records the script and connection
#: state and the server's run-started / run-finished messages.
STATE_RECORDER = _script("state_recorder.js")
#: () => exception boxes, error alerts, script and connection state.
PROBLEMS = _script("problems.js")
#: ([t0, mode, startMs, quietMs, timeoutMs]) => resolves once the app is idle after t0, with the timings
#: and PROBLEMS' findings.
WAIT_IDLE = _script("wait_idle.js").replace("__PROBLEMS__", PROBLEMS.strip())
#: (root selector) => the visible, enabled widgets under it: [kind, index among its kind, extra].
WIDGET_INVENTORY = _script("widget_inventory.js")
#: (element) => what stands in the way of a click on it.
CLICK_OBSTACLE = _script("click_obstacle.js")
#: (combobox input) => [selected, focused] for each option of its open list.
LISTBOX_OPTIONS = _script("listbox_options.js")
