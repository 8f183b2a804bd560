"""deploy/serve.sh: two Streamlit replicas behind HAProxy on loopback, checked through the proxy.

One serve.sh runs for the whole module; the tests run in file order and the last ones are
destructive (a replica is killed, the replicas are restarted with SIGHUP, serve.sh gets SIGTERM).
Which replica answered is read from the X-Replica header the proxy adds and from its access log.
Needs HAProxy (apt-get install -y haproxy).
"""
from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.sync.client import connect

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "deploy" / "serve.sh"
BASH = shutil.which("bash") or "/bin/bash"
HAPROXY = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if Path(p).exists()), None)
NO_PROXY = urllib.request.ProxyHandler({})  # only 127.0.0.1, whatever the environment says

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (process group, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[2]), cmdline)
    return found


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    port: int
    run_dir: Path
    stderr: Path
    replicas: dict[str, int] = field(default_factory=dict)        # r1 -> pid (= its process group)
    replica_ports: dict[str, int] = field(default_factory=dict)   # r1 -> loopback port
    haproxy_pid: int = 0

    @property
    def access_log(self) -> Path:
        return self.run_dir / "access.log"


class Browser:
    """A cookie-keeping HTTP client, as a browser tab is for the proxy."""

    def __init__(self, base: str, cookies: bool = True):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        handlers = [NO_PROXY] + ([urllib.request.HTTPCookieProcessor(self.jar)] if cookies else [])
        self.opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, headers: dict | None = None, method: str = "GET", data: bytes | None = None):
        """(status, headers, body) of one request; HTTP errors are answers too."""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=15) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    @property
    def cookies(self) -> dict[str, str]:
        return {c.name: c.value for c in self.jar}

    def cookie_header(self, **override: str) -> str:
        return "; ".join(f"{k}={v}" for k, v in {**self.cookies, **override}.items())


def _log_lines(served: Served, token: str, count: int, what: str = "") -> list[str]:
    """The proxy's access-log lines whose request carries ``token`` and contains ``what``, once there
    are ``count`` (HAProxy writes a line after the answer has gone out; a websocket's when it closes)."""
    def lines():
        found = [x for x in served.access_log.read_text(errors="replace").splitlines() if token in x and what in x]
        return found if len(found) >= count else None
    return _wait_for(lines, 10, f"{count} access-log lines with {token} {what}")


def _replica_in_log(line: str) -> str:
    m = re.search(r" streamlit/(r\d+) ", line)
    assert m, f"no replica named in the access-log line {line!r}"
    return m.group(1)


def _server_states(served: Served) -> dict[str, str]:
    status, _, body = Browser(served.url, cookies=False).get("/haproxy-status;csv")
    assert status == 200
    rows = [x.split(",") for x in body.decode().splitlines()]
    col = rows[0].index("status")
    return {r[1]: r[col] for r in rows[1:] if r and r[0] == "streamlit" and r[1].startswith("r")}


