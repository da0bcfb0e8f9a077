"""The weekly run: load → resolve → analysis notebooks → one HTML for managers, archived per ISO week.

Failure safety: everything is built aside and swapped in at the end. The database is copied to
``crm.building.duckdb`` and loaded/resolved there; the report is built in ``reports/.build-<week>``.
Only when every step succeeded are both renamed into place (``os.replace``, atomic on one file system),
so a failing run leaves the previous report and database exactly as they were.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from . import paths
from .asof import parse as parse_date
from .errors import MissingData, UserError, missing_data_kinds
from .params import Params
from .params import load as load_params

log = logging.getLogger("crm.weekly")


class NotebookParameters(Params):
    as_of: str | None = None
    lang: str = "zh"
    db_path: str = "data/curated/crm.duckdb"
    truth_dir: str = "data/demo_truth"
    interactive: bool = False

    @field_validator("as_of", mode="before")
    @classmethod
    def _date_text(cls, v):
        # YAML reads an unquoted 2026-11-22 (or 2026-11-22 10:00) as a date; the notebooks take it as text
        return parse_date(v).isoformat() if isinstance(v, dt.date) else v


class WeeklyConfig(Params):
    kernel: str = "crm"
    parallel: int = Field(2, ge=1, le=16)
    notebooks: list[str] = []
    report_notebook: str = "00_weekly_report.ipynb"
    cell_timeout: int = 600
    parameters: NotebookParameters = NotebookParameters()


def iso_week(day: dt.date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


@dataclass
class StepTimer:
    steps: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        log.info("step %s ...", name)
        result = fn(*args, **kwargs)
        self.steps[name] = round(time.perf_counter() - t0, 2)
        log.info("step %s done in %.1f s", name, self.steps[name])
        return result


# --------------------------------------------------------------------------------------------------
# notebooks

def run_notebook(src: Path, dst: Path, parameters: dict[str, Any], kernel: str, timeout: int,
                 km=None) -> None:
    """Execute ``src`` into ``dst`` with papermill (explicit kernel, working directory = project root).

    Runs in this process (several may run at once from :func:`run_notebooks`' threads; papermill's own
    import costs ~2 CPU-s, paid once). papermill's ``cwd`` is a process-wide ``chdir`` that threads would
    race on, so :func:`run_notebooks` changes into the project root once and each call passes no ``cwd``.
    ``km``: a kernel already started (and warmed, :mod:`crmlib.kernels`) for this notebook; it is shut
    down afterwards.
    """
    import papermill as pm

    root = paths.root()
    cwd = None if Path.cwd().resolve() == root.resolve() else str(root)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    where = str(src.relative_to(root)) if src.is_relative_to(root) else str(src)
    from .kernels import KERNEL_ARGS, SlicedKernelManager, shutdown

    try:
        pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name=kernel, cwd=cwd,
                            progress_bar=False, execution_timeout=timeout, km=km,
                            kernel_manager_class=SlicedKernelManager, extra_arguments=list(KERNEL_ARGS))
    except Exception as exc:
        error = _notebook_error(dst)
        failure = error and f"cell {error[0]}: {error[1]}: {error[2]}"
        if error and error[1] in missing_data_kinds():
            # the analysis found none of its data (no orders loaded): the run goes on without it
            raise MissingData(f"notebook stopped in {failure}", file=where) from None
        if failure:
            raise UserError(f"notebook failed in {failure}", file=where,
                            hint="the executed notebooks of the failed run are kept in reports/.failed-<week>/"
                            ) from None
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise UserError(f"could not run notebook: {type(exc).__name__}: {detail}", file=where,
                        hint="run `make setup` to (re)register the kernel") from None
    finally:
        if km is not None:
            shutdown(km)


def _notebook_error(executed: Path) -> tuple[Any, str, str] | None:
    """(cell number, exception name, message) of the first error output in an executed notebook, if any."""
    try:
        nb = json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return cell.get("execution_count"), str(out.get("ename")), str(out.get("evalue"))
    return None


def export_html(nb_path: Path, html_path: Path, title: str, lang: str = "zh") -> None:
    """HTML without code or prompts, nothing fetched online (template ``crmlib/templates/crm_report``);
    plotly.js is already embedded once by the `notebook` renderer."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(nb_path), as_version=4)
    exporter = HTMLExporter(
        template_name="crm_report", extra_template_basedirs=[str(Path(__file__).parent / "templates")],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        language_code="zh-CN" if lang == "zh" else "en",
    )
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    html_path.write_text(strip_online_scripts(body), encoding="utf-8")


