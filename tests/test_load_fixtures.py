"""Small raw folders for the loader tests (helpers only, no tests here)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import openpyxl

ACCOUNT_COLS = ("account_id,account_name,uscc,industry,scope,region,province,city,address,phone,owner_rep_id,"
                "size,registered_capital,listed,parent_account_id,created_at,updated_at")
CALL_HEADER = "工单号,来电时间,来电类型,客户单位,来电人,来电号码,产品,摘要,坐席"
ORDER_COLS = "order_id,line_no,order_date,erp_customer_id,customer_name,product,qty,amount,cost,returned_amount,rep_id"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def account(aid, name, updated, capital="100", listed="Y", created="2024-01-01"):
    return f"{aid},{name},,金融,大客户及行业客户,华北,北京,北京,,010-1,R01,大,{capital},{listed},,{created},{updated}"


def accounts_csv(raw: Path, name: str, rows: list[str], encoding="utf-8-sig") -> Path:
    return write(raw / "crm" / name, "\n".join([ACCOUNT_COLS, *rows]) + "\n", encoding)


def calls_csv(raw: Path, name: str, rows: list[str], encoding="gbk") -> Path:
    return write(raw / "callcenter" / name, "\r\n".join([CALL_HEADER, *rows]) + "\r\n", encoding)


def orders_csv(raw: Path, name: str, rows: list[str]) -> Path:
    return write(raw / "erp" / name, "\n".join([ORDER_COLS, *rows]) + "\n")


def sales_xlsx(raw: Path, name: str, sheets: dict[str, list[list]], merges: dict[str, list[str]] | None = None):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for r in rows:
            ws.append(r)
        for rng in (merges or {}).get(title, []):
            ws.merge_cells(rng)
    path = raw / "sales_sheets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def standard_sheet():
    """A 客户信息登记表 with a merged title row, a merged customer cell and several date forms."""
    return [
        ["客户信息登记表（2026年第48周）"],
        ["填报日期", "拜访日期", "客户名称", "联系人", "联系电话", "预计金额（万元）", "项目阶段", "备注"],
        [dt.datetime(2026, 11, 23), "11/24", "北京工商银行", "王五", 13800138000, "50万", "商务谈判", "首次拜访"],
        ["2026年11月23日", 46350, None, "赵六", "010-88886666", 12.5, "获得标书", None],
        ["2026/11/23", "2026/13/45", "浙江建行", "钱七", None, "-3", None, "日期写错"],
        [None, None, None, None, None, None, None, None],
        ["2026-11-24", "2026-11-24", "合计", None, None, 62.5, None, None],
    ]


def snapshot(db_path: Path) -> dict:
    """Row count and an order-independent checksum of every table."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]
        return {t: con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {t} t").fetchone()
                for t in tables}
    finally:
        con.close()
