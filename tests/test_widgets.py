"""The notebooks' interactive paths (``interactive = True`` in JupyterLab), which the weekly run skips.

The three widget functions are built from the same inputs their notebooks build (the session's resolved demo)
and driven the way an analyst does: a dropdown's or slider's ``.value`` set, a button's ``.click()``. There is
no kernel here, so an ``ipywidgets.Output`` passes what is shown inside it through to the IPython shell's
display publisher: :class:`Screen` records it (``clear_output`` included) together with any traceback the
widget code shows instead of raising (ipywidgets swallows errors in callbacks and ``with out:`` blocks).
Figures are rendered with plotly's mimetype renderer, so the test reads back exactly the figure JSON shown.

The last test executes all five analysis notebooks with ``interactive=True`` through papermill, as the
weekly run executes them, and looks inside the widgets' saved state (nbclient stores the contents of output
widgets): the inline ``ipywidgets.interact`` cells of 02 and 03 ran with their defaults, and in a real kernel
the funnel and pyramid widgets start from the same pictures as the static report above them. It runs the
notebooks one at a time with ``crmlib.report.run_notebook`` and a short cell timeout. With papermill's default
client a cell with widgets now and then sat out the whole cell timeout and then completed normally (nbclient
#312; 3 runs in 24 of 03); ``run_notebook`` uses ``crmlib.kernels.SlicedKernelManager``, which ends that
(0 in 32, ``benchmarks/notebook_stall.md``); the short timeout stays as a bound.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmlib import funnel as fn
from crmlib import master
from crmlib import pyramid as pm
from crmlib.asof import resolve as resolve_as_of
from crmlib.db import connect

REPO = Path(__file__).resolve().parent.parent
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
ALL_ZH = "（全部）"  # the funnel dropdowns' "no filter" entry in Chinese


# ----------------------------------------------------------------------------------------- the screen

def _array(v) -> np.ndarray:
    """A plotly JSON array: a list, or plotly 6's base64 typed array ``{dtype, bdata[, shape]}``."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)


class Screen:
    """What the analyst sees below the cell: displays and clears in order, and tracebacks shown."""

    def __init__(self, shell):
        self.events: list[dict | None] = []  # a published mime bundle, or None for clear_output
        self.errors: list[tuple] = []
        self.shell = shell

    def shown(self) -> list[dict]:
        """Bundles on screen now: those published after the last clear_output."""
        last = max((i for i, e in enumerate(self.events) if e is None), default=-1)
        return self.events[last + 1:]

    def figures(self) -> list[dict]:
        """Plotly figures on screen now (dicts with data and layout)."""
        return [e[PLOTLY] for e in self.shown() if PLOTLY in e]

    def widget(self):
        """The last widget displayed (the widget functions display their VBox themselves)."""
        from ipywidgets.widgets.widget import _instances  # model_id -> widget

        ids = [e[WIDGET]["model_id"] for e in self.events if e is not None and WIDGET in e]
        assert ids, "no widget was displayed"
        return _instances[ids[-1]]


@pytest.fixture
def screen(tmp_path, monkeypatch):
    """An IPython shell (no kernel) whose display publisher records into a :class:`Screen`."""
    import plotly.io as pio
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")
    hooks = sys.displayhook, sys.excepthook
    cfg = Config()
    cfg.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=cfg, user_module=types.ModuleType("widget_test_ns"))
    scr = Screen(shell)

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            scr.events.append(data)

        def clear_output(self, wait=False):
            scr.events.append(None)

    shell.display_pub = Publisher(shell=shell)
    shell.showtraceback = lambda exc_tuple=None, *a, **k: scr.errors.append(exc_tuple or sys.exc_info())
    try:
        yield scr
    finally:
        InteractiveShell.clear_instance()
        sys.displayhook, sys.excepthook = hooks


def _no_errors(screen: Screen) -> None:
    assert not screen.errors, "widget code raised: " + "; ".join(f"{e[0].__name__}: {e[1]}" for e in screen.errors)


@pytest.fixture
def demo_con(demo_resolved):
    con = connect(demo_resolved / "crm.duckdb", read_only=True)
    yield con
    con.close()


# ----------------------------------------------------------------------------- 01: review_widget

def _review_queue(con) -> pd.DataFrame:
    """The queue exactly as notebooks/01_master.ipynb reads it."""
    return con.execute("SELECT * FROM match_review_queue "
                       "ORDER BY match_probability DESC, record_id_l, record_id_r").df()


