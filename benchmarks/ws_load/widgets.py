"""The widgets of a page as the frontend knows them: read off the element protos the server sends
(id, label, options or range, default, disabled, fragment, URL binding), their widget state as the
frontend's WidgetStateManager stores and sends it (the value types its components use), and a
student's change: another valid value, mostly near the current one or back to the default."""
from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from typing import Any

import pyarrow.ipc
from streamlit.proto.ButtonGroup_pb2 import ButtonGroup
from streamlit.proto.Checkbox_pb2 import Checkbox
from streamlit.proto.Common_pb2 import FileUploaderState
from streamlit.proto.Dataframe_pb2 import Dataframe
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState

#: Element types that are widgets as they are (other widget kinds are derived in :func:`widget_kind`).
_PLAIN_WIDGETS = {"selectbox", "radio", "multiselect", "number_input", "text_input", "text_area", "button",
                  "file_uploader", "date_input", "time_input", "date_time_input", "color_picker", "download_button",
                  "camera_input", "audio_input", "chat_input", "feedback", "pagination", "menu_button"}

#: Kinds a random move changes. Text boxes are left alone (a typed Hub id would go to the network),
#: file uploaders are reached through uploads, the rest (dates, colours, chat...) the app does not use.
MOVABLE = {"slider", "select_slider", "selectbox", "radio", "multiselect", "checkbox", "toggle", "number_input",
           "button", "segmented_control", "pills", "data_editor"}

#: Chance that a change puts the widget back to its default rather than near its current value.
BACK_TO_DEFAULT = 0.25
#: How far one change moves a value: grid points of a slider, options of a select slider, steps of a
#: number input (the warm-up computes every value one change away from the default).
SLIDER_REACH, SELECT_SLIDER_REACH, NUMBER_REACH = 4, 2, 3

#: The WidgetState field that holds each kind's value (number inputs: :meth:`Widget._number`).
_VALUE_FIELDS = {"slider": "double_array_value", "select_slider": "string_array_value",
                 "multiselect": "string_array_value", "segmented_control": "string_array_value",
                 "pills": "string_array_value", "selectbox": "string_value", "radio": "string_value",
                 "text_input": "string_value", "text_area": "string_value", "checkbox": "bool_value",
                 "toggle": "bool_value"}


def widget_kind(element) -> str | None:
    """The widget kind of an Element proto (None for a non-widget such as a chart or text)."""
    name = element.WhichOneof("type")
    if name == "slider":
        return "select_slider" if element.slider.type == Slider.SELECT_SLIDER else "slider"
    if name == "checkbox":
        return "toggle" if element.checkbox.type == Checkbox.TOGGLE else "checkbox"
    if name == "button_group":
        return "pills" if element.button_group.style == ButtonGroup.PILLS else "segmented_control"
    if name == "dataframe":
        return "data_editor" if element.dataframe.editing_mode != Dataframe.READ_ONLY else None
    return name if name in _PLAIN_WIDGETS else None


def new_state(widget_id: str, **value) -> WidgetState:
    """A WidgetState with one value field set (arrays and uploads filled in place)."""
    state = WidgetState(id=widget_id)
    for name, v in value.items():
        if name.endswith("_array_value"):
            getattr(state, name).data.extend(v)
        elif name == "file_uploader_state_value":
            state.file_uploader_state_value.CopyFrom(v)
        else:
            setattr(state, name, v)
    return state


def state_value(state: WidgetState | None) -> Any:
    """The plain value of a widget state (a list for the array kinds), None when it has none."""
    if state is None or state.WhichOneof("value") is None:
        return None
    name = state.WhichOneof("value")
    value = getattr(state, name)
    return list(value.data) if name.endswith("_array_value") else value