_ONLINE_SCRIPT = re.compile(r"<script[^>]*\ssrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)


def strip_online_scripts(body: str) -> str:
    """Drop ``<script src="https://...">`` tags: plotly's notebook renderer adds MathJax from a CDN to
    every figure (hard-coded), which a report read offline must not try to fetch; no chart uses LaTeX."""
    return _ONLINE_SCRIPT.sub("", body)


def run_notebooks(jobs: list[tuple[str, dict]], nb_dir: Path, out_dir: Path, cfg: WeeklyConfig,
                  timer: StepTimer, meanwhile=None, then: list[tuple[str, dict]] | None = None,
                  kernels=None) -> dict[str, str]:
    """Run notebooks ``cfg.parallel`` at a time (each in its own kernel, taken from ``kernels`` — a
    :class:`crmlib.kernels.WarmKernels` — when given). ``meanwhile()`` runs in this thread while they
    start; the ``then`` jobs are queued after it returns. The first failure cancels whatever has not
    started and is raised, except an analysis that stopped for want of its data (:class:`MissingData`):
    returned, notebook name → message, its executed notebook kept beside the others."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    stopped: dict[str, str] = {}

    def one(name, params):
        km = kernels.take(name) if kernels is not None else None
        try:
            run_notebook(nb_dir / name, out_dir / name, params, cfg.kernel, cfg.cell_timeout, km=km)
        except MissingData as exc:
            stopped[name] = str(exc)

    def submit(pool, name, params):
        return pool.submit(timer.run, f"notebook {name}", one, name, params)

    with _working_dir(paths.root()), ThreadPoolExecutor(max_workers=cfg.parallel) as pool:
        futures = [submit(pool, name, params) for name, params in jobs]
        try:
            if meanwhile is not None:
                meanwhile()
            futures += [submit(pool, name, params) for name, params in then or []]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                raise failed[0].exception()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return stopped


@contextlib.contextmanager
def _working_dir(path: Path):
    """chdir for the duration (papermill's kernels start in the process's working directory)."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# --------------------------------------------------------------------------------------------------
# the run

def _run_date(db: Path, given: dt.date | None, shown_as: Path | None = None) -> dt.date:
    """The week's date: ``given`` (logged with :func:`crmlib.asof.after_data_warning` when it lies long after
    the records; the run goes on; refused before them), else :func:`crmlib.asof.newest_data_date` of the
    database, today while it holds no dated records. ``shown_as``: the database named in messages (the live
    one, not the copy the run builds)."""
    from . import db as dbmod
    from .asof import after_data_warning, check_not_before_data, newest_data_date

    con = dbmod.connect(db, read_only=True)
    try:
        if given is None:
            return newest_data_date(con) or dt.date.today()
        check_not_before_data(con, given, "the report date", shown_as=str(shown_as or db))
        note = after_data_warning(con, given)
    finally:
        con.close()
    if note:
        log.warning(note)
    return given


def weekly(as_of: str | dt.date | None = None, params_path: str | Path | None = None,
           pdf: bool = False) -> Path:
    """Run the whole week; returns the report directory."""
    cfg = load_params(WeeklyConfig, params_path or "weekly")
    root = paths.root()
    nb_params = cfg.parameters.model_dump()
    from .i18n import check_lang
    check_lang(nb_params["lang"])
    as_of_date = parse_date(as_of, "--as-of") or parse_date(nb_params["as_of"], "as_of in params")

    live_db = (root / nb_params["db_path"]).resolve()
    build_db = live_db.with_name(live_db.stem + ".building.duckdb")
    live_db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (build_db, build_db.with_name(build_db.name + ".wal")):
        stale.unlink(missing_ok=True)
    if live_db.exists():
        shutil.copy2(live_db, build_db)

    timer = StepTimer()
    build_dir: Path | None = None
    week = "unknown"
    from .kernels import WarmKernels

    # kernels start and import while load and resolve keep one core busy (see crmlib/kernels.py)
    kernels = WarmKernels(cfg.kernel, {name: paths.notebooks_dir() / name
                                       for name in [*cfg.notebooks, cfg.report_notebook]}, root)
    try:
        from . import load as load_mod
        from . import master

        loaded = timer.run("load", load_mod.load_all, paths.raw_dir(), build_db, progress=sys.stderr.isatty())
        # a refused file (say, one rep's corrupt sheet) does not stop the managers' report: it is named
        # in the log and in metrics.json, and `crm load` retries it next run
        refused = [f"{f.file}: {f.message}" for f in loaded.refused]
        for name in refused:
            log.warning("load refused %s; the report is built without it", name)
        resolved = timer.run("resolve", master.resolve_db, build_db)
        log.info("resolve: %s customers, matching model %s, %s pairs to review (%s new)", resolved.customers,
                 resolved.stats.get("model_note"), resolved.review_queue, resolved.stats.get("review_new"))

        as_of_date = _run_date(build_db, as_of_date, shown_as=live_db)
        week = iso_week(as_of_date)
        reports = paths.reports_dir()
        build_dir = reports / f".build-{week}-{os.getpid()}"
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)

        params = dict(nb_params, as_of=as_of_date.isoformat(),
                      db_path=os.path.relpath(build_db, root))
        from .metrics import FRAMES_FILE, collect_metrics

        def live(text: str) -> str:   # messages name the database, not the copy the run builds
            return text.replace(str(build_db), str(live_db))

        metrics: dict[str, Any] = {}

        def write_metrics() -> None:
            # this week's segment, funnel and pyramid tables go beside metrics.json for the managers' report
            metrics.update(timer.run("metrics", collect_metrics, build_db, as_of_date, reports,
                                     nb_params["truth_dir"], build_dir / FRAMES_FILE))
            metrics["load"] = {"files_loaded": len(loaded.read), "files_refused": refused}
            for entry in metrics.get("unavailable", {}).values():
                entry["message"] = live(entry["message"])
            _write_json(build_dir / "metrics.json", metrics)

        # analyses start while the metrics are computed; the managers' notebook needs metrics.json
        # (its only extra parameter), so it is queued after them
        report_params = dict(params, metrics_path=os.path.relpath(build_dir / "metrics.json", root))
        try:
            stopped = run_notebooks([(name, params) for name in cfg.notebooks], paths.notebooks_dir(), build_dir,
                                    cfg, timer, meanwhile=write_metrics,
                                    then=[(cfg.report_notebook, report_params)], kernels=kernels)
        finally:
            (build_dir / FRAMES_FILE).unlink(missing_ok=True)   # a hand-over, not part of the report
        stopped = {name: live(why) for name, why in stopped.items()}
        for name, why in stopped.items():
            log.warning("%s stopped for want of data; the report is built without it: %s", name, why)
        if stopped:   # beside the analyses' own `unavailable`: which analysts' notebooks stopped, and where
            metrics["notebooks_stopped"] = stopped
            _write_json(build_dir / "metrics.json", metrics)
        if cfg.report_notebook in stopped:
            raise UserError(f"the managers' report stopped: {stopped[cfg.report_notebook]}")
        report_nb = build_dir / cfg.report_notebook
        title = ("客户信息中心周报 " if nb_params["lang"] == "zh" else "Customer information weekly ") + week
        html = build_dir / f"weekly_report_{week}.html"
        timer.run("export", export_html, report_nb, html, title, nb_params["lang"])
        if pdf:
            from .browser import print_pdf
            timer.run("pdf", print_pdf, html, html.with_suffix(".pdf"))

        (build_dir / "timings.json").write_text(json.dumps(timer.steps, indent=2), encoding="utf-8")
        final = reports / week
        _swap_in(build_dir, final)
        build_dir = None
        if build_db.exists():
            os.replace(build_db, live_db)
        _point_latest(reports, final)
        return final
    except BaseException:
        if build_dir is not None:  # keep what ran, for diagnosis, outside the weeks' folders
            failed = build_dir.with_name(f".failed-{week}")
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(build_dir, failed)
            build_dir = None
            log.error("executed notebooks of the failed run are in %s", failed)
        raise
    finally:
        kernels.close()
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)
        build_db.unlink(missing_ok=True)
        build_db.with_name(build_db.name + ".wal").unlink(missing_ok=True)


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8")