def _wait_for(predicate, timeout: float, what: str, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if HAPROXY is None:
        pytest.fail("haproxy is not installed: apt-get install -y haproxy")
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    env = {**os.environ, "TMPDIR": str(tmp), "SERVE_START_TIMEOUT": "60", "SERVE_DRAIN_SECONDS": "1", "SERVE_WARM_SECONDS": "0",
           "SERVE_PIN_CPUS": "1" if shutil.which("taskset") else "0", "CKA_MODEL_MEMORY_MB": "1234",
           "PATH": f"{os.environ.get('PATH', '')}:{Path(HAPROXY).parent}"}
    env.pop("SERVE_RUN_DIR", None)
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([BASH, str(SERVE), str(port), "2"], cwd=ROOT, stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        line = _wait_for(lambda: proc.poll() is not None or next(
            (x for x in out.read_text().splitlines() if x.startswith("Serving on ")), None), 75,
            "serve.sh to print its URL", step=0.2)
        assert proc.poll() is None, f"serve.sh exited with {proc.returncode}:\n{err.read_text()}"
        assert line == f"Serving on http://127.0.0.1:{port} (2 replicas)"
        m = re.search(r"access log (\S+)/access\.log", err.read_text())
        assert m, err.read_text()
        run_dir = Path(m.group(1))
        assert run_dir.parent == tmp  # a temporary directory (removed at exit, checked at the end)
        s = Served(proc, f"http://127.0.0.1:{port}", port, run_dir, err)
        for k in ("r1", "r2"):
            s.replicas[k] = int((run_dir / f"replica-{k}.pid").read_text())
            s.replica_ports[k] = int(re.search(rf"replica {k}: 127\.0\.0\.1:(\d+)", err.read_text()).group(1))
        s.haproxy_pid = int((run_dir / "haproxy.pid").read_text())
        yield s
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pidfile in tmp.glob("cka-serve.*/*.pid"):  # never leave servers behind a failed test
            try:
                os.killpg(int(pidfile.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def test_bad_arguments_are_refused_in_one_line(tmp_path):
    def run(*args, env=None):
        r = subprocess.run([BASH, str(SERVE), *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                           env=env or {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin"})
        return r.returncode, r.stderr.strip(), r.stdout

    for args, message in [((), "expected 2 arguments"), (("80x", "2"), "PORT must be a number"),
                          (("0", "2"), "PORT must be a number"), (("70000", "2"), "PORT must be a number"),
                          (("8501", "0"), "REPLICAS must be a number"), (("8501", "two"), "REPLICAS must be")]:
        rc, err, out = run(*args)
        assert rc != 0 and message in err and len(err.splitlines()) == 1 and not out, (args, rc, err)

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        rc, err, _ = run(str(busy.getsockname()[1]), "2")
        assert rc != 0 and "in use" in err and len(err.splitlines()) == 1, err

    # No haproxy on PATH: the only program serve.sh needs before that check is dirname.
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "dirname").symlink_to(shutil.which("dirname"))
    rc, err, _ = run(str(_free_port()), "2", env={"PATH": str(bare), "HOME": str(tmp_path)})
    assert rc != 0 and err == "serve.sh: error: haproxy is not installed: apt-get install -y haproxy"


def test_page_health_and_status_answer_through_the_proxy(served):
    client = Browser(served.url)
    status, headers, body = client.get("/")
    assert status == 200 and b"<html" in body.lower() and headers["X-Replica"] in served.replicas
    status, _, body = client.get("/_stcore/health")
    assert (status, body) == (200, b"ok")
    status, _, body = client.get("/_stcore/host-config")
    assert status == 200 and b"allowedOrigins" in body
    status, _, body = client.get("/haproxy-health")
    assert (status, body) == (200, b"ok: 2 of 2 replicas up\n")
    status, _, body = client.get("/haproxy-status")
    assert status == 200 and b"streamlit" in body
    assert _server_states(served) == {"r1": "UP", "r2": "UP"}


def test_replicas_get_the_environment_and_the_pinning(served):
    cpus = sorted(os.sched_getaffinity(0))
    for i, (name, pid) in enumerate(sorted(served.replicas.items())):
        env = dict(x.split("=", 1) for x in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in x)
        assert env.get("CKA_MODEL_MEMORY_MB") == "1234"  # caps pass through
        assert int(env["CKA_WORKERS"]) >= 1
        if shutil.which("taskset"):
            assert os.sched_getaffinity(pid) == {cpus[i % len(cpus)]}, name


def test_a_cookie_keeps_a_browser_on_one_replica(served):
    client = Browser(served.url)
    token = uuid.uuid4().hex
    status, headers, _ = client.get(f"/?visit={token}")
    assert status == 200
    replica = headers["X-Replica"]
    assert client.cookies.get("SERVERID") == replica
    for i in range(6):
        status, headers, _ = client.get(f"/_stcore/health?visit={token}&n={i}")
        assert status == 200 and headers["X-Replica"] == replica
        assert not any("SERVERID" in v for v in headers.get_all("Set-Cookie") or [])  # set once only
    lines = _log_lines(served, token, 7)
    assert len(lines) == 7 and {_replica_in_log(x) for x in lines} == {replica}, lines


def test_new_browsers_are_spread_over_the_replicas(served):
    seen = []
    for _ in range(6):
        client = Browser(served.url)
        status, headers, _ = client.get("/_stcore/health")
        assert status == 200 and client.cookies["SERVERID"] == headers["X-Replica"]
        seen.append(headers["X-Replica"])
    assert set(seen) == {"r1", "r2"}, seen


def _open_stream(served: Served, client: Browser, token: str, session: str = ""):
    """A websocket on /_stcore/stream as Streamlit's frontend opens it: the browser's cookies, its
    Origin, the XSRF token and (to reconnect) the session id in the subprotocol list."""
    protocols = ["streamlit", client.cookies["_streamlit_xsrf"]] + ([session] if session else [])
    return connect(f"ws://127.0.0.1:{served.port}/_stcore/stream?visit={token}", proxy=None,
                   origin=served.url, additional_headers={"Cookie": client.cookie_header()},
                   subprotocols=protocols, max_size=None, open_timeout=15, close_timeout=5)


def _session_id(ws) -> str:
    """Ask for a script run and read the session id from the server's first message."""
    rerun = BackMsg()
    rerun.rerun_script.query_string = ""
    rerun.rerun_script.page_script_hash = ""
    ws.send(rerun.SerializeToString())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = ForwardMsg()
        msg.ParseFromString(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg.WhichOneof("type") == "new_session":
            return msg.new_session.initialize.session_id
    pytest.fail("no new_session message within 30 s")


def test_websocket_uploads_and_reconnect_stay_on_the_cookies_replica(served):
    client = Browser(served.url)
    status, headers, _ = client.get("/")                     # the page: the proxy's cookie
    replica = headers["X-Replica"]
    other = next(r for r in served.replicas if r != replica)
    assert client.get("/_stcore/health")[0] == 200           # Streamlit's XSRF cookie, as the frontend does
    assert set(client.cookies) >= {"SERVERID", "_streamlit_xsrf"}
    token = uuid.uuid4().hex

    with _open_stream(served, client, token) as ws:
        assert ws.response.status_code == 101 and ws.response.headers["X-Replica"] == replica
        assert ws.subprotocol == "streamlit"
        session = _session_id(ws)

        # An upload is a plain HTTP PUT beside the websocket: the session must be in the process it reaches.
        def upload(cookie_header: str):
            body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n"
                    b"Content-Type: text/csv\r\n\r\n1,2\n3,4\n\r\n--b0undary--\r\n")
            return Browser(served.url, cookies=False).get(
                f"/_stcore/upload_file/{session}/{uuid.uuid4().hex}?visit={token}", method="PUT", data=body,
                headers={"Cookie": cookie_header, "X-Xsrftoken": client.cookies["_streamlit_xsrf"],
                         "Content-Type": "multipart/form-data; boundary=b0undary"})

        status, headers, _ = upload(client.cookie_header())
        assert (status, headers["X-Replica"]) == (204, replica)
        # The same upload sent to the other replica is refused: why the proxy must be sticky.
        status, headers, body = upload(client.cookie_header(SERVERID=other))
        assert (status, headers["X-Replica"]) == (400, other) and b"Invalid session_id" in body

    # The browser reconnects (same cookies, its session id): same replica, same session.
    with _open_stream(served, client, token, session=session) as ws:
        assert ws.response.headers["X-Replica"] == replica
        assert _session_id(ws) == session

    lines = _log_lines(served, token, 2, '"GET /_stcore/stream?')
    assert [(_replica_in_log(x), " 101 " in x) for x in lines] == [(replica, True)] * 2, lines
    puts = _log_lines(served, token, 2, '"PUT /_stcore/upload_file/')
    assert sorted(_replica_in_log(x) for x in puts) == sorted([replica, other]), puts


def test_a_dead_replica_is_routed_around(served):
    pid = served.replicas["r1"]
    os.killpg(pid, signal.SIGKILL)
    _wait_for(lambda: not _alive(pid), 10, "r1 to die")

    # At once, before any health check notices: a browser pinned to r1 is sent to r2 (redispatch).
    client = Browser(served.url)
    status, headers, _ = client.get("/_stcore/health", headers={"Cookie": "SERVERID=r1"})
    assert (status, headers["X-Replica"]) == (200, "r2")
    assert client.cookies["SERVERID"] == "r2"                # and re-pinned there

    # The health checks take r1 out: every new browser goes to r2.
    _wait_for(lambda: _server_states(served).get("r1", "").startswith("DOWN"), 20, "the proxy to mark r1 down")
    assert Browser(served.url).get("/haproxy-health")[2] == b"ok: 1 of 2 replicas up\n"
    for _ in range(4):
        status, headers, _ = Browser(served.url).get("/")
        assert (status, headers["X-Replica"]) == (200, "r2")
    _wait_for(lambda: "replica r1 (pid" in served.stderr.read_text(), 10, "serve.sh to report r1's exit")


def test_sighup_restarts_the_replicas_one_at_a_time_while_serving(served):
    old = dict(served.replicas)
    served.proc.send_signal(signal.SIGHUP)
    client = Browser(served.url)
    failures, answers = [], 0
    deadline = time.monotonic() + 75
    while "all replicas restarted" not in served.stderr.read_text():
        assert time.monotonic() < deadline, served.stderr.read_text()
        assert served.proc.poll() is None
        status, headers, _ = client.get("/_stcore/health")
        answers += 1
        if status != 200:
            failures.append(status)
        time.sleep(0.1)
    assert answers > 10 and not failures, failures
    for k in ("r1", "r2"):
        served.replicas[k] = int((served.run_dir / f"replica-{k}.pid").read_text())
        assert served.replicas[k] != old[k] and _alive(served.replicas[k])
        assert not _alive(old[k])
    assert _server_states(served) == {"r1": "UP", "r2": "UP"}
    seen = {Browser(served.url).get("/_stcore/health")[1]["X-Replica"] for _ in range(4)}
    assert seen == {"r1", "r2"}


def test_sigterm_stops_everything(served):
    groups = set(served.replicas.values()) | {served.haproxy_pid}
    run_dir, ports = str(served.run_dir), [str(p) for p in served.replica_ports.values()]
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(15) == 0
    assert time.monotonic() - started < 15

    left = {pid: cmd for pid, (pgid, cmd) in _processes().items()
            if pgid in groups or run_dir in cmd or any(f"--server.port {p} " in cmd + " " for p in ports)}
    assert not left, left
    assert not served.run_dir.exists()                       # the temporary run directory is removed
    with socket.socket() as s:                               # and nothing listens on the proxy's port
        assert s.connect_ex(("127.0.0.1", served.port)) != 0
