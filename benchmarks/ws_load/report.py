"""The report of a run: the figures (``summarize``: latency per move kind and per page over the
measured window, errors, timeouts, disconnects, lost sessions, requests per second, the server's
CPU seconds per request and memory, the load generator's own CPU and event-loop lag), the markdown
(``render``) and the raw JSON (``write``)."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

from benchmarks.load_test.results import percentile

from .records import Move, Results

DONE = ("success", "fragment success")
MB = 1024 * 1024


def _pct(values: list[float], q: float) -> float | None:
    """The q-th percentile of ``values``, None when there are none."""
    return percentile(values, q) if values else None


def _stats(moves: list[Move]) -> dict:
    """Count, outcomes and latency percentiles (seconds; None when nothing completed) of some moves."""
    done = [m for m in moves if m.outcome in DONE]
    lat = [m.latency for m in done]
    return {"n": len(moves), "done": len(done), "timeouts": sum(m.outcome == "timeout" for m in moves),
            "fragment": sum(m.fragment for m in moves),
            "p50": _pct(lat, 50), "p95": _pct(lat, 95), "max": max(lat, default=None),
            "drawn_p50": _pct([m.drawn for m in done], 50), "drawn_p95": _pct([m.drawn for m in done], 95),
            "script_p50": _pct([m.script for m in done], 50)}


def _jobs(moves: list[Move]) -> dict:
    """How many runs followed a job (resampling, a model load) to its end, and how long those runs lasted."""
    lengths = [m.job for m in moves]
    return {"n": len(lengths), "p50": _pct(lengths, 50), "max": max(lengths, default=None),
            "what": sorted({m.target for m in moves})}


def summarize(results: Results, setup: dict, server: dict, client: dict) -> dict:
    """Every figure of the report. ``setup``: the run's settings; ``server``: CPU seconds in the
    window, RSS, log errors and the app's run log; ``client``: the load generator's CPU and lag."""
    start, end = results.measured_from, setup["window_end"]
    window = [m for m in results.moves if start <= m.at <= end]
    by_action, by_page = defaultdict(list), defaultdict(list)
    for m in window:
        by_action[m.action].append(m)
        by_page[m.page].append(m)
    done = sum(m.outcome in DONE for m in window)
    seconds = max(end - start, 1e-9)
    errors = Counter((p.kind, p.text) for p in results.problems)
    first = {}
    for p in results.problems:
        first.setdefault((p.kind, p.text), p)
    cpu = server.get("cpu_seconds")
    all_moves = results.moves
    summary = {
        **setup, "window_seconds": seconds,
        "requests": {"sent": len(window), "done": done, "per_second": done / seconds},
        "all": _stats(window), "by_action": {a: _stats(ms) for a, ms in sorted(by_action.items())},
        "by_page": {p: _stats(ms) for p, ms in sorted(by_page.items())},
        "timeouts": sum(m.outcome == "timeout" for m in all_moves),
        "disconnected_requests": sum(m.outcome == "disconnected" for m in all_moves),
        "failed_requests": sum(m.outcome in ("failed", "compile error") for m in all_moves),
        "disconnects": results.disconnects, "lost_sessions": results.lost_sessions,
        "failed_students": results.failed_students,
        "errors": [{"kind": k, "text": t, "count": n, "student": first[(k, t)].student, "page": first[(k, t)].page,
                    "action": first[(k, t)].action} for (k, t), n in errors.most_common()],
        "error_count": sum(errors.values()), "expected_alerts": dict(results.expected_alerts),
        "pages_seen": sorted(len(v) for v in results.pages_seen.values()),
        "uploads_done": sum(m.action == "upload" and m.outcome in DONE for m in all_moves),
        "jobs": _jobs([m for m in window if m.job is not None]),
        "upload_put_p50": _pct([m.upload_put for m in all_moves if m.upload_put is not None], 50),
        "server": {**server, "cpu_per_request": cpu / done if cpu is not None and done else None},
        "client": {**client, "messages": dict(results.messages.most_common()), "cache_hits": results.cache_hits,
                   "mb_received": results.bytes_received / MB},
    }
    summary["ok"] = not (summary["error_count"] or summary["timeouts"] or summary["lost_sessions"]
                         or summary["failed_students"] or summary["failed_requests"])
    return summary


def _s(x: float | None) -> str:
    """Seconds with two decimals, '—' for none."""
    return "—" if x is None else f"{x:.2f}"


def _table(title: str, rows: dict[str, dict], label) -> list[str]:
    """A markdown table of latency figures, one row per key of ``rows``."""
    lines = [f"| {title} | n | done | timeouts | p50 s | p95 s | max s | drawn p50 | drawn p95 | server run p50 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, s in rows.items():
        lines.append(f"| {label(key, s)} | {s['n']} | {s['done']} | {s['timeouts']} | {_s(s['p50'])} | {_s(s['p95'])} "
                     f"| {_s(s['max'])} | {_s(s['drawn_p50'])} | {_s(s['drawn_p95'])} | {_s(s['script_p50'])} |")
    return lines


def _cpu_line(server: dict, window: float) -> str:
    """The summary's server-CPU cell: seconds in the window and per completed request."""
    cpu = server.get("cpu_seconds")
    if cpu is None:
        return "not measured (no server PID)"
    per = server["cpu_per_request"]
    return (f"{cpu:.1f} s = **{per:.3f} CPU-s per request** ({100 * cpu / window:.0f} % of one core)"
            if per is not None else f"{cpu:.1f} s (no completed request)")


