"""The reps' weekly 客户信息登记表 workbooks (xlsx), written as reps really fill them in."""
from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
from openpyxl.utils import get_column_letter

from . import catalog as cat
from . import names as nm
from .events import KEY, cust_dict
from .world import CITIES, S_VISITS, day_to_date, rng_for

CANON = ["report_date", "visit_date", "customer_name", "contact_name", "contact_title", "phone", "email", "province",
         "city", "address", "industry", "uscc", "project", "est_amount", "stage", "notes", "rep_name"]
# template versions: header wording per canonical column (None = column absent in that version)
TEMPLATES = {
    "v1": ["填报日期", "拜访日期", "客户名称", "联系人", "职务", "联系电话", None, "省份", "城市", "地址", "行业",
           None, "项目名称", "预计金额(万元)", "项目阶段", "备注", "销售代表"],
    "v2": ["日期", "走访日期", "客户单位", "联系人姓名", "职位", "电话", "邮箱", "省", "市", "详细地址", "所属行业",
           "信用代码", "项目", "预计金额（万元）", "阶段", "情况说明", "填表人"],
    "v3": ["报告日期", "拜访时间", "单位名称", "客户联系人", "联系人职务", "手机/电话", "E-mail", "所在省份", "所在城市",
           "通讯地址", "行业类别", "统一社会信用代码", "商机/项目", "金额(万元)", "销售阶段", "备注说明", "业务员"],
}
HABIT = {  # how each recording habit fills the sheet
    "laptop": dict(send=0.98, messy=0.45, typo=0.02, junk=0.01, bad_phone=0.02, bad_date=0.003, phone=0.95,
                   email=0.5, uscc=0.45, industry=0.8, address=0.5, wrong_city=0.01),
    "diary": dict(send=0.92, messy=0.7, typo=0.06, junk=0.02, bad_phone=0.05, bad_date=0.008, phone=0.8,
                  email=0.15, uscc=0.15, industry=0.5, address=0.2, wrong_city=0.02),
    "none": dict(send=0.6, messy=0.9, typo=0.10, junk=0.06, bad_phone=0.10, bad_date=0.02, phone=0.5,
                 email=0.02, uscc=0.03, industry=0.2, address=0.05, wrong_city=0.04),
}
NOTES = ["初次拜访，了解需求", "交流{pl}方案", "客户反馈价格偏高", "约下周产品演示", "已提交报价单", "客户关注售后服务",
         "技术交流", "陪同领导拜访", "催收货款", "", "", ""]
WEEKDAY = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
FIXED_TS = "2026-01-01T00:00:00Z"


FIXED_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


class _FixedZip(zipfile.ZipFile):
    """Zip members get a fixed timestamp and mode, so the same content gives the same bytes."""

    def writestr(self, zinfo_or_arcname, data, compress_type=None, compresslevel=None):
        if not isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            zi = zipfile.ZipInfo(str(zinfo_or_arcname), date_time=FIXED_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            zinfo_or_arcname = zi
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)


def _xlsx_writer():
    """openpyxl's ExcelWriter writing worksheets to memory (no temp files) into a _FixedZip."""
    from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
    from openpyxl.worksheet._writer import WorksheetWriter
    from openpyxl.writer.excel import ExcelWriter

    class _Writer(ExcelWriter):
        def write_worksheet(self, ws):
            ws._drawing = SpreadsheetDrawing()
            ws._drawing.charts = ws._charts
            ws._drawing.images = ws._images
            buf = io.BytesIO()
            writer = WorksheetWriter(ws, out=buf)
            writer.write()
            ws._rels = writer._rels
            self._archive.writestr(ws.path[1:], buf.getvalue())
            self.manifest.append(ws)

    return _Writer


_WRITER = None


def _deterministic_xlsx(wb: openpyxl.Workbook, path: Path, stamp: dt.datetime):
    """Save with fixed zip timestamps and document dates (wb.save would stamp the current time)."""
    global _WRITER
    wb.properties.created = stamp
    wb.properties.modified = stamp
    if _WRITER is None:
        _WRITER = _xlsx_writer()
    buf = io.BytesIO()
    _WRITER(wb, _FixedZip(buf, "w", zipfile.ZIP_DEFLATED)).save()
    path.write_bytes(buf.getvalue())


