"""The load test's report: the markdown text of rerun latencies (per page, per kind of move, at the
server), throughput, errors, the server's memory and the verdict against the targets (0 errors,
steady memory at most 1.5 GB)."""
from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

from .app_pages import PAGES
from .resource_usage import read_proc_file
from .results import Move, Problem, Results, percentile, without_incident_reference

MEMORY_TARGET_BYTES = int(1.5 * 2**30)


@dataclass
class LoadTestReport:
    results: Results
    memory: dict[str, int]
    cpu: dict[str, float]
    log_errors: list[str]
    settings: dict
    log_messages: dict[str, int] = field(default_factory=dict)
    text: str = ""

    @property
    def errors(self) -> int:
        return len(self.results.problems) + len(self.log_errors)

    @property
    def steady_ok(self) -> bool:
        return self.memory["steady"] <= MEMORY_TARGET_BYTES


def _machine() -> str:
    cpuinfo = read_proc_file("/proc/cpuinfo") or ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", read_proc_file("/proc/meminfo") or "", re.M)
    return (f"{os.cpu_count()} CPUs ({model.group(1).strip() if model else 'unknown model'}), "
            f"{int(mem.group(1)) / 2**20:.0f} GiB RAM" if mem else f"{os.cpu_count()} CPUs")


def _server_runs_section(runs: dict, duration: float, s: dict) -> list[str]:
    """The server's own view of its script runs (only when the app logged them)."""
    if not runs.get("runs"):
        return []
    pinned = (f"The server ran on core(s) {s['server_cpus']}, the browsers and the driver on {s['client_cpus']}. "
              if s.get("server_cpus") else "")
    lines = ["", "## At the server", "",
             f"{pinned}Every script run timed by the app itself (`CKA_RUN_LOG`, ui/frame/shell.py `timed_run`): wall "
             "time from its start to its end and the CPU time of the thread that ran it. "
             f"{runs['runs']} runs in {duration:.0f} s ({runs['runs'] / max(duration, 1e-9):.1f} per second), "
             f"{runs['done']} completed ({runs.get('sections', 0)} of them of one page section alone, "
             "`live_section`), "
             f"{runs['interrupted']} cut short by a newer click; "
             f"{runs['cpu_seconds']:.0f} s of CPU in script runs.",
             "",
             f"- Rerun latency at the server (completed runs): p50 {percentile(runs['wall'], 50):.3f} s, "
             f"**p95 {percentile(runs['wall'], 95):.3f} s**, max {max(runs['wall'], default=float('nan')):.2f} s.",
             f"- Server CPU per rerun: **median {percentile(runs['cpu'], 50):.3f} s**, p95 {percentile(runs['cpu'], 95):.3f} s.",
             "", "| page | runs | wall p50 (s) | wall p95 (s) | CPU p50 (s) |", "|---|---|---|---|---|"]
    for page, title in PAGES.items():
        stats = runs["pages"].get(page)
        if stats:
            lines.append(f"| {title} | {stats['runs']} | {stats['wall_p50']:.3f} | {stats['wall_p95']:.3f} | "
                         f"{stats['cpu_p50']:.3f} |")
    return lines


