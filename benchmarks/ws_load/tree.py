"""The page as the frontend holds it: one node per delta path (blocks and elements), each tagged
with the script run, fragment and script that drew it; stale nodes cleared when a run finishes,
as the frontend's clearStaleNodes does. Read off it: the widgets now shown, metrics, texts, and
the exceptions and error alerts on the page."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from .widgets import Widget, editable_cells, widget_kind

Path = tuple[int, ...]


@dataclass
class Node:
    """One block or element of the page."""

    kind: str          # the element's or block's type (slider, markdown, vertical, expandable...)
    is_block: bool
    proto: Any         # the Element or Block message
    run_id: str        # the script run that drew it
    fragment_id: str   # the fragment that drew it ("" outside any)
    script_hash: str   # the script (page, or the main script) that drew it


class PageTree:
    """The element tree of one session's page, built from its delta messages."""

    def __init__(self) -> None:
        """An empty page."""
        self.nodes: dict[Path, Node] = {}
        self.run_id = ""
        self.fragment_ids: list[str] = []   # the fragments the current run reruns alone (empty: all)
        self._widgets: list[Widget] | None = None

    def new_run(self, run_id: str, fragment_ids: list[str]) -> None:
        """A run started (its new_session message): deltas from now on belong to it."""
        self.run_id, self.fragment_ids = run_id, list(fragment_ids)

    def apply(self, msg: ForwardMsg) -> Node | None:
        """Apply one delta message; the node it put on the page (None for a transient element)."""
        delta, meta = msg.delta, msg.metadata
        what = delta.WhichOneof("type")
        if what not in ("new_element", "add_block"):
            return None
        path = tuple(meta.delta_path)
        body = getattr(delta, what)
        is_block = what == "add_block"
        old = self.nodes.get(path)
        if not is_block and old is not None and old.is_block:  # an element replaces a block and its children
            self._drop({path})
        node = Node(body.WhichOneof("type") or "", is_block, body, self.run_id, delta.fragment_id,
                    meta.active_script_hash)
        self.nodes[path] = node
        self._widgets = None
        return node

    def finish(self, status: int) -> None:
        """The run ended: after a complete run every node it did not draw goes; after a fragment
        run, those of the fragments that ran; after a compile error, nothing."""
        if status == ForwardMsg.FINISHED_SUCCESSFULLY:
            stale = {p for p, n in self.nodes.items() if n.run_id != self.run_id}
        elif status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            stale = {p for p, n in self.nodes.items()
                     if n.run_id != self.run_id and n.fragment_id in self.fragment_ids}
        else:
            return
        self._drop(stale)

    def _drop(self, roots: set[Path]) -> None:
        """Remove the nodes at ``roots`` and everything below them."""
        if not roots:
            return
        gone = [p for p in self.nodes if any(p[:k] in roots for k in range(1, len(p) + 1))]
        for p in gone:
            del self.nodes[p]
        self._widgets = None

    def elements(self, kind: str | None = None) -> list[tuple[Path, Node]]:
        """The elements (not blocks) on the page, in page order, of one kind if given."""
        return sorted((p, n) for p, n in self.nodes.items()
                      if not n.is_block and (kind is None or n.kind == kind))

    def widgets(self) -> list[Widget]:
        """Every widget on the page, in page order."""
        if self._widgets is None:
            found = []
            for _, node in self.elements():
                kind = widget_kind(node.proto)
                if kind is None:
                    continue
                widget = Widget(kind, getattr(node.proto, node.kind), node.fragment_id, node.script_hash)
                if kind == "data_editor":
                    widget.columns, widget.rows = editable_cells(widget.proto)
                found.append(widget)
            self._widgets = found
        return self._widgets

    def metrics(self) -> dict[str, str]:
        """label -> shown value of every st.metric on the page."""
        return {n.proto.metric.label: n.proto.metric.body for _, n in self.elements("metric")}

    def texts(self) -> list[str]:
        """The text the page shows: markdown, captions, headings, alerts, plain text and code."""
        out = []
        for _, node in self.elements():
            body = getattr(node.proto, node.kind, None)
            if node.kind in ("markdown", "text", "alert", "code", "heading"):
                out.append(body.body)
        return out

    def problems(self) -> set[tuple[str, str]]:
        """("exception", type: message) for each exception element, ("error", text) for each
        error alert on the page."""
        found = set()
        for _, node in self.elements():
            if node.kind == "exception":
                e = node.proto.exception
                if not e.is_warning:
                    found.add(("exception", f"{e.type}: {e.message}".strip()))
            elif node.kind == "alert" and node.proto.alert.format == Alert.ERROR:
                found.add(("error", node.proto.alert.body))
        return found
