"""What a run of simulated students records: one ``Move`` per request a student made (a page load
or switch, a widget change, an upload, a rerun after reconnecting), one ``Problem`` per error it
saw, and the session-level counts (disconnects, lost sessions, ForwardMsg types received)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Move:
    """One request a student made and how it went."""
    student: int
    page: str               # url path of the page it happened on ("" is the default page)
    action: str             # load, switch, reconnect, upload, or the widget kind moved
    target: str             # the widget's label, or the page switched to
    at: float               # when the request was sent (epoch seconds)
    outcome: str            # success, fragment success, compile error, timeout, disconnected, failed
    latency: float | None   # request sent -> script_finished of its run (a job's run: -> its progress shown)
    drawn: float | None     # request sent -> the last delta before that
    script: float | None    # the run's new_session -> its script_finished
    fragment: bool = False  # a fragment rerun (ClientState.fragment_id)
    upload_put: float | None = None  # an upload: seconds of the HTTP PUT
    value: str = ""         # the widget's new value (shortened), for reading the raw JSON
    job: float | None = None  # a run that followed a job to its end: request sent -> script_finished


@dataclass
class Problem:
    """One error a student (or the server's log) showed."""
    student: int
    page: str
    action: str
    kind: str    # exception, error alert, page not found, compile error, upload, protocol, connection
    text: str
    at: float


@dataclass
class Results:
    """Everything one run recorded."""
    moves: list[Move] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    expected_alerts: Counter = field(default_factory=Counter)  # the app's own teaching/validation alerts
    disconnects: int = 0
    lost_sessions: int = 0        # the server started a new session where a reconnect asked for the old one
    failed_students: int = 0      # students that could not connect (or reconnect) at all
    messages: Counter = field(default_factory=Counter)  # ForwardMsg types received
    cache_hits: int = 0           # ForwardMsgs received as references to the student's cache
    bytes_received: int = 0
    pages_seen: dict[int, set] = field(default_factory=dict)
    started: float = 0.0          # the first student's arrival
    measured_from: float = 0.0    # the end of the warm-up
    ended: float = 0.0