def js_number(x: float) -> str:
    """A number as JavaScript's String() writes it (3.0 -> "3"), for URL parameters."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e21 else repr(float(x))


@dataclass
class Widget:
    """One widget on the page: its element proto and where it was drawn."""

    kind: str
    proto: Any                  # the widget's own message (Slider, Selectbox, ...)
    fragment_id: str            # the st.fragment that drew it ("" outside any)
    script_hash: str            # the script that drew it (the main script for app.py's sidebar)
    columns: list[str] = field(default_factory=list)  # a data editor's editable columns
    rows: int = 0                                      # and its number of rows

    @property
    def id(self) -> str:
        """The widget's id (the key of its state)."""
        return self.proto.id

    @property
    def label(self) -> str:
        """The widget's label (its key when it has none)."""
        return getattr(self.proto, "label", "") or self.proto.id.rsplit("-", 1)[-1]

    @property
    def disabled(self) -> bool:
        """Whether the widget is disabled."""
        return bool(getattr(self.proto, "disabled", False))

    @property
    def query_key(self) -> str | None:
        """The URL parameter the widget is bound to (``bind="query-params"``), if any."""
        p = self.proto
        return p.query_param_key if "query_param_key" in _fields(p) and p.HasField("query_param_key") else None

    @property
    def options(self) -> list[str]:
        """The option texts of a selection widget (none for others)."""
        if self.kind in ("segmented_control", "pills"):
            return [o.content for o in self.proto.options]
        return list(getattr(self.proto, "options", []))

    @property
    def movable(self) -> bool:
        """Whether a random move may change it: a kind the students use, enabled, outside a form,
        rerunning on change, and with another value to go to."""
        p = self.proto
        return (self.kind in MOVABLE and not self.disabled and not getattr(p, "form_id", "")
                and not getattr(p, "ignore_rerun", False)
                and (self.kind not in ("selectbox", "radio", "select_slider", "segmented_control", "pills")
                     or len(self.options) > 1)
                and (self.kind != "data_editor" or bool(self.columns and self.rows)))

    # -- states as the frontend stores them
    def default_state(self) -> WidgetState | None:
        """The state the frontend's component registers when it first mounts (None: the kind
        registers none; buttons only send a one-off trigger)."""
        p, i = self.proto, self.id
        if self.kind == "slider":
            return new_state(i, double_array_value=list(p.default))
        if self.kind == "select_slider":
            return new_state(i, string_array_value=[p.options[int(k)] for k in p.default])
        if self.kind in ("selectbox", "radio"):
            return new_state(i, string_value=p.options[p.default]) if p.HasField("default") else WidgetState(id=i)
        if self.kind == "multiselect":
            return new_state(i, string_array_value=[p.options[k] for k in p.default])
        if self.kind in ("checkbox", "toggle"):
            return new_state(i, bool_value=p.default)
        if self.kind == "number_input":
            return self._number(p.default) if p.HasField("default") else WidgetState(id=i)
        if self.kind in ("text_input", "text_area"):
            return new_state(i, string_value=p.default) if p.HasField("default") else WidgetState(id=i)
        if self.kind in ("segmented_control", "pills"):
            return new_state(i, string_array_value=[self.options[k] for k in p.default])
        if self.kind == "file_uploader":
            return new_state(i, file_uploader_state_value=FileUploaderState())
        return None

    def set_state(self) -> WidgetState | None:
        """The state the script set (``set_value``: a value from session state), else None."""
        p, i = self.proto, self.id
        if not getattr(p, "set_value", False):
            return None
        if self.kind == "slider":
            return new_state(i, double_array_value=list(p.value))
        if self.kind == "select_slider":
            return new_state(i, string_array_value=list(p.raw_value))
        if self.kind in ("selectbox", "radio"):
            return new_state(i, string_value=p.raw_value) if p.HasField("raw_value") else WidgetState(id=i)
        if self.kind in ("multiselect", "segmented_control", "pills"):
            return new_state(i, string_array_value=list(p.raw_values))
        if self.kind in ("checkbox", "toggle"):
            return new_state(i, bool_value=p.value)
        if self.kind == "number_input":
            return self._number(p.value) if p.HasField("value") else WidgetState(id=i)
        if self.kind in ("text_input", "text_area"):
            return new_state(i, string_value=p.value) if p.HasField("value") else WidgetState(id=i)
        return None

    def state_for(self, value: Any) -> WidgetState:
        """The state that gives the widget ``value`` (a plain value, as :func:`state_value` returns it)."""
        if self.kind == "number_input":
            return self._number(value)
        return new_state(self.id, **{_VALUE_FIELDS[self.kind]: value})

    def _number(self, value: float) -> WidgetState:
        """A number input's state: an int for an INT input, else a double (as its component sends)."""
        if self.proto.data_type == NumberInput.INT:
            return new_state(self.id, int_value=int(value))
        return new_state(self.id, double_value=float(value))

    # -- a student's change
    def change(self, current: WidgetState | None, rng: random.Random) -> WidgetState | None:
        """Another valid state for the widget: usually a step or an option next to the current
        value, sometimes (BACK_TO_DEFAULT) the default again; a button's trigger; None when there
        is no other value."""
        default = self.default_state()
        if (default is not None and rng.random() < BACK_TO_DEFAULT and current is not None
                and state_value(current) != state_value(default)):
            return default
        value = state_value(current if current is not None else default)
        i = self.id
        if self.kind == "button":
            return new_state(i, trigger_value=True)
        if self.kind == "slider":
            grid = slider_grid(self.proto.min, self.proto.max, self.proto.step)
            values = _move_one_end(list(value or self.proto.default), grid, SLIDER_REACH, rng)
            return new_state(i, double_array_value=values) if values else None
        if self.kind == "select_slider":
            values = _move_one_end(list(value or []) or self.options[:1], self.options, SELECT_SLIDER_REACH, rng)
            return new_state(i, string_array_value=values) if values else None
        if self.kind in ("selectbox", "radio"):
            return new_state(i, string_value=rng.choice([o for o in self.options if o != value]))
        if self.kind in ("multiselect", "pills", "segmented_control"):
            return new_state(i, string_array_value=self._toggle(list(value or []), rng))
        if self.kind in ("checkbox", "toggle"):
            return new_state(i, bool_value=not value)
        if self.kind == "number_input":
            steps = self.number_steps(value)
            return self._number(rng.choice(steps)) if steps else None
        if self.kind == "data_editor":
            return new_state(i, string_value=self._edit_cell(value, rng))
        return None

    def number_steps(self, value: float | None) -> list[float]:
        """The values one change of a number input reaches from ``value`` (None: from its minimum, or 0):
        up to NUMBER_REACH steps either way, within its bounds."""
        p = self.proto
        base = value if value is not None else (p.min if p.has_min else 0)
        steps = [base + k * (p.step or 1) for k in range(-NUMBER_REACH, NUMBER_REACH + 1) if k]
        return [x for x in steps if (not p.has_min or x >= p.min) and (not p.has_max or x <= p.max)]

    def _toggle(self, chosen: list[str], rng: random.Random) -> list[str]:
        """A multiselect's or button group's selection with one option picked or unpicked."""
        p, pick = self.proto, rng.choice(self.options)
        if self.kind != "multiselect" and p.click_mode == ButtonGroup.SINGLE_SELECT:
            return [] if chosen == [pick] else [pick]
        if pick in chosen:
            chosen.remove(pick)
        elif self.kind != "multiselect" or not p.max_selections or len(chosen) < p.max_selections:
            chosen.append(pick)
        return chosen

    def _edit_cell(self, value: str | None, rng: random.Random) -> str:
        """The data editor's state (JSON of edited, added and deleted rows) with one more edited
        cell: a number within the column's configured range (0..1 when it names none)."""
        edits = json.loads(value) if value else {"edited_rows": {}, "added_rows": [], "deleted_rows": []}
        config = json.loads(self.proto.columns or "{}")
        column = rng.choice(self.columns)
        typed = (config.get(column) or {}).get("type_config") or {}
        low, high = typed.get("min_value", 0.0), typed.get("max_value", 1.0)
        step = typed.get("step") or 0.01
        new = round(rng.uniform(low, high) / step) * step
        edits["edited_rows"].setdefault(str(rng.randrange(self.rows)), {})[column] = round(new, 6)
        return json.dumps(edits)

    def url_value(self, state: WidgetState) -> list[str] | None:
        """The URL parameter values the frontend writes for a bound widget's new state, or None
        when it removes the parameter (the value is the default)."""
        value, default = state_value(state), state_value(self.default_state())
        if value is None or value == default or value == []:
            return None
        if isinstance(value, bool):
            return ["true" if value else "false"]
        if isinstance(value, (int, float)):
            return [js_number(value)]
        if isinstance(value, list):
            return [js_number(v) if isinstance(v, float) else str(v) for v in value]
        return [str(value)]