def _swap_in(build_dir: Path, final: Path) -> None:
    """Replace ``final`` by ``build_dir``: rename the old one aside, rename the new one in, delete old."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(build_dir, final)
    shutil.rmtree(old, ignore_errors=True)


_WEEK_DIR = re.compile(r"\d{4}-W\d{2}")


def _point_latest(reports: Path, final: Path) -> None:
    """`reports/latest` → the newest week (by name, so re-running an older week does not steal it).
    Only ISO-week folders count: `reports/` also holds other folders (the browser test's screenshots)."""
    weeks = sorted(p.name for p in reports.iterdir()
                   if p.is_dir() and not p.is_symlink() and _WEEK_DIR.fullmatch(p.name))
    newest = weeks[-1] if weeks else final.name
    tmp = reports / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(newest)
    os.replace(tmp, reports / "latest")


# --------------------------------------------------------------------------------------------------
# CLI

def _cmd_weekly(args) -> int:
    handlers = _log_handlers()
    for h in handlers:
        log.addHandler(h)
    log.setLevel(logging.INFO)
    t0 = time.perf_counter()
    try:
        final = weekly(as_of=args.as_of, params_path=args.params, pdf=args.pdf)
    except UserError as exc:
        log.error("weekly run failed: %s; the previous report and database are unchanged", exc)
        raise
    except Exception:
        log.exception("weekly run failed (bug)")
        raise UserError("the weekly run failed unexpectedly; the previous report and database are "
                        "unchanged", hint=f"details in {_log_path()}") from None
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
    html = sorted(final.glob("weekly_report_*.html"))
    print(f"weekly report: {html[0] if html else final}  ({time.perf_counter() - t0:.0f} s)")
    missing = _sections_without_data(final)
    if missing:
        print(f"without data this week: {missing} (metrics.json `unavailable`; the log says more)")
    return 0


def _sections_without_data(week_dir: Path) -> str:
    """What metrics.json says found no data this week: the analyses (``unavailable``) and the analysts'
    notebooks that stopped (``notebooks_stopped``); "" when everything ran."""
    try:
        doc = json.loads((week_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    parts = [f"{name}: no {entry.get('what', {}).get('en', 'data')}"
             for name, entry in (doc.get("unavailable") or {}).items()]
    if doc.get("notebooks_stopped"):
        parts.append(f"notebooks stopped: {', '.join(sorted(doc['notebooks_stopped']))}")
    return "; ".join(parts)


def _log_path() -> Path:
    return paths.reports_dir() / "weekly.log"


def _log_handlers() -> list[logging.Handler]:
    """Progress to stderr, and everything appended to reports/weekly.log for the scheduler's owner."""
    paths.reports_dir().mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       logging.FileHandler(_log_path(), encoding="utf-8")]
    for h in handlers:
        h.setFormatter(fmt)
    return handlers


def register(sub) -> None:
    p = sub.add_parser("weekly", help="load, resolve, run every analysis and write reports/<ISO week>/")
    p.add_argument("--as-of", help="report date YYYY-MM-DD (default: newest data date)")
    p.add_argument("--params", help="weekly parameter file (default params/weekly.yaml)")
    p.add_argument("--pdf", action="store_true", help="also print the report to PDF (headless Chromium)")
    p.set_defaults(func=_cmd_weekly)
