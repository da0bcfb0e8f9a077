"""The data stewards' ranked fix list, written as .xlsx with openpyxl.

Grain: one row per record and field to fix (a record with two problems has two adjacent rows with the
same rank), so each row carries one current and one suggested value. Rows rejected whole at load have no
record; they are listed too, by file and row.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .audit import Audit
from .checks import FIELD_ZH, blank
from .config import QualityParams

COLUMNS = [  # (key, Chinese header, English header, width)
    ("rank", "优先级", "rank", 8),
    ("source", "来源", "source", 10),
    ("file", "文件", "file", 34),
    ("row", "行", "row", 7),
    ("source_key", "记录键", "record key", 30),
    ("field", "字段", "field", 16),
    ("kind", "问题类型", "kind", 22),
    ("reason", "原因", "reason", 52),
    ("value", "当前值", "current value", 28),
    ("suggested", "建议值", "suggested value", 28),
    ("customer_id", "建议主客户编号", "suggested customer id", 16),
    ("customer_name", "建议主客户名称", "suggested customer name", 30),
    ("score", "分值", "score", 8),
]
MASTER_FIELDS = {"uscc": "uscc", "industry": "industry", "province": "province", "city": "city",
                 "name_raw": "name", "region": "region"}


def build_fixlist(audit: Audit, params: QualityParams) -> pd.DataFrame:
    """Issues plus whole-row load rejects, ranked: kind weight + source weight, then customers with more
    records (fixing them helps more), then the record key (stable)."""
    iss = audit.issues.copy()
    rec = audit.records.set_index("record_id")
    master = audit.master.set_index("customer_id") if len(audit.master) else audit.master
    iss["file"] = iss["record_id"].map(rec["_source_file"])
    iss["row"] = iss["record_id"].map(rec["_row"])
    if len(audit.rejects):  # order lines and opportunities are no customer records: their reject has the place
        place = audit.rejects.dropna(subset=["record_id"]).drop_duplicates("record_id").set_index("record_id")
        iss["file"] = iss["file"].fillna(iss["record_id"].map(place["_source_file"]))
        iss["row"] = iss["row"].fillna(iss["record_id"].map(place["_row"]))
    # suggestions the checks did not make: the master's value for that field
    for i, r in iss.iterrows():
        f = MASTER_FIELDS.get(r["field"])
        if blank(r["suggested"]) and f and not blank(r["customer_id"]) and f in master.columns \
                and r["customer_id"] in master.index and r["kind"] != "junk_name":
            v = master.at[r["customer_id"], f]
            if not blank(v) and str(v) != str(r["value"]):
                iss.at[i, "suggested"] = v
    whole = (audit.rejects[~audit.rejects["record_id"].isin(set(iss["record_id"]))] if len(audit.rejects)
             else audit.rejects)
    if len(whole):
        rows = pd.DataFrame({
            "record_id": None, "source": whole["_source_file"].map(lambda p: str(p).split("/")[0]),
            "source_key": None, "customer_id": None, "kind": "load_reject", "field": whole["column"],
            "value": whole["value"], "suggested": None,
            "reason": "导入时被拒收［列 " + whole["column"].astype(str) + "］：" + whole["reason"].astype(str),
            "file": whole["_source_file"], "row": whole["_row"]})
        iss = pd.concat([iss, rows], ignore_index=True)
    n_rec = audit.records.groupby("customer_id").size()
    # a typo that kept a record from matching suggests the customer it should have matched
    if "suggested_customer_id" in iss.columns:
        iss["customer_id"] = iss["suggested_customer_id"].fillna(iss["customer_id"])
    iss["customer_name"] = iss["customer_id"].map(master["name"]) if "name" in master.columns else None
    iss["score"] = (iss["kind"].map(params.kind_weights).fillna(1)
                    + iss["source"].map(params.source_weights).fillna(0)).astype(float)
    iss["_n"] = iss["customer_id"].map(n_rec).fillna(0)
    iss["_key"] = iss["record_id"].fillna(iss["file"].astype(str) + "#" + iss["row"].astype(str))
    # one rank per record: its best-scoring problem decides where it goes
    iss["_rscore"] = iss.groupby("_key")["score"].transform("max")
    iss = iss.sort_values(["_rscore", "_n", "_key", "score", "field"],
                          ascending=[False, False, True, False, True]).reset_index(drop=True)
    iss["rank"] = pd.factorize(iss["_key"])[0] + 1
    iss["row"] = pd.to_numeric(iss["row"], errors="coerce").astype("Int64")
    iss["field"] = iss["field"].map(lambda f: f"{FIELD_ZH.get(f, f)} ({f})" if not blank(f) else f)
    return iss[[c[0] for c in COLUMNS]]


def write_fixlist(fix: pd.DataFrame, path: str | Path, lang: str = "zh") -> Path:
    """Write the fix list: bold headers, column widths, frozen header row and first column, autofilter."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "待修正清单" if lang == "zh" else "fix list"
    ws.append([c[1] if lang == "zh" else c[2] for c in COLUMNS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        cell.alignment = Alignment(vertical="center")
    for row in fix.itertuples(index=False):
        ws.append([None if blank(v) else (v.item() if hasattr(v, "item") else v) for v in row])
    for i, (_, _, _, width) in enumerate(COLUMNS, start=1):
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = width
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = ws.dimensions
    tmp = path.with_name(path.name + ".tmp")
    wb.save(tmp)
    tmp.replace(path)  # a half-written file never replaces last week's list
    return path