def _fields(message) -> set[str]:
    """The names of a message's fields."""
    return {f.name for f in message.DESCRIPTOR.fields}


def _move_one_end(values: list, grid: list, reach: int, rng: random.Random) -> list | None:
    """``values`` (one value, or a range's two ends, all on ``grid``) with one of them moved to a
    point of the grid at most ``reach`` points away, the ends kept in order; None when none can move."""
    if len(grid) < 2:
        return None
    index = [min(range(len(grid)), key=lambda k: abs(grid[k] - v)) if isinstance(v, float)
             else (grid.index(v) if v in grid else 0) for v in values]
    end = rng.randrange(len(index))
    low = index[end - 1] if end > 0 else 0
    high = index[end + 1] if end + 1 < len(index) else len(grid) - 1
    near = [k for k in range(max(low, index[end] - reach), min(high, index[end] + reach) + 1) if k != index[end]]
    if not near:
        return None
    index[end] = rng.choice(near)
    return [grid[k] for k in index]


def slider_grid(low: float, high: float, step: float) -> list[float]:
    """The values a slider can take (at most 2000 of them: a coarser grid beyond that)."""
    if step <= 0 or high <= low:
        return [low]
    count = int(round((high - low) / step)) + 1
    stride = max(1, count // 2000)
    return [round(low + k * step, 12) for k in range(0, count, stride)]


def editable_cells(proto) -> tuple[list[str], int]:
    """A data editor's columns that a student may edit (not its index, not disabled) and its
    number of rows, read from the Arrow table the element carries."""
    table = pyarrow.ipc.open_stream(io.BytesIO(proto.arrow_data.data)).read_all()
    meta = table.schema.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    config = json.loads(proto.columns or "{}")
    return [name for name in table.schema.names
            if name not in index and not (config.get(name) or {}).get("disabled")], table.num_rows
