"""One simulated browser tab: a Streamlit session driven over its websocket as the frontend
drives it. A reader task takes every ForwardMsg off the socket (resolving cache references),
keeps the page's element tree, the app's pages, the URL's query string and the widget states the
frontend would hold, and ends the request in flight at the script_finished of the run it started.
Requests: the first load, a widget change (the full widget states; a fragment rerun for a widget
drawn inside an st.fragment), a page switch, an upload, a rerun after reconnecting."""
from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from streamlit.proto.Common_pb2 import UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .protocol import EARLY_FOR_RERUN, FINAL_STATUSES, MessageCache, file_urls_request, parse_forward_msg, rerun_script
from .transport import Transport
from .tree import PageTree
from .widgets import Widget, widget_kind

#: Failures to open a socket: refused, reset, timed out, or not a websocket (a proxy's error page).
SOCKET_ERRORS = (OSError, asyncio.TimeoutError, InvalidHandshake)


@dataclass
class RunResult:
    """How one request went."""

    outcome: str                  # success, fragment success, compile error, timeout, disconnected
    latency: float | None = None  # request sent -> script_finished, or -> a job's progress shown (see job)
    job: float | None = None      # a run that followed a job (resampling, a model load): sent -> script_finished
    drawn: float | None = None    # request sent -> the last delta of the run
    script: float | None = None   # new_session -> script_finished
    problems: set[tuple[str, str]] = field(default_factory=set)  # exceptions / error alerts new on the page


def shows_job(node) -> bool:
    """Whether an element is a job's progress (ui.jobs.draw): a progress bar, or the hourglass caption
    of a job waiting in line or of unknown length."""
    return node.kind == "progress" or (node.kind == "markdown" and "hourglass_top" in node.proto.markdown.body)


@dataclass
class _Pending:
    """The request in flight: when it was sent, the run it started, and its end."""
    sent: float
    done: asyncio.Future
    run_id: str | None = None      # the run the request started (its new_session)
    started: float | None = None
    last_delta: float | None = None
    progress: float | None = None  # the first progress bar of a job the run follows