def render(report: LoadTestReport) -> str:
    r, mem, cpu, s = report.results, report.memory, report.cpu, report.settings
    duration = r.ended - r.started
    timed = [m for m in r.moves if m.latency is not None]
    gib = 2**30
    lines = [
        "# Load test: concurrent browser sessions",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · `{s['command']}`",
        "",
        f"- Machine: {_machine()}; load average before {s['load_before']}, after {s['load_after']}.",
        f"- {s['sessions']} sessions (browser contexts of one headless Chromium), {duration:.0f} s of random moves "
        f"(target {s['seconds']:.0f} s; a session finishes its current move"
        + (f" and goes on until it has visited its share of {s['pages_each']} pages, every page by "
           f"{s['sessions'] * min(s['pages_each'], len(PAGES)) // len(PAGES)} sessions or more"
           if s["pages_each"] else "") + "), "
        f"seed {s['seed']}, "
        + (f"after a {r.warmup_seconds:.0f} s warm-up in which one session loaded every page." if s["warm_up"]
           else "from a cold server (no warm-up: the sessions' first visits fill the shared caches)."),
        (f"- The server ran on core(s) {s['server_cpus']} and the browsers and driver on {s['client_cpus']} (taskset), "
         "so page-side latencies include the browsers' own contention; the server's view is in *At the server*."
         if s.get("server_cpus") else
         "- The server, the Chromium renderers and the driver share the same cores, so latencies include client-side "
         "contention (rendering, Playwright), not only the server's work.")
        + (f" Each session paused {s['think_s']:g} s on average (0.5-1.5×) after every move, like a student reading "
           "the page." if s.get("think_s") else "")
        + (f" Server and browsers ran at nice {s['nice']} (below other work on the machine)." if s["nice"] else ""),
        f"- CPU time during the run ({duration:.0f} s × {os.cpu_count()} cores = "
        f"{duration * (os.cpu_count() or 1):.0f} "
        f"core-seconds available): server {cpu['server']:.0f} s, Chromium {cpu['chromium']:.0f} s, Playwright driver "
        f"{cpu['driver']:.0f} s, this script {cpu['load test']:.0f} s, other processes on the machine "
        f"{cpu['other processes']:.0f} s (machine busy {cpu['machine']:.0f} s).",
        "",
        "## Rerun latency",
        "",
        "From just before the input event until the app is idle again: the script no longer running (the page's "
        "script state and the server's run-finished message), connected, nothing changing for 0.3 s; timed in the "
        "page. *Drawn* also waits until no widget is a loading skeleton any more (a page's first visit in a tab "
        "loads widget code lazily). *Script run*: from the server's run-started to its run-finished message as the "
        "page received them (the server's share of the latency). Navigation is a sidebar link; a deep link or an "
        "open is a full page load (a new session), timed from navigation start.",
        "",
        "| page | timed moves | p50 (s) | p95 (s) | max (s) | drawn p95 (s) | script run p50 / p95 (s) |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, moves: list[Move], bold: bool = False) -> str:
        values, drawn = [m.latency for m in moves], [m.ready for m in moves]
        script = [m.script for m in moves if m.script is not None]
        b = "**" if bold else ""
        return (f"| {label} | {len(values)} | {b}{percentile(values, 50):.2f}{b} | {b}{percentile(values, 95):.2f}{b} | "
                f"{max(values, default=float('nan')):.2f} | {percentile(drawn, 95):.2f} | "
                f"{percentile(script, 50):.2f} / {percentile(script, 95):.2f} |")

    for path, title in PAGES.items():
        lines.append(row(title, [m for m in timed if m.page == path]))
    lines.append(row("**all**", timed, bold=True))
    lines += ["", "| move | timed | p50 (s) | p95 (s) | max (s) | drawn p95 (s) | script run p50 / p95 (s) |",
              "|---|---|---|---|---|---|---|"]
    by_action = defaultdict(list)
    for m in timed:
        by_action[m.action].append(m)
    for action in sorted(by_action, key=lambda a: -len(by_action[a])):
        lines.append(row(action, by_action[action]))
    lines += _server_runs_section(s.get("server_runs") or {}, duration, s)
    in_app = [m for m in timed if m.action not in ("open", "deep link")]
    in_app_latency = [m.latency for m in in_app]
    lines += ["", f"Without the full page loads (opens and deep links): p50 {percentile(in_app_latency, 50):.2f} s, "
                  f"p95 {percentile(in_app_latency, 95):.2f} s over {len(in_app)} moves."]
    runs = sum(m.runs for m in r.moves)
    untimed = defaultdict(int)
    for m in r.moves:
        if m.latency is None:
            untimed[m.action] += 1
    lines += [
        "",
        f"Throughput: {len(timed)} timed moves"
        + (f" (and {sum(untimed.values())} that caused no rerun: "
           + ", ".join(f"{k} × {v}" for k, v in sorted(untimed.items())) + ")" if untimed else "")
        + f", {r.expanders} expanders opened or closed; "
        f"{runs} script runs observed in the browsers: **{runs / duration:.2f} reruns/s** overall, "
        f"{len(r.moves) / duration:.2f} moves/s. The server spent {cpu['server'] / max(runs, 1):.2f} CPU-seconds per "
        "script run on average (its CPU time over the runs).",
        "",
        "Long jobs: " + (", ".join(f"{k} × {v}" for k, v in sorted(r.jobs.items())) or "none") + ".",
        "",
        "## Errors",
        "",
    ]
    if report.errors == 0:
        lines.append("**0 errors**: no exception box, no unexpected error alert, no lost connection, no page crash, "
                     "no JavaScript or console error from the app, no traceback in the server log, every move "
                     "became idle.")
    else:
        lines.append(f"**{report.errors} error(s)**: {len(r.problems)} seen in the browsers, "
                     f"{len(report.log_errors)} traceback(s) in the server log.")
        lines.append("")
        groups: dict[tuple, list[Problem]] = defaultdict(list)
        for p in r.problems:
            groups[(p.page, p.kind, p.text)].append(p)
        for (page, kind, text), found in groups.items():
            first = found[0]
            lines.append(f"- {page}, **{kind}** × {len(found)} (first: session {first.session}, after "
                         f"\"{first.action}\"): {text}"
                         + (f" — screenshot `{first.screenshot}`" if first.screenshot else ""))
        distinct: dict[str, int] = defaultdict(int)
        for block in report.log_errors:
            distinct[without_incident_reference(block)] += 1
        for block, count in distinct.items():
            lines += ["", f"Server log (× {count}):", "", "```", block, "```"]
    if report.log_messages:
        lines += ["", "Server log lines (warnings and errors the server logged; tracebacks are counted above): "
                  + "; ".join(f"\"{k}\" × {v}" for k, v in report.log_messages.items()) + "."]
    if r.expected_alerts:
        lines += ["", "Expected error alerts (the app's own teaching or validation messages, not counted): "
                  + ", ".join(f"{k} × {v}" for k, v in sorted(r.expected_alerts.items())) + "."]
    if r.driver_skips:
        lines += ["", f"Driver mishaps (a move the driver could not make, e.g. an element re-rendered under it; "
                      f"not app errors): {len(r.driver_skips)}."]
        lines += [f"- {skip}" for skip in r.driver_skips[:15]]
    counts = [len(r.pages_visited[i]) for i in range(s["sessions"])]
    by_page = {p: sum(p in r.pages_visited[i] for i in range(s["sessions"])) for p in PAGES}
    lines += ["", f"Pages visited per session: {min(counts, default=0)} to {max(counts, default=0)} of {len(PAGES)}; "
                  f"sessions per page: {min(by_page.values())} to {max(by_page.values())} of {s['sessions']}."]
    lines += [
        "",
        "## Server memory",
        "",
        "RSS of the streamlit process tree, sampled every 0.5 s.",
        "",
        "| idle (no session) | start (" + ("every page loaded once" if s["warm_up"] else "cold: no warm-up")
        + ") | steady (median, last third) | peak |",
        "|---|---|---|---|",
        f"| {mem['idle'] / gib:.2f} GB | {mem['start'] / gib:.2f} GB | **{mem['steady'] / gib:.2f} GB** | "
        f"{mem['peak'] / gib:.2f} GB |",
        "",
        "At the peak: " + (", ".join(f"{role} {rss / gib:.2f} GB" for role, rss in mem.get("peak_parts", []))
                           or "no process sampled") + ".",
        "",
        f"Chromium's processes (context only; shared pages counted once per process): peak RSS sum "
        f"{mem['chromium_peak'] / gib:.1f} GB.",
        "",
        "## Verdict",
        "",
        f"- Errors: {report.errors} (target 0) — {'met' if report.errors == 0 else 'NOT met'}.",
        f"- Steady memory with {s['sessions']} sessions: {mem['steady'] / gib:.2f} GB (target ≤ 1.5 GB) — "
        f"{'met' if report.steady_ok else 'NOT met'}.",
    ]
    if r.problems or report.log_errors:
        lines.append(f"- Screenshots and the server log: `{s['workdir']}`.")
    return "\n".join(lines) + "\n"
