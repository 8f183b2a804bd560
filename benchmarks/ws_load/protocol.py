"""The messages a simulated student exchanges with Streamlit 1.67 over /_stcore/stream, as the
browser frontend builds and reads them: the BackMsgs it sends (``rerun_script`` with the full
ClientState, ``file_urls_request``) and the ForwardMsg cache it keeps.

The cache: the server sends a cacheable message (a large ``new_element`` delta) as a reference
(``ref_hash``) when the client listed its hash in ``cached_message_hashes`` of the rerun it asked
for. Like the frontend, the cache keeps each cacheable message with the run count of its last
use, drops those older than the server's ``max_cached_message_age`` runs at the end of each run,
and reports the hashes it holds in every rerun request; after a fragment run only the messages of
the fragments that ran age out.
"""
from __future__ import annotations

from collections.abc import Iterable

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

#: script_finished statuses after which the session is idle (FINISHED_EARLY_FOR_RERUN is followed
#: by another run: the script called st.rerun, or a newer request interrupted it).
FINAL_STATUSES = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "success",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "fragment success",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error",
}
EARLY_FOR_RERUN = ForwardMsg.FINISHED_EARLY_FOR_RERUN

#: What the browser reports about itself in every rerun (ContextInfo).
BROWSER_CONTEXT = {"timezone": "UTC", "timezone_offset": 0, "locale": "en-US", "is_embedded": False,
                   "color_scheme": "light"}


def rerun_script(query_string: str, widget_states: Iterable[WidgetState], *, page_script_hash: str = "",
                 page_name: str = "", fragment_id: str = "", cached_hashes: Iterable[str] = (),
                 url: str = "") -> bytes:
    """A serialized ``rerun_script`` BackMsg, field for field as the frontend's sendRerunBackMsg
    fills it: the URL's query string (without '?'), every widget state, the page to run (its hash,
    or on the very first request, before the app listed its pages, its url path as ``page_name``),
    the fragment to rerun alone (empty: the whole app), the cached message hashes and the context."""
    msg = BackMsg()
    state = msg.rerun_script
    state.query_string = query_string
    state.widget_states.SetInParent()
    state.widget_states.widgets.extend(widget_states)
    state.page_script_hash = page_script_hash
    state.page_name = page_name
    state.fragment_id = fragment_id
    state.cached_message_hashes.extend(cached_hashes)
    for field, value in BROWSER_CONTEXT.items():
        setattr(state.context_info, field, value)
    state.context_info.url = url
    return msg.SerializeToString()


def file_urls_request(request_id: str, file_names: list[str], session_id: str) -> bytes:
    """A serialized ``file_urls_request`` BackMsg: where may these files be uploaded?"""
    msg = BackMsg()
    msg.file_urls_request.request_id = request_id
    msg.file_urls_request.file_names.extend(file_names)
    msg.file_urls_request.session_id = session_id
    return msg.SerializeToString()


def parse_forward_msg(data: bytes) -> ForwardMsg:
    """A ForwardMsg from the bytes of one websocket frame."""
    msg = ForwardMsg()
    msg.ParseFromString(data)
    return msg


class MessageCache:
    """The frontend's ForwardMsg cache: cacheable messages by hash, resolved from references."""

    def __init__(self) -> None:
        """An empty cache at run count 0."""
        self.runs = 0
        self._entries: dict[str, tuple[ForwardMsg, int]] = {}  # hash -> (message, run count of its last use)
        self.hits = 0

    def resolve(self, msg: ForwardMsg) -> ForwardMsg:
        """The full message: a cacheable one is stored and returned as is; a reference is replaced
        by the cached message under the reference's own metadata (its delta path). KeyError when
        the server refers to a message this cache never held."""
        if msg.WhichOneof("type") != "ref_hash":
            if msg.metadata.cacheable and msg.hash:
                self._entries[msg.hash] = (msg, self.runs)
            return msg
        cached, _ = self._entries[msg.ref_hash]
        self._entries[msg.ref_hash] = (cached, self.runs)
        self.hits += 1
        full = ForwardMsg()
        full.CopyFrom(cached)
        full.metadata.CopyFrom(msg.metadata)
        return full

    def hashes(self) -> list[str]:
        """The hashes to report in the next rerun request."""
        return list(self._entries)

    def run_finished(self, max_age: int, fragment_ids: list[str]) -> None:
        """One more run: forget the messages not used in the last ``max_age`` runs (after a run of
        ``fragment_ids`` alone, only among those drawn by these fragments)."""
        self.runs += 1
        self._entries = {h: (m, used) for h, (m, used) in self._entries.items()
                         if self.runs - used <= max_age
                         or (fragment_ids and m.delta.fragment_id not in fragment_ids)}