def _summary_rows(s: dict) -> list[str]:
    """The summary table's rows."""
    server, client, req, every = s["server"], s["client"], s["requests"], s["all"]
    rss = server.get("rss") or {}

    def mb(b: int | None) -> str:
        """Bytes as whole megabytes, '—' for none."""
        return f"{b / MB:.0f} MB" if b else "—"

    return [
        "| | |", "|---|---|",
        f"| requests in the window | {req['done']} completed of {req['sent']} sent: **{req['per_second']:.2f} /s** |",
        f"| latency, all requests | p50 {_s(every['p50'])} s, p95 {_s(every['p95'])} s, max {_s(every['max'])} s |",
        f"| runs that followed a job to its end | {s['jobs']['n']} ({', '.join(s['jobs']['what']) or 'none'}): "
        f"p50 {_s(s['jobs']['p50'])} s, max {_s(s['jobs']['max'])} s from the click to the result |",
        f"| errors | **{s['error_count']}** (exceptions, unexpected error alerts, failed uploads, server log "
        "tracebacks) |",
        f"| timeouts (> {s['timeout']:g} s) | {s['timeouts']} |",
        f"| disconnects / lost sessions / students that failed | {s['disconnects']} / {s['lost_sessions']} / "
        f"{s['failed_students']} |",
        f"| server CPU in the window | {_cpu_line(server, s['window_seconds'])} |",
        f"| server RSS | idle {mb(server.get('rss_idle'))}, at the window's start {mb(rss.get('start'))}, "
        f"steady (median in the window) {mb(rss.get('steady'))}, peak {mb(rss.get('peak'))} |",
        f"| load generator | {client['cpu_seconds']:.1f} CPU-s in the window ({100 * client['cpu_share']:.0f} % of "
        f"one core); event-loop lag p95 {client['lag_p95'] * 1000:.0f} ms, max {client['lag_max'] * 1000:.0f} ms |",
        f"| verdict | {'pass' if s['ok'] else '**fail**'} (exit status {0 if s['ok'] else 1}) |",
    ]