class SalesContext:
    """Per-position customer lists and open-opportunity lookups, built once per run."""

    def __init__(self, w):
        self.w = w
        cust = w.cust
        self.by_pos: dict[int, np.ndarray] = {}
        pos = cust["pos"].to_numpy()
        keyscope = cust["scope"].to_numpy() == KEY
        known = cust["kind"].to_numpy() != "prospect"
        for p in np.unique(pos):
            self.by_pos[int(p)] = np.flatnonzero((pos == p) & known)
        self.keyscope = keyscope
        self.prospects_by_region: dict[str, np.ndarray] = {}
        reg = cust["region"].to_numpy()
        for r in cat.KEY_QUOTA:
            self.prospects_by_region[r] = np.flatnonzero((reg == r) & ~known)
        o = w.opps
        self.opps_by_cust: dict[int, list] = {}
        for r in o[["cust", "created", "closed", "opp_name", "amount", "opp_id"]].itertuples(index=False):
            self.opps_by_cust.setdefault(int(r.cust), []).append(r)
        st = w.stages
        self.stage_hist: dict[str, list] = {}
        for oid, s, d in zip(st["opp_id"], st["stage"], st["day"], strict=False):
            self.stage_hist.setdefault(oid, []).append((d, s))


def visits_for(ctx: SalesContext, rep, rep_ord: int, mon: int, lo: int, hi: int):
    """Visits of one rep in the week starting ``mon`` (days), restricted to (lo, hi]."""
    w = ctx.w
    rng = rng_for(w.seed, S_VISITS, rep_ord, mon // 7)
    hb = HABIT[rep.habit]
    if rng.random() > hb["send"]:
        return [], rng
    cust = w.cust
    mine = ctx.by_pos.get(int(rep.pos), np.zeros(0, int))
    pot = cust["potential_at"].to_numpy()[mine]
    churn = cust["churn_at"].to_numpy()[mine]
    mine = mine[(pot <= mon + 6) & (churn > mon - 60)]
    lam = np.where(ctx.keyscope[mine], 2.3 * 7 / 30.4, 0.08)
    k = rng.poisson(lam)
    vis = list(np.repeat(mine, k))
    pros = ctx.prospects_by_region.get(rep.region, np.zeros(0, int))
    fc = cust["first_contact"].to_numpy()
    pros = pros[(fc[pros] <= mon + 6) & (fc[pros] > mon - 120)] if len(pros) else pros
    if len(pros):
        vis += list(rng.choice(pros, min(len(pros), int(rng.poisson(0.5)))))
    days = [mon + int(d) for d in rng.choice([0, 1, 2, 3, 4, 4, 5], len(vis))] if vis else []
    items = sorted(zip(days, range(len(vis)), vis, strict=False))
    items = [(d, c) for d, _, c in items if lo < d <= hi and rep.hired <= d < rep.left]
    return items, rng


def make_rows(ctx: SalesContext, rep, items, rng):
    """Row values (canonical order) + truth (cust idx, junk, kinds, errors) for one workbook."""
    w = ctx.w
    hb = HABIT[rep.habit]
    rows = []
    for d, c in items:
        row = w.crec[int(c)]
        cd = cust_dict(row)
        kinds, errs = [], []
        name = nm.variant(rng, cd, hb["messy"])
        u = rng.random(16)
        if u[0] < hb["typo"]:
            t = nm.typo(rng, name)
            if t != name:
                kinds.append("name_typo")
                errs.append(("customer_name", "name_typo", row["name"], t))
                name = t
        person = row["people"][int(rng.integers(3))]
        phone = ""
        if u[1] < hb["phone"]:
            phone = nm.format_phone(rng, person[2] if u[2] < 0.8 else row["phone"], rng.random())
            if u[3] < hb["bad_phone"]:
                bad = nm.bad_phone(rng, phone)
                kinds.append("wrong_phone")
                errs.append(("phone", "wrong_phone", phone, bad))
                phone = bad
        city = CITIES[row["city"]]
        city_w = city.city if u[4] < 0.6 else city.short
        if u[5] < hb["wrong_city"]:
            others = [x for x in CITIES.values() if x.province != city.province]
            wc = others[int(rng.integers(len(others)))]
            kinds.append("wrong_city")
            errs.append(("city", "wrong_city", city.city, wc.city))
            city_w = wc.city
        uscc = ""
        if u[6] < hb["uscc"]:
            uscc = row["uscc"]
            if u[7] < 0.08:
                uscc = nm.corrupt_uscc(rng, uscc)
                kinds.append("uscc_bad_check")
                errs.append(("uscc", "uscc_bad_check", row["uscc"], uscc))
        # project: an opportunity open on the visit day
        proj, amt, stage = "", None, ""
        for o in ctx.opps_by_cust.get(int(c), []):
            if o.created <= d < o.closed:
                proj, amt = o.opp_name, float(o.amount)
                hist = [s for dd, s in ctx.stage_hist[o.opp_id] if dd <= d]
                stage = hist[-1] if hist else ""
                break
        amt_w = amt
        if amt is not None and u[8] < 0.002:
            amt_w = -amt
            kinds.append("negative_amount")
            errs.append(("est_amount", "negative_amount", f"{amt}", f"{-amt}"))
        elif amt is not None and u[8] < 0.1:
            amt_w = f"约{amt:g}万" if u[9] < 0.5 else f"{amt:g}万元"
        report = d + (0 if rep.habit != "diary" or u[10] < 0.6 else int(rng.integers(1, 3)))
        visit = d
        visit_w = day_to_date(visit)
        if u[11] < hb["bad_date"]:
            vd = day_to_date(visit)
            bad = (f"{vd.year}-{vd.month:02d}-{31 if vd.month in (2, 4, 6, 9, 11) else 32}" if u[12] < 0.5 else
                   day_to_date(visit + 365 * int(rng.integers(1, 3))))
            kinds.append("future_or_impossible_date")
            errs.append(("visit_date", "future_or_impossible_date", vd.isoformat(), str(bad)))
            visit_w = bad
        rows.append(dict(
            report_date=day_to_date(report), visit_date=visit_w, customer_name=name,
            contact_name=person[0] if u[13] < 0.9 else person[0][0] + "总", contact_title=person[1] if u[14] < 0.7 else "",
            phone=phone, email=(f"{''.join(rng.choice(list('abcdefghjkmnprstwxyz'), 5))}@{row['domain'] or 'qq.com'}"
                                if u[15] < hb["email"] else ""),
            province=row["province"] if rng.random() < 0.7 else "", city=city_w,
            address=(f"{city.city}{cat.ROADS[int(rng.integers(len(cat.ROADS)))]}{int(rng.integers(1, 999))}号"
                     if rng.random() < hb["address"] else ""),
            industry=row["industry"] if rng.random() < hb["industry"] else "", uscc=uscc, project=proj,
            est_amount=amt_w, stage=stage,
            notes=NOTES[int(rng.integers(len(NOTES)))].format(pl=cat.PRODUCT_LINES[int(rng.integers(6))]),
            rep_name=rep.rep_name if rng.random() < 0.8 else "",
            _cust=int(c), _junk=False, _kinds=kinds, _errs=errs))
    # junk rows: tests, placeholders, a row with no name
    n_junk = int(rng.binomial(max(len(rows), 1), hb["junk"]))
    for _ in range(n_junk):
        d = items[int(rng.integers(len(items)))][0] if items else None
        junk = cat.JUNK_NAMES[int(rng.integers(len(cat.JUNK_NAMES)))]
        r = dict.fromkeys(CANON, "")
        r.update(report_date=day_to_date(d) if d is not None else "", visit_date=day_to_date(d) if d is not None else "",
                 customer_name=junk, contact_name="" if rng.random() < 0.5 else nm.person_name(rng),
                 notes="测试" if junk.startswith("测试") else "", rep_name=rep.rep_name, est_amount=None,
                 _cust=-1, _junk=True, _kinds=["junk_name"], _errs=[("customer_name", "junk_name", "", junk)])
        rows.insert(int(rng.integers(len(rows) + 1)), r)
    return rows


def _text_date(d: dt.date, fmt: int) -> str:
    """Dates typed as text, the ways reps type them."""
    return [f"{d:%Y/%m/%d}", f"{d:%Y.%m.%d}", f"{d.month}月{d.day}日", f"{d.year}年{d.month}月{d.day}日"][fmt]


def write_workbook(path: Path, rep, week_label: str, rows: list[dict], rng, stamp: dt.datetime):
    """Lay the rows out as this rep's template does; returns [(sheet, excel_row, row dict)]."""
    lrng = rng_for(0, 99, int(rep.rep_id[1:]))  # layout habits belong to the rep, not to the week
    version = ["v1", "v2", "v3"][int(lrng.integers(3))]
    title = lrng.random() < 0.5
    info = title and lrng.random() < 0.5
    merge_dates = lrng.random() < 0.25
    per_day = lrng.random() < 0.3
    text_dates = lrng.random() < 0.3
    date_fmt = int(lrng.integers(4))
    manual = version == "v3" and lrng.random() < 0.4
    headers = TEMPLATES[version]
    cols = [(i, h) for i, h in enumerate(headers) if h is not None]
    # an error drawn for a column this template does not have (a mistyped credit code in a v1 sheet) never
    # reaches the file: it is not part of the truth
    absent = {CANON[i] for i, h in enumerate(headers) if h is None}
    for r in rows:
        if any(e[0] in absent for e in r["_errs"]):
            r["_errs"] = [e for e in r["_errs"] if e[0] not in absent]
            r["_kinds"] = [e[1] for e in r["_errs"]]
    wb = openpyxl.Workbook()
    wb.properties.creator = rep.rep_name
    wb.properties.created = stamp
    wb.properties.modified = stamp
    ws0 = wb.active
    sheets: list[tuple[str, list[dict]]] = []
    if per_day:
        by_day: dict[str, list[dict]] = {}
        for r in rows:
            vd = r["report_date"]
            key = (WEEKDAY[vd.weekday()] if lrng.random() < 2 else "") if isinstance(vd, dt.date) else "其他"
            if isinstance(vd, dt.date) and version != "v1":
                key = f"{vd.month}-{vd.day}"
            by_day.setdefault(key, []).append(r)
        sheets = list(by_day.items()) or [("Sheet1", [])]
    else:
        sheets = [("客户信息登记表" if version != "v1" else "Sheet1", rows)]
    placed = []
    first = True
    if manual:
        ws0.title = "填写说明"
        ws0.append(["填写说明"])
        ws0.append(["1. 每日拜访后当天填写，日清日结；2. 客户名称请填写营业执照上的全称；3. 金额单位为万元。"])
        first = False
    for sname, srows in sheets:
        ws = ws0 if first else wb.create_sheet()
        first = False
        ws.title = sname
        r0 = 1
        if title:
            ws.cell(1, 1, "客户信息登记表（日清日结）")
            ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(cols))
            r0 = 2
            if info:
                ws.cell(2, 1, f"填报人：{rep.rep_name}    区域：{rep.region}    周次：{week_label}")
                ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=len(cols))
                r0 = 3
        for j, (_, h) in enumerate(cols, start=1):
            ws.cell(r0, j, h)
        excel_row = r0
        prev_date, run_start = None, None
        date_col = [j for j, (i, _) in enumerate(cols, start=1) if i == 1][0]
        for r in srows:
            excel_row += 1
            for j, (i, _) in enumerate(cols, start=1):
                v = r[CANON[i]]
                if isinstance(v, dt.date):
                    v = _text_date(v, date_fmt) if text_dates else dt.datetime(v.year, v.month, v.day)
                if v is None or v == "":
                    continue
                cell = ws.cell(excel_row, j, v)
                if isinstance(v, dt.datetime):
                    cell.number_format = "yyyy-mm-dd"
            placed.append((sname, excel_row, r))
            vd = r["visit_date"]
            if merge_dates and vd == prev_date and isinstance(vd, dt.date) and not r["_junk"]:
                ws.cell(excel_row, date_col).value = None
                if run_start is not None:
                    try:
                        ws.unmerge_cells(start_row=run_start, start_column=date_col, end_row=excel_row - 1,
                                         end_column=date_col)
                    except (KeyError, ValueError):
                        pass
                ws.merge_cells(start_row=run_start, start_column=date_col, end_row=excel_row, end_column=date_col)
            else:
                run_start = excel_row
                prev_date = vd if not r["_junk"] else None
        for j in range(1, len(cols) + 1):
            ws.column_dimensions[get_column_letter(j)].width = 14
    _deterministic_xlsx(wb, path, stamp)
    return placed