class StreamlitSession:
    """A Streamlit session seen from its browser tab."""

    def __init__(self, url: str, timeout: float) -> None:
        """A tab that has not loaded the app yet."""
        self.transport = Transport(url, timeout)
        self.timeout = timeout
        self.tree = PageTree()
        self.cache = MessageCache()
        self.states: dict[str, WidgetState] = {}     # widget id -> state, as the frontend keeps it
        self.query: list[tuple[str, str]] = []       # the URL's query parameters
        self.pages: dict[str, str] = {}              # url path -> page_script_hash
        self.page_hash = self.main_hash = ""
        self.session_id: str | None = None
        self.session_changes = 0                     # new_session with another session id than before
        self.incidents: list[tuple[str, str]] = []   # page not found, compile errors, protocol surprises
        self.messages: Counter = Counter()
        self.bytes_received = 0
        self._max_cache_age = 2
        self._pending: _Pending | None = None
        self._shown: set[tuple[str, str]] = set()
        self._file_urls: dict[str, asyncio.Future] = {}
        self._socket = None
        self._reader: asyncio.Task | None = None

    # -- what the page is now
    @property
    def page(self) -> str:
        """The url path of the page shown."""
        return next((path for path, h in self.pages.items() if h == self.page_hash), "")

    def widget_state(self, widget: Widget) -> WidgetState | None:
        """The widget's state as the frontend would send it now (None: none registered)."""
        return self.states.get(widget.id)

    @property
    def connected(self) -> bool:
        """Whether the websocket is open (its reader still runs)."""
        return self._reader is not None and not self._reader.done()

    # -- connection
    async def open(self, url_path: str = "", query: str = "") -> RunResult:
        """Load the app at a page (and query) as a browser does: the HTTP requests, the websocket,
        then the frontend's first message: a rerun naming the page by its url path."""
        statuses = await self.transport.load_page(url_path + (f"?{query}" if query else ""))
        if any(status >= 400 for status in statuses):
            self.incidents.append(("http", f"page, health, host-config answered {statuses}"))
        self.query = parse_qsl(query, keep_blank_values=True)
        await self._connect()
        return await self._request(self._rerun_bytes(page_name=url_path, states=[]))

    async def _connect(self) -> None:
        """Open the websocket (asking for the known session, if any) and start its reader."""
        self._socket = await self.transport.open_socket(self.session_id)
        self._reader = asyncio.create_task(self._read(self._socket))

    async def reconnect(self, tries: int = 5) -> bool:
        """Open a new websocket asking for the same session (its id as the third subprotocol), as
        the frontend does after a lost connection; False when no try succeeds."""
        await self.close()
        for attempt in range(tries):
            try:
                await self._connect()
                return True
            except SOCKET_ERRORS:
                await asyncio.sleep(0.5 * (attempt + 1))
        return False

    async def close(self) -> None:
        """Close the websocket and wait for its reader to end."""
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self, socket) -> None:
        """Take every message off the socket until it closes; then end the request in flight."""
        try:
            async for data in socket:
                self.bytes_received += len(data)
                try:
                    self._handle(parse_forward_msg(data))
                except KeyError as missing:
                    self.incidents.append(("protocol", f"reference to a ForwardMsg never cached: {missing}"))
        except ConnectionClosed:
            pass
        finally:
            if self._pending is not None and not self._pending.done.done():
                self._pending.done.set_result("disconnected")
            for waiter in self._file_urls.values():
                if not waiter.done():
                    waiter.set_result(None)

    # -- incoming messages
    def _handle(self, msg: ForwardMsg) -> None:
        """Apply one ForwardMsg to the tab's state and to the request in flight."""
        msg = self.cache.resolve(msg)
        kind = msg.WhichOneof("type")
        self.messages[kind] += 1
        now, pending = time.perf_counter(), self._pending
        if kind == "delta":
            node = self.tree.apply(msg)
            if node is not None and not node.is_block:
                self._mount(node)
            if pending is not None and pending.run_id is not None:
                pending.last_delta = now
                if pending.progress is None and node is not None and shows_job(node):
                    pending.progress = now
        elif kind == "new_session":
            self._new_session(msg)
            if pending is not None:
                pending.run_id, pending.started, pending.last_delta = self.tree.run_id, now, None
        elif kind == "script_finished":
            self._script_finished(msg, now)
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query = parse_qsl(msg.page_info_changed.query_string, keep_blank_values=True)
        elif kind == "page_not_found":
            self.incidents.append(("page not found", f"page {msg.page_not_found.page_name!r} not found"))
        elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            e = msg.session_event.script_compilation_exception
            self.incidents.append(("compile error", f"{e.type}: {e.message}"))
        elif kind == "file_urls_response":
            waiter = self._file_urls.pop(msg.file_urls_response.response_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(msg.file_urls_response)

    def _new_session(self, msg: ForwardMsg) -> None:
        """A run started: session id, scripts, pages, cache age, and the tree's current run."""
        session = msg.new_session
        new_id = session.initialize.session_id
        if self.session_id is not None and new_id != self.session_id:
            self.session_changes += 1
        self.session_id = new_id
        self.main_hash, self.page_hash = session.main_script_hash, session.page_script_hash
        self._max_cache_age = session.config.max_cached_message_age or self._max_cache_age
        if not self.messages["navigation"]:  # an app without st.navigation lists its pages here
            self.pages = {p.url_pathname: p.page_script_hash for p in session.app_pages}
        self.tree.new_run(msg.metadata.run.script_run_id, list(msg.metadata.run.fragment_ids))

    def _mount(self, node) -> None:
        """A widget element arrived: its state becomes the one the script set, or, the first time
        the widget shows, its default (what the frontend's component registers on mount)."""
        kind = widget_kind(node.proto)
        if kind is None:
            return
        widget = Widget(kind, getattr(node.proto, node.kind), node.fragment_id, node.script_hash)
        state = widget.set_state()
        if state is None and widget.id not in self.states:
            state = widget.default_state()
        if state is not None:
            self.states[widget.id] = state

    def _script_finished(self, msg: ForwardMsg, now: float) -> None:
        """A run ended: clear stale nodes and states, age the cache, end the request it answers."""
        status, run = msg.script_finished, msg.metadata.run
        if status == EARLY_FOR_RERUN:  # another run follows
            return
        self.tree.finish(status)
        shown = {w.id for w in self.tree.widgets()}
        self.states = {i: s for i, s in self.states.items() if i in shown}
        self.cache.run_finished(self._max_cache_age, list(run.fragment_ids))
        pending = self._pending
        if pending is not None and pending.run_id is not None and run.script_run_id in ("", pending.run_id):
            pending.last_delta = pending.last_delta or now
            if not pending.done.done():
                pending.done.set_result(FINAL_STATUSES[status])

    # -- requests
    def _rerun_bytes(self, states, page_hash: str = "", page_name: str = "", fragment_id: str = "") -> bytes:
        """A rerun_script BackMsg with the tab's query string, cache hashes and URL."""
        query = urlencode(self.query)
        return rerun_script(query, states, page_script_hash=page_hash, page_name=page_name, fragment_id=fragment_id,
                            cached_hashes=self.cache.hashes(),
                            url=self.transport.url(self.page) + (f"?{query}" if query else ""))

    async def _request(self, data: bytes) -> RunResult:
        """Send a rerun request and wait for the end of the run it starts (at most ``timeout`` s)."""
        loop = asyncio.get_running_loop()
        pending = self._pending = _Pending(time.perf_counter(), loop.create_future())
        try:
            if not self.connected:
                return RunResult("disconnected")
            await self._socket.send(data)
            outcome = await asyncio.wait_for(asyncio.shield(pending.done), self.timeout)
        except ConnectionClosed:
            outcome = "disconnected"
        except asyncio.TimeoutError:
            outcome = "timeout"
        finally:
            self._pending = None
        result = RunResult(outcome)
        if pending.done.done() and outcome in FINAL_STATUSES.values():
            end = time.perf_counter()
            result.latency = end - pending.sent
            if pending.progress is not None:  # the answer a student waits for is the job's progress, shown
                result.latency, result.job = pending.progress - pending.sent, result.latency
            result.drawn = (pending.last_delta or end) - pending.sent
            result.script = end - pending.started
        now_shown = self.tree.problems()
        result.problems, self._shown = now_shown - self._shown, now_shown
        return result

    async def rerun(self, fragment_id: str = "") -> RunResult:
        """Rerun the page (or one fragment) with every widget state: what a widget change sends,
        and what the frontend sends after reconnecting while a run was in flight."""
        return await self._request(self._rerun_bytes(list(self.states.values()), self.page_hash,
                                                     fragment_id=fragment_id))

    async def change(self, widget: Widget, state: WidgetState) -> RunResult:
        """Set a widget's new state and rerun. A button's trigger goes out once and is not kept; a
        widget bound to the URL updates the query string first, as the frontend does."""
        if state.WhichOneof("value") == "trigger_value":
            states = [s for i, s in self.states.items() if i != widget.id] + [state]
            return await self._request(self._rerun_bytes(states, self.page_hash, fragment_id=widget.fragment_id))
        self.states[widget.id] = state
        if widget.query_key:
            kept = [(k, v) for k, v in self.query if k != widget.query_key]
            self.query = kept + [(widget.query_key, v) for v in widget.url_value(state) or []]
        return await self.rerun(widget.fragment_id)

    async def switch_page(self, url_path: str) -> RunResult:
        """Go to another page as the sidebar's navigation does: its page_script_hash, the states
        of the widgets the main script drew (the shared sidebar), and of the URL only the
        parameters bound to those widgets."""
        kept = [w for w in self.tree.widgets() if w.script_hash == self.main_hash]
        states = [self.states[w.id] for w in kept if w.id in self.states]
        bound = {w.query_key for w in kept if w.query_key}
        self.query = [(k, v) for k, v in self.query if k in bound]
        return await self._request(self._rerun_bytes(states, self.pages[url_path]))

    async def upload(self, widget: Widget, name: str, data: bytes) -> tuple[RunResult, float | None, str | None]:
        """Upload a file through a file_uploader as the frontend does: ask for upload URLs
        (file_urls_request), PUT the file there with the XSRF header and the tab's cookies, then
        set the uploader's state to the uploaded file and rerun. The run's result, the PUT's
        seconds, and what went wrong before the rerun (None when nothing did)."""
        request_id = secrets.token_hex(8)
        waiter = self._file_urls[request_id] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        try:
            await self._socket.send(file_urls_request(request_id, [name], self.session_id or ""))
            response = await asyncio.wait_for(waiter, self.timeout)
        except ConnectionClosed:
            return RunResult("disconnected"), None, None
        except asyncio.TimeoutError:
            return RunResult("timeout"), None, "no file_urls_response"
        finally:
            self._file_urls.pop(request_id, None)
        if response is None:
            return RunResult("disconnected"), None, None
        if response.error_msg or not response.file_urls:
            return RunResult("failed"), None, f"file_urls_response: {response.error_msg or 'no URL'}"
        urls = response.file_urls[0]
        try:
            status = await self.transport.put_file(urls.upload_url, name, data)
        except OSError as error:
            return RunResult("failed"), None, f"PUT {urls.upload_url}: {type(error).__name__}: {error}"
        put_seconds = time.perf_counter() - started
        if status not in (200, 204):
            return RunResult("failed"), put_seconds, f"PUT {urls.upload_url}: HTTP {status}"
        state = WidgetState(id=widget.id)
        state.file_uploader_state_value.uploaded_file_info.append(
            UploadedFileInfo(file_id=urls.file_id, name=name, size=len(data)))
        result = await self.change(widget, state)
        if result.latency is not None:
            result.latency += put_seconds
            result.drawn += put_seconds
        return result, put_seconds, None