def render(s: dict) -> str:
    """The markdown report."""
    server, client = s["server"], s["client"]
    lines = [
        "# Protocol-level load test (`benchmarks.ws_load`)", "", f"`{s['command']}`", "",
        f"{s['students']} simulated students spoke Streamlit's websocket protocol to {s['url']} (no browsers), each "
        f"in its own session, arriving {s['stagger']:.1f} s apart. After a {s['warmup']:g} s warm-up they were "
        f"measured for {s['window_seconds']:.0f} s. Each student toured the pages in a random order, made "
        f"{s['moves_per_page'][0]}-{s['moves_per_page'][1]} widget moves per page and paused an exponential think "
        f"time (mean {s['think']:g} s) between actions; {100 * s['uploads']:.0f} % of its actions were uploads "
        f"through the sidebar's 'Uploaded file' source, and buttons weighed {s['buttons']:g} against a slider's 3. "
        f"Seed {s['seed']}; a request timed out after {s['timeout']:g} s.",
        f"Server: {s['server_note']}. Machine: {s['cpus']} cores; load average before {s['load_before']}, "
        f"after {s['load_after']}.", "",
        "## Summary", "", *_summary_rows(s), "",
        "Latency: from sending the request (a `rerun_script` BackMsg; for an upload, its `file_urls_request`) to "
        "the `script_finished` of the run it started (when the script calls st.rerun, of the last run); *drawn*: "
        "to the last delta of that run; *server run*: that run's `new_session` to its `script_finished`. "
        "A run that follows a job (a click on 'Compute intervals', a model load) counts until the job's progress "
        "shows, since that is the page's answer; the job's own length, to its result, is the line on jobs. "
        "Percentiles over the completed requests sent in the window."
        + (f" The students' event loop woke up to {client['lag_p95'] * 1000:.0f} ms late (p95): their core was "
           "busy (other processes on it, or too many students), and the latencies include that wait."
           if client["lag_p95"] > 0.1 else ""), "",
        "## Latency per move", "",
        *_table("move", s["by_action"], lambda a, st: f"{a} ({st['fragment']} fragment)" if st["fragment"] else a),
        "", "## Latency per page", "",
        *_table("page", s["by_page"], lambda p, st: p or "(home)"), "", "## Errors", "",
    ]
    if s["errors"]:
        lines += ["| kind | count | first seen | text |", "|---|---|---|---|"]
        for e in s["errors"]:
            text = e["text"].replace("|", "\\|").replace("\n", " ")[:400]
            where = (f"student {e['student']}, {e['page'] or '(home)'}, {e['action']}" if e["student"] >= 0
                     else "the server")
            lines.append(f"| {e['kind']} | {e['count']} | {where} | {text} |")
    else:
        lines.append("None.")
    if s["expected_alerts"]:
        lines += ["", "The app's own teaching and validation alerts (not errors): "
                  + ", ".join(f"{k} × {v}" for k, v in s["expected_alerts"].items()) + "."]
    seen, runs = s["pages_seen"], server.get("runs")
    lines += ["", "## Protocol and server", "",
              f"- Pages seen per student: {seen[0] if seen else 0}-{seen[-1] if seen else 0}; uploads: "
              f"{s['uploads_done']} (HTTP PUT p50 {_s(s['upload_put_p50'])} s).",
              f"- ForwardMsgs received: {sum(client['messages'].values())} ("
              + ", ".join(f"{k} {v}" for k, v in client["messages"].items())
              + f"); {client['cache_hits']} came as references to the student's message cache; "
              f"{client['mb_received']:.1f} MB in all."]
    if runs:
        lines.append(f"- The app's run log (`CKA_RUN_LOG`) in the window: {runs['done']} completed script runs "
                     f"({runs['sections']} of one page section alone), {runs['interrupted']} cut short; wall p50 "
                     f"{_s(runs['wall_p50'])} s, p95 {_s(runs['wall_p95'])} s; CPU p50 {_s(runs['cpu_p50'])} s.")
    if server.get("log_errors"):
        lines.append(f"- Tracebacks in the server log: {len(server['log_errors'])} (counted as errors above).")
    return "\n".join(lines) + "\n"


def write(summary: dict, results: Results, out: Path) -> Path:
    """Write the markdown to ``out`` and the raw JSON (summary, every move and problem) next to
    it (same name, .json); the JSON's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(summary))
    raw = out.with_suffix(".json")
    raw.write_text(json.dumps({"summary": summary, "moves": [asdict(m) for m in results.moves],
                               "problems": [asdict(p) for p in results.problems]}, indent=1, default=str))
    return raw