def _rows(box):
    """Per queue row of the review widget: (text, match button, no-match button, status label)."""
    return [row.children for row in box.children]


def _raw_decisions(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_review_widget_click_appends_that_pair_and_decision(demo_con, tmp_path, screen):
    queue = _review_queue(demo_con)
    assert len(queue) > 5
    path = tmp_path / "decisions.csv"
    box = master.review_widget(queue, reviewer="steward", path=path, limit=5)
    rows = _rows(box)
    assert len(rows) == 5, "limit=5 shows the first five pairs of the queue"
    for (text, yes, no, status), pair in zip(rows, queue.head(5).itertuples(), strict=True):
        assert pair.record_id_l in text.value and pair.record_id_r in text.value
        assert pair.name_l in text.value and pair.name_r in text.value
        assert f"p={pair.match_probability:.3f}" in text.value
        assert (yes.description, no.description) == ("同一客户 match", "不同客户 no match")
        assert status.value == ""
    assert not path.exists(), "nothing is written before a click"

    p1, p3 = queue.iloc[1], queue.iloc[3]
    rows[1][1].click()   # pair 1: same customer
    rows[3][2].click()   # pair 3: different customers
    _no_errors(screen)
    raw = _raw_decisions(path)
    assert raw[0] == master.DECISION_COLUMNS
    assert [r[:4] for r in raw[1:]] == [[p1.record_id_l, p1.record_id_r, "match", "steward"],
                                        [p3.record_id_l, p3.record_id_r, "no_match", "steward"]]
    for r in raw[1:]:
        assert abs(dt.datetime.fromisoformat(r[4]) - dt.datetime.now()) < dt.timedelta(minutes=5)
    assert [row[3].value for row in rows] == ["", "✓ match", "", "✓ no_match", ""]

    decided = master.read_decisions(path)
    got = {(r.record_id_l, r.record_id_r): (r.decision, r.reviewer) for r in decided.itertuples()}
    assert got == {tuple(sorted((p1.record_id_l, p1.record_id_r))): ("match", "steward"),
                   tuple(sorted((p3.record_id_l, p3.record_id_r))): ("no_match", "steward")}

    # changing one's mind: the later decision wins when the file is read back
    rows[1][2].click()
    _no_errors(screen)
    assert len(_raw_decisions(path)) == 1 + 3
    decided = master.read_decisions(path).set_index(["record_id_l", "record_id_r"])["decision"]
    assert decided[tuple(sorted((p1.record_id_l, p1.record_id_r)))] == "no_match"
    assert rows[1][3].value == "✓ no_match"


def test_review_widget_as_the_notebook_calls_it_writes_the_project_decisions(demo_con, crm_home, screen):
    queue = _review_queue(demo_con)
    box = master.review_widget(queue)            # notebooks/01_master.ipynb: defaults
    rows = _rows(box)
    assert len(rows) == min(20, len(queue))
    last = queue.iloc[len(rows) - 1]
    rows[-1][1].click()
    _no_errors(screen)
    decisions = crm_home / "params" / "review_decisions.csv"
    assert [r[:4] for r in _raw_decisions(decisions)[1:]] == [
        [last.record_id_l, last.record_id_r, "match", "analyst"]]
    empty = master.review_widget(queue.iloc[:0])
    assert [c.value for c in empty.children] == ["review queue is empty"]


def test_review_widget_says_why_a_decision_was_not_written(demo_con, tmp_path, screen):
    """A decisions file saved as GBK from Excel: appending is refused, and the reviewer must see that
    next to the pair (an exception in a button callback only reaches the kernel's log, not the notebook)."""
    queue = _review_queue(demo_con)
    path = tmp_path / "decisions.csv"
    path.write_bytes(("record_id_l,record_id_r,decision,reviewer,decided_at\r\n"
                      "crm:A1,crm:A2,match,张三,2026-01-05T10:00:00\r\n").encode("gbk"))
    before = path.read_bytes()
    rows = _rows(master.review_widget(queue, reviewer="steward", path=path, limit=3))
    rows[0][1].click()
    _no_errors(screen)
    assert path.read_bytes() == before, "nothing may be appended to a file in another encoding"
    status = rows[0][3].value
    assert status.startswith("✗") and "not UTF-8" in status and str(path) in status
    assert rows[1][3].value == "" and rows[2][3].value == ""


# ----------------------------------------------------------------------------- 04: filter_widget

def _funnel(fig: dict) -> tuple[list[str], list[int]]:
    (trace,) = fig["data"]
    return list(trace["y"]), _array(trace["x"]).astype(int).tolist()


def test_filter_widget_shows_the_selected_slice(demo_con, screen, capsys):
    from crmlib.charts import funnel as cf

    params = fn.load_params()                    # as notebooks/04_funnel.ipynb
    fd = fn.read_funnel(demo_con, None, params)
    progress = fd.progress()
    cf.filter_widget(progress, params, "zh")
    _no_errors(screen)
    box = screen.widget()
    region, industry, rep = box.children[0].children
    unit = box.children[1]
    assert region.options == (ALL_ZH, *sorted(progress["region"].dropna().unique()))
    stages = [fn.stage_label(s, "zh") for s in params.stages]

    def check(sub: pd.DataFrame, unit_name: str = "opportunity") -> list[int]:
        """The funnel and trend on screen are those of ``sub``, computed directly."""
        _no_errors(screen)
        funnel, trend = screen.figures()
        labels, reached = _funnel(funnel)
        want = fn.cohort_conversion(sub, params, unit=unit_name, complete_only=True)
        assert labels == stages and reached == want["reached"].tolist()
        t = fn.conversion_trend(sub, params, unit=unit_name)
        (line,) = trend["data"]
        assert list(line["x"]) == t["cohort_month"].tolist()
        np.testing.assert_allclose(_array(line["y"]).astype(float), t["overall_rate"].to_numpy(float))
        return reached

    # no filter: the static funnel of the report (cohorts whose window has ended), e.g. the first stage
    # counts every opportunity with a complete window and the last one those of them that were won
    complete = progress[progress["window_complete"]]
    everything = check(progress)
    assert everything[0] == len(complete) and everything[-1] == int(complete["won"].sum())

    r = complete["region"].value_counts().idxmax()
    region.value = r
    in_r = progress[progress["region"] == r]
    reached = check(in_r)
    done_r = in_r[in_r["window_complete"]]
    assert reached[0] == len(done_r) and reached[-1] == int(done_r["won"].sum())
    assert reached[0] < everything[0]

    i = done_r["industry"].value_counts().idxmax()
    industry.value = i
    in_ri = in_r[in_r["industry"] == i]
    assert check(in_ri)[0] == int(in_ri["window_complete"].sum())

    unit.value = "customer"                      # per master customer: distinct customers
    assert check(in_ri, "customer")[0] == in_ri.loc[in_ri["window_complete"], "customer_id"].nunique()
    assert "按主数据客户计" in screen.figures()[0]["layout"]["title"]["text"]

    # a rep who never worked region r: nothing to show, and the analyst is told so
    other = sorted(set(progress["rep_id"].dropna()) - set(in_r["rep_id"].dropna()))
    assert other, "demo: every rep has deals in the largest region"
    capsys.readouterr()
    rep.value = other[0]
    _no_errors(screen)
    assert screen.shown() == [] and "所选范围内没有商机" in capsys.readouterr().out

    # a rep whose deals are all younger than the window: no funnel (no complete cohort), the trend only,
    # every month hollow
    done = progress.groupby("rep_id")["window_complete"].any()
    fresh = sorted(done[~done].index)
    assert fresh, "demo: some rep has only recent deals"
    region.value = industry.value = ALL_ZH
    capsys.readouterr()
    rep.value = fresh[0]
    _no_errors(screen)
    assert "所选范围内的商机窗口期均未结束" in capsys.readouterr().out
    (trend,) = screen.figures()
    (line,) = trend["data"]
    mine = progress[progress["rep_id"] == fresh[0]]
    assert list(line["x"]) == sorted(mine["created_at"].dt.strftime("%Y-%m").unique())
    assert set(line["marker"]["symbol"]) == {"circle-open"}

    for dd in (region, industry, rep):
        dd.value = ALL_ZH
    unit.value = "opportunity"
    assert check(progress) == everything


# --------------------------------------------------------------------------- 05: reweight_widget

def _tier_counts(table_fig: dict) -> dict[str, int]:
    """Tier label -> customers, read from the tier table figure."""
    (tbl,) = table_fig["data"]
    labels, customers = tbl["cells"]["values"][:2]
    return {lab: int(str(n).replace(",", "")) for lab, n in zip(labels, customers, strict=True)}


def test_reweight_widget_rescores_with_the_slider_weights(demo_con, screen, capsys):
    from crmlib.charts import pyramid as cp

    params = pm.load_params()                    # as notebooks/05_pyramid.ipynb
    as_of = resolve_as_of(demo_con, None)
    ind = pm.indicators_from_db(demo_con, as_of, params)
    report = pm.tier_table(pm.score(ind, params), ind)

    def want(table: pd.DataFrame) -> dict[str, int]:
        return {cp.tier_label(t, "zh"): int(n) for t, n in zip(table["tier"], table["customers"], strict=True)}

    cp.reweight_widget(ind, params, "zh", as_of=as_of)
    _no_errors(screen)
    box = screen.widget()
    sliders = dict(zip(pm.FAMILIES, box.children[:-1], strict=True))
    assert [s.description for s in sliders.values()] == [pm.LABELS[f]["zh"] for f in pm.FAMILIES]

    # untouched, the sliders hold the weighting of params/value_model.yaml (manual: each family's share
    # of the indicator weights scored) and the pyramid is the report's
    scored_cols = pm.weights(ind, params).index
    fam_sum = {f: sum(params.indicators[c].weight for c in scored_cols if params.indicators[c].family == f)
               for f in pm.FAMILIES}
    total = sum(fam_sum.values())
    assert {f: s.value for f, s in sliders.items()} == pytest.approx({f: v / total for f, v in fam_sum.items()})
    pyramid, table = screen.figures()
    assert _tier_counts(table) == want(report)
    assert pyramid["layout"]["title"]["text"] == f"客户价值金字塔（{as_of.isoformat()}）"
    assert [a["text"] for a in pyramid["layout"]["annotations"]] == [
        a.text for a in cp.pyramid_figure(report, "zh", as_of.isoformat()).layout.annotations]

    # all weight on the transaction family
    for f in ("finance", "contact", "profile"):
        sliders[f].value = 0.0
    sliders["transaction"].value = 1.0
    _no_errors(screen)
    only = {"transaction": 1.0, "finance": 0.0, "contact": 0.0, "profile": 0.0}
    direct = pm.tier_table(pm.score(ind, params, family_weights=only), ind)
    shown = _tier_counts(screen.figures()[1])
    assert shown == want(direct) and shown != want(report)
    assert sum(shown.values()) == len(ind)

    capsys.readouterr()
    sliders["transaction"].value = 0.0           # nothing left to weigh: a message, no figures
    _no_errors(screen)
    assert screen.figures() == [] and "请至少给一个维度设置权重" in capsys.readouterr().out


# ------------------------------------------------------------- the notebooks with interactive=True

def _html_figure(html: str) -> dict:
    """data and layout of a figure drawn by plotly's ``notebook`` renderer (``Plotly.newPlot(id, data,
    layout, config)`` in a script)."""
    dec = json.JSONDecoder()
    i = html.index("Plotly.newPlot(") + len("Plotly.newPlot(")
    parts = []
    for _ in range(3):
        while html[i] in " \t\r\n,":
            i += 1
        obj, i = dec.raw_decode(html, i)
        parts.append(obj)
    return {"data": parts[1], "layout": parts[2]}


def _plots(outputs) -> list[dict]:
    """The plotly figures among the outputs, in order."""
    return [_html_figure(h) for h in _htmls(outputs) if "Plotly.newPlot(" in h]


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _text(cell) -> str:
    return "".join("".join(o.get("text", "")) for o in cell["outputs"] if o["output_type"] == "stream")


def _htmls(outputs) -> list[str]:
    """HTML outputs, leaving out plotly.js itself (embedded once, before the notebook's first figure)."""
    return [h for h in ("".join(o["data"]["text/html"]) for o in outputs
                        if o["output_type"] in ("display_data", "execute_result") and "text/html" in o.get("data", {}))
            if "window.Plotly = Plotly" not in h]


class Executed:
    """An executed notebook: its cells and the saved state of its widgets."""

    def __init__(self, path: Path):
        self.nb = json.loads(path.read_text(encoding="utf-8"))
        self.state = self.nb["metadata"].get("widgets", {}).get(
            "application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def cell(self, startswith: str) -> dict:
        (c,) = [c for c in self.nb["cells"] if c["cell_type"] == "code" and _source(c).startswith(startswith)]
        return c

    def models(self, name: str) -> list[dict]:
        return [m["state"] for m in self.state.values() if m["model_name"] == name]

    def output_widget(self) -> list[dict]:
        (out,) = self.models("OutputModel")
        return out["outputs"]

    def widget_errors(self) -> list[str]:
        return [f"{o.get('ename')}: {o.get('evalue')}" for m in self.models("OutputModel")
                for o in m.get("outputs", []) if o["output_type"] == "error"]


def _table_rows(html: str) -> int:
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    return body.count("<tr")


def test_analysis_notebooks_run_interactive(demo_resolved, crm_home):
    """All five analysis notebooks, interactive=True, on the demo database (about 50 s on 2 cores)."""
    from crmlib import report

    out = crm_home / "executed"
    out.mkdir()
    names = ["01_master.ipynb", "02_quality.ipynb", "03_segments.ipynb", "04_funnel.ipynb", "05_pyramid.ipynb"]
    params = {"as_of": None, "lang": "zh", "db_path": str(demo_resolved / "crm.duckdb"),
              "truth_dir": str(demo_resolved / "truth"), "interactive": True}
    seconds = {}
    for name in names:             # one at a time: see the module docstring
        t0 = time.perf_counter()
        report.run_notebook(REPO / "notebooks" / name, out / name, params, "crm", timeout=120)
        seconds[name] = round(time.perf_counter() - t0, 1)
    print("seconds per notebook:", seconds)
    nbs = {n[:2]: Executed(out / n) for n in names}
    for n, ex in nbs.items():
        assert not ex.widget_errors(), f"{n}: error inside a widget: {ex.widget_errors()}"
        assert ex.nb["metadata"]["papermill"]["parameters"]["interactive"] is True

    # 01: one row of buttons per queued pair, at most 20
    nb = nbs["01"]
    queued = int(re.search(r"(\d+) pairs to review", _text(nb.cell("queue = "))).group(1))
    assert len(nb.models("ButtonModel")) == 2 * min(20, queued) and queued > 0
    assert len(nb.models("HBoxModel")) == min(20, queued)

    # 02: interact(show, source=...) ran with "*": the first 30 rows of the whole fix list
    nb = nbs["02"]
    n_rows = int(re.search(r"(\d+) 项 / rows", "".join(
        "".join(o["data"]["text/markdown"]) for o in nb.cell("fix = rep.fixlist")["outputs"]
        if "text/markdown" in o.get("data", {}))).group(1))
    (dropdown,) = nb.models("DropdownModel")
    assert dropdown["_options_labels"][0] == "*" and dropdown["index"] == 0
    (table,) = _htmls(nb.output_widget())
    assert _table_rows(table) == min(30, n_rows) and n_rows > 0

    # 03: interact(view, region, industry, rep) with "(全部)": stage counts, RFM grid, all slipping customers
    nb = nbs["03"]
    slipping = int(re.search(r"slipping away: (\d+) customers", _text(nb.cell("slip = "))).group(1))
    assert sorted(d["description"] for d in nb.models("DropdownModel")) == ["industry", "region", "rep"]
    assert all(d["_options_labels"][0] == "(全部)" and d["index"] == 0 for d in nb.models("DropdownModel"))
    shown = _htmls(nb.output_widget())
    assert len(shown) == 3 and all("Plotly.newPlot(" in h for h in shown[:2])
    (static_stages,) = _plots(nb.cell("stages = ")["outputs"])
    assert _html_figure(shown[0])["data"] == static_stages["data"], "unfiltered = the stage counts above"
    assert (_table_rows(shown[2]) if "<tbody>" in shown[2] else 0) == slipping

    # 04: the filter widget starts from the report's funnel (cell "conv = ...") and conversion trend
    nb = nbs["04"]
    funnel, trend = _plots(nb.output_widget())
    (static_funnel,) = _plots(nb.cell("conv = ")["outputs"])
    static_trend = _plots(nb.cell("trend = ")["outputs"])[0]
    assert funnel["data"] == static_funnel["data"] and trend["data"] == static_trend["data"]

    # 05: the untouched sliders show the report's pyramid, with its date, and its tier table
    nb = nbs["05"]
    pyramid, table = _plots(nb.output_widget())
    static_pyramid, static_table = _plots(nb.cell("cp.pyramid_figure(")["outputs"])
    assert pyramid["data"] == static_pyramid["data"] and table["data"] == static_table["data"]
    assert pyramid["layout"]["title"]["text"] == static_pyramid["layout"]["title"]["text"]
    assert len(nb.models("FloatSliderModel")) == 4
