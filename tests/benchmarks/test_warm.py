"""The warm-up (python -m benchmarks.ws_load.warm): the choices it makes for each kind of control,
on widget protos made here (every option of a select box, every value of a short slider, a long
slider's ends, spread and the values one student move from its default), and a short live warm of
two source pages against a real `streamlit run app.py`: every source of the first two sample models
and each synthetic set visited, in the most-likely-first order, the likeliest only when the sources
are capped (as by default), and the last line saying whether it was complete. No timing
assertions: the machine's two cores are shared."""
from __future__ import annotations

import random
import subprocess
import sys

import pytest
from streamlit.proto.ButtonGroup_pb2 import ButtonGroup
from streamlit.proto.Checkbox_pb2 import Checkbox
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Selectbox_pb2 import Selectbox
from streamlit.proto.Slider_pb2 import Slider

from benchmarks.ws_load import run_apart
from benchmarks.ws_load.warm import MODEL_OPTION, SYNTHETIC_OPTION, Progress, choices, summary, warm
from benchmarks.ws_load.widgets import Widget, state_value
from tests.benchmarks.test_ws_load import TIMEOUT, app_url  # noqa: F401 (the live server fixture, reused)
from ui.sources import data, models, sidebar

LIMIT = 12


def _widget(kind: str, proto) -> Widget:
    return Widget(kind, proto, fragment_id="", script_hash="page")


def _slider(low: float, high: float, step: float, default: float) -> Widget:
    return _widget("slider", Slider(id="s", label="s", min=low, max=high, step=step, default=[default],
                                    data_type=Slider.FLOAT if step % 1 else Slider.INT))


def _key(value):
    """A widget's plain value as a set member (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _one_move_values(widget: Widget, seeds: int = 400) -> set:
    """Every value a student's move (Widget.change) reaches from the widget's default."""
    default = widget.default_state()
    return {_key(state_value(widget.change(default, random.Random(seed)))) for seed in range(seeds)}


def _covered(widget: Widget) -> set:
    """The values the warm-up gives the widget, as the states it sends hold them."""
    return {_key(state_value(widget.state_for(value))) for value in choices(widget, LIMIT)}


def test_every_option_of_a_select_box_is_kept():
    options = [f"hidden{k}" for k in range(18)]
    box = _widget("selectbox", Selectbox(id="b", label="Layer defining dominance", options=options, default=2))
    assert choices(box, LIMIT) == [o for o in options if o != "hidden2"]


def test_a_short_slider_gets_every_value():
    k = _slider(1, 20, 1, 5)  # more values than LIMIT: a spread would skip some
    assert choices(k, LIMIT) == [[float(v)] for v in range(1, 21) if v != 5]
    assert _one_move_values(k) <= _covered(k)


def test_a_long_slider_gets_its_ends_a_spread_and_one_move_from_its_default():
    long = _slider(0.5, 100.0, 0.5, 10.0)  # 200 values
    values = [v for [v] in choices(long, LIMIT)]
    assert values[:8] == [8.0, 8.5, 9.0, 9.5, 10.5, 11.0, 11.5, 12.0]  # one move away, first
    assert 0.5 in values and 100.0 in values and 10.0 not in values
    assert len(values) == len(set(values)) <= LIMIT + 8
    assert _one_move_values(long) <= _covered(long)


def test_the_other_kinds_cover_a_students_first_move():
    kinds = [_widget("checkbox", Checkbox(id="c", label="c", default=False)),
             _widget("number_input", NumberInput(id="n", label="n", default=5, step=1, has_min=True, min=3,
                                                 data_type=NumberInput.INT)),
             _widget("pills", ButtonGroup(id="p", label="p", options=[ButtonGroup.Option(content=t) for t in "abc"],
                                          default=[0], click_mode=ButtonGroup.SINGLE_SELECT,
                                          style=ButtonGroup.PILLS)),
             _widget("select_slider", Slider(id="t", label="t", options=list("abcdefg"), default=[3],
                                             type=Slider.SELECT_SLIDER))]
    for widget in kinds:
        assert _one_move_values(widget) <= _covered(widget), widget.kind
    assert choices(kinds[1], LIMIT) == [3, 4, 6, 7, 8]


def test_the_last_line_says_what_was_left():
    done = Progress(pages=15, reruns=900, seconds=412.3, complete=True)
    assert summary("URL", done, 900) == "warmed URL: 15 pages, 900 reruns in 412 s, complete"
    cut = Progress(pages=15, reruns=300, seconds=300.2, pages_left=0, controls_left=0, sources_planned=42,
                   sources=["mlp_seed0/hidden1", "mlp_seed0/hidden2"], models_unseen=20)
    assert summary("URL", cut, 300) == ("warmed URL: 15 pages, 300 reruns in 300 s, stopped at the 300 s limit "
                                        "with 40 sources (and the other layers of 20 models) left")
    early = Progress(pages=9, reruns=10, seconds=20.1, pages_left=6)
    assert summary("URL", early, 20) == ("warmed URL: 9 pages, 10 reruns in 20 s, stopped at the 20 s limit with "
                                         "6 pages' defaults, the pages' controls, the sidebar sources left")


@pytest.mark.slow
def test_a_short_warm_visits_the_sidebar_sources_most_likely_first(app_url):  # noqa: F811
    assert (sidebar.KINDS["model"], sidebar.KINDS["synthetic"]) == (MODEL_OPTION, SYNTHETIC_OPTION)
    default, other = models.names(loaded=True)[:2]
    assert default == sidebar.DEFAULT_NETWORK
    layers = models.varying_layers(other)
    other_default = sidebar.DEFAULT_LAYER if sidebar.DEFAULT_LAYER in layers else layers[0]
    expected = ([f"{default}/{layer}" for layer in models.varying_layers(default) if layer != sidebar.DEFAULT_LAYER]
                + [f"{SYNTHETIC_OPTION}/{name}" for name in data.SYNTHETIC_SETS.values()]
                + [f"{other}/{other_default}"]
                + [f"{other}/{layer}" for layer in models.varying_layers(other) if layer != other_default])

    progress = run_apart(warm(app_url, 90, LIMIT, ["outliers", "invariances"], models=2, sources=None,
                              timeout=TIMEOUT))
    assert progress.complete and not progress.errors, (progress.errors, progress.phases)
    assert progress.sources == expected
    assert [name for name, _, _ in progress.phases] == ["pages' defaults", "pages' choices", "sidebar sources"]
    # each source set once (its layer, model or set) and the other page visited: two reruns; and three more
    # (to the first source page, synthetic and back to the sample models) less one (the first set is the default)
    assert progress.phases[2][1] == 2 * len(expected) + 2, progress.phases
    assert summary(app_url, progress, 90).endswith(", complete")

    # by default no more sources than the pages' caches keep: the likeliest, the default one included
    capped = run_apart(warm(app_url, 60, LIMIT, ["invariances"], models=2, sources=4, timeout=TIMEOUT))
    assert capped.complete and capped.sources == expected[:3] and capped.sources_left == 0, capped

    cut = subprocess.run([sys.executable, "-m", "benchmarks.ws_load.warm", app_url, "--seconds", "3"],
                         capture_output=True, text=True, timeout=120)
    last = cut.stdout.strip().splitlines()[-1]
    assert cut.returncode == 0 and last.startswith(f"warmed {app_url}: "), (cut.stdout, cut.stderr)
    assert "stopped at the 3 s limit with" in last and "sources" in last, last
