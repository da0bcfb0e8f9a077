"""Demo generator: determinism, error rates from the truth, file shapes and encodings, weekly deltas."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from crmlib.cli import main
from crmlib.demo import generate
from crmlib.demo import names as nm
from crmlib.demo.catalog import JUNK_NAMES, PROVINCES
from crmlib.demo.sales import TEMPLATES

SCALE = 0.1

CONTRACT = {
    "crm/accounts.csv": "account_id,account_name,uscc,industry,scope,region,province,city,address,phone,"
                        "owner_rep_id,size,registered_capital,listed,parent_account_id,created_at,updated_at",
    "crm/contacts.csv": "contact_id,account_id,contact_name,title,mobile,phone,email,updated_at",
    "crm/opportunities.csv": "opp_id,account_id,opp_name,owner_rep_id,product_line,amount,created_at,"
                             "expected_close,current_stage,status,lost_reason,competitor,closed_at,updated_at",
    "crm/opportunity_stages.csv": "opp_id,stage,entered_at",
    "crm/reps.csv": "rep_id,rep_name,region,hired_at,left_at",
    "erp/customers.csv": "erp_customer_id,customer_name,uscc,province,city,address,phone",
    "erp/orders.csv": "order_id,line_no,order_date,erp_customer_id,customer_name,product,qty,amount,cost,"
                      "returned_amount,rep_id",
    "erp/receipts.csv": "receipt_id,order_id,erp_customer_id,invoice_date,due_date,paid_date,amount",
}
ENCODING = {"crm/accounts.csv": "utf-8-sig", "crm/contacts.csv": "utf-8-sig", "crm/opportunities.csv": "utf-8-sig",
            "crm/opportunity_stages.csv": "utf-8-sig", "crm/reps.csv": "utf-8-sig", "erp/customers.csv": "utf-8-sig",
            "erp/orders.csv": "utf-8", "erp/receipts.csv": "utf-8"}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    m = generate(base / "a" / "raw", base / "a" / "truth", seed=42, scale=SCALE)
    return base, m


def read(base: Path, rel: str, **kw) -> pd.DataFrame:
    return pd.read_csv(base / "a" / "raw" / rel, dtype=str, keep_default_na=False, encoding=ENCODING.get(rel, "utf-8"),
                       **kw)


def truth(base: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(base / "a" / "truth" / name, dtype=str, keep_default_na=False)


def test_same_seed_identical_other_seed_differs(demo, tmp_path):
    base, _ = demo
    generate(tmp_path / "b" / "raw", tmp_path / "b" / "truth", seed=42, scale=SCALE)
    assert _digest(base / "a" / "raw") == _digest(tmp_path / "b" / "raw")  # xlsx included
    assert _digest(base / "a" / "truth") == _digest(tmp_path / "b" / "truth")
    generate(tmp_path / "c" / "raw", tmp_path / "c" / "truth", seed=7, scale=SCALE)
    a, c = _digest(base / "a" / "raw"), _digest(tmp_path / "c" / "raw")
    assert a["crm/accounts.csv"] != c["crm/accounts.csv"]
    assert a["erp/orders.csv"] != c["erp/orders.csv"]


def test_error_rates_from_truth(demo):
    base, m = demo
    rec = truth(base, "records.csv")
    acc = rec[rec["source"] == "crm"]
    wrong = ((acc["has_error"] == "1") | (acc["is_junk"] == "1")).mean()
    assert abs(wrong - 0.15) <= 0.02, wrong
    crm = rec[rec["source"].isin(["crm", "crm_contacts"]) & (rec["true_customer_id"] != "")]
    per_cust = crm.groupby("true_customer_id")["has_error"].apply(lambda s: (s == "1").any())
    assert abs(per_cust.mean() - 0.20) <= 0.02, per_cust.mean()
    assert m["error_rates"]["crm_account_records_wrong"] == round(wrong, 4)
    # every CRM account record of the run is in the truth, once
    accounts = read(base, "crm/accounts.csv")
    assert sorted(acc["source_key"]) == sorted(accounts["account_id"])


def test_contract_headers_and_encodings(demo):
    base, _ = demo
    raw = base / "a" / "raw"
    for rel, header in CONTRACT.items():
        data = (raw / rel).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") == (ENCODING[rel] == "utf-8-sig"), rel
        assert data.decode(ENCODING[rel]).split("\n", 1)[0] == header, rel
    calls = sorted((raw / "callcenter").glob("calls_*.csv"))
    tickets = sorted((raw / "service").glob("tickets_*.csv"))
    assert len(calls) >= 104 and len(tickets) >= 100  # two years of weekly extracts
    n_gbk = 0
    for p in calls:
        b = p.read_bytes()
        try:
            text = b.decode("gbk")
            n_gbk += 1
        except UnicodeDecodeError:
            text = b.decode("gb18030")
        assert text.split("\r\n", 1)[0] == "工单号,来电时间,来电类型,客户单位,来电人,来电号码,产品,摘要,坐席"
        with pytest.raises(UnicodeDecodeError):
            b.decode("utf-8") if re.search(rb"[\x80-\xff]", b) else b"\xff".decode("utf-8")
    assert n_gbk >= len(calls) // 2
    for p in tickets:
        b = p.read_bytes()
        assert not b.startswith(b"\xef\xbb\xbf")
        assert b.decode("utf-8").split("\n", 1)[0] == ("ticket_id,customer_name,contact_phone,city,product,serial_no,"
                                                      "opened_at,closed_at,status,satisfaction,station")


def test_xlsx_open_and_headers(demo):
    base, _ = demo
    files = sorted((base / "a" / "raw" / "sales_sheets").glob("*.xlsx"))
    assert files and all(re.fullmatch(r"\d{4}-W\d{2}_R\d{4}\.xlsx", f.name) for f in files)
    weeks = {f.name[:8] for f in files}
    assert len(weeks) == 8  # the 日清日结 template: last 8 weeks only
    wordings = {h for t in TEMPLATES.values() for h in t if h}
    n_rows = 0
    for f in files:
        wb = openpyxl.load_workbook(f)
        found = False
        for ws in wb.worksheets:
            for row in ws.iter_rows(min_row=1, max_row=3, values_only=True):
                if sum(1 for v in row if v in wordings) >= 10:
                    found = True
                    n_rows += ws.max_row
        assert found, f.name
    sales = truth(base, "records.csv").query("source == 'sales'")
    assert len(sales) > 0 and n_rows > len(sales)


def test_libreoffice_opens_xlsx(demo, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        pytest.skip("LibreOffice not on PATH")
    f = sorted((demo[0] / "a" / "raw" / "sales_sheets").glob("*.xlsx"))[0]
    r = subprocess.run([soffice, f"-env:UserInstallation=file://{tmp_path}/lo", "--headless", "--convert-to", "csv",
                        "--outdir", str(tmp_path), str(f)], capture_output=True, timeout=120)
    out = tmp_path / (f.stem + ".csv")
    assert r.returncode == 0 and out.exists(), r.stderr
    assert out.stat().st_size > 50


def test_injected_errors_are_detectable(demo):
    """A simple rule per kind finds (nearly) every injected error: the quality audit can reach recall >= 0.9."""
    base, _ = demo
    err = truth(base, "errors.csv")
    kinds = set(err["kind"])
    assert {"junk_name", "name_typo", "wrong_phone", "uscc_bad_check", "uscc_missing", "wrong_city",
            "wrong_industry", "duplicate_record", "missing_contact", "negative_amount"} <= kinds
    prov_of = {c: p for p, _, _, _, cs in PROVINCES for c, _, _ in cs}
    checks = {
        "junk_name": lambda r: r.written_value in JUNK_NAMES + ["个人", "不详", "未知客户", "无", "散户"],
        "wrong_phone": lambda r: not nm.phone_valid(r.written_value),
        "uscc_bad_check": lambda r: not nm.uscc_valid(r.written_value),
        "uscc_missing": lambda r: r.written_value == "",
        "missing_contact": lambda r: r.written_value == "",
        "wrong_city": lambda r: prov_of[r.written_value] != prov_of[r.true_value],
        "negative_amount": lambda r: float(r.written_value) < 0,
    }
    for kind, ok in checks.items():
        sub = err[err["kind"] == kind]
        recall = sum(ok(r) for r in sub.itertuples()) / max(len(sub), 1)
        assert recall >= 0.9, (kind, recall)
    # wrong industry contradicts the industry the account's name implies (the rule the truth follows)
    acc = read(base, "crm/accounts.csv").set_index("account_id")
    wi = sorted(err.loc[(err["kind"] == "wrong_industry") & (err["source"] == "crm"), "source_key"])
    implied = acc["account_name"].map(nm.infer_industry)
    assert (implied[wi] != acc.loc[wi, "industry"]).mean() >= 0.9
    real = acc[(acc["industry"] != "") & ~acc.index.isin(wi)]
    assert (implied[real.index] == real["industry"]).mean() >= 0.9
    # true customers' USCCs all pass the check; CRM codes without an error too
    cust = truth(base, "customers.csv")
    assert all(nm.uscc_valid(u) for u in cust["uscc"])
    bad = set(err.loc[err["kind"].isin(["uscc_bad_check", "uscc_missing"]) & (err["source"] == "crm"), "source_key"])
    clean = acc[~acc.index.isin(sorted(bad)) & (acc["uscc"] != "")]
    assert all(nm.uscc_valid(u) for u in clean["uscc"])
    assert (acc.loc[~acc.index.isin(sorted(bad)), "uscc"] != "").mean() > 0.97


def test_structure_follows_latent_value(demo):
    base, _ = demo
    cust = truth(base, "customers.csv")
    rec = truth(base, "records.csv")
    erp = rec[rec["source"] == "erp"].set_index("source_key")["true_customer_id"]
    orders = read(base, "erp/orders.csv")
    orders["cid"] = orders["erp_customer_id"].map(erp)
    orders["amount"] = orders["amount"].astype(float).abs()
    rev = orders.groupby("cid")["amount"].sum()
    grp = cust.set_index("true_customer_id")["value_group"]
    by_group = rev.groupby(grp.reindex(rev.index)).mean()
    assert list(by_group.sort_index().values) == sorted(by_group.values)  # more value, more revenue
    top = rev.sort_values(ascending=False)
    share = top.head(int(len(top) * 0.2)).sum() / top.sum()
    assert 0.5 <= share <= 0.85, share
    # hierarchy: parents exist, branches point up one level
    lv = cust.set_index("true_customer_id")["level"]
    kids = cust[cust["parent_id"] != ""]
    assert len(kids) > 0 and kids["parent_id"].isin(cust["true_customer_id"]).mean() > 0.95
    pair = kids[kids["parent_id"].isin(cust["true_customer_id"])]
    assert set(zip(pair["level"], lv[pair["parent_id"]].values, strict=False)) <= {("province", "head"), ("city", "province")}


def test_weekly_delta_adds_only_new_files(demo, tmp_path):
    base, m = demo
    work = tmp_path / "w"
    shutil.copytree(base / "a", work)
    before = _digest(work / "raw")
    m2 = generate(work / "raw", work / "truth", seed=42, scale=SCALE, as_of="2026-11-29")
    after = _digest(work / "raw")
    new = sorted(set(after) - set(before))
    assert all(before[k] == after[k] for k in before)  # nothing rewritten
    assert new and all("2026-W48" in k for k in new)
    assert any(k.startswith("sales_sheets/2026-W48_") for k in new)
    assert {"crm/accounts_2026-W48.csv", "erp/orders_2026-W48.csv", "callcenter/calls_2026-W48.csv"} <= set(new)
    assert m2["as_of_dates"] == ["2026-11-22", "2026-11-29"]
    # the world does not depend on the as-of: a fresh run to 11-29 has the same orders up to 11-22
    fresh = tmp_path / "f"
    generate(fresh / "raw", fresh / "truth", seed=42, scale=SCALE, as_of="2026-11-29")
    o1 = read(base, "erp/orders.csv")
    o2 = pd.read_csv(fresh / "raw" / "erp/orders.csv", dtype=str, keep_default_na=False)
    o2 = o2[o2["order_date"] <= "2026-11-22"]
    assert set(zip(o1["order_id"], o1["line_no"], o1["amount"], strict=False)) == set(zip(o2["order_id"], o2["line_no"], o2["amount"], strict=False))
    with pytest.raises(Exception, match="already generated"):
        generate(work / "raw", work / "truth", seed=42, scale=SCALE, as_of="2026-11-01")


def test_cli(tmp_path, capsys):
    rc = main(["demo-data", "--out", str(tmp_path / "raw"), "--truth", str(tmp_path / "t"), "--scale", "0.03"])
    assert rc == 0
    m = json.loads((tmp_path / "t" / "manifest.json").read_text(encoding="utf-8"))
    assert m["seed"] == 42 and m["as_of_dates"] == ["2026-11-22"]
    assert set(m["conversion_rates"]["by_region"]) >= {"华东", "西南"}
    assert main(["demo-data", "--out", str(tmp_path / "x"), "--truth", str(tmp_path / "y"), "--as-of", "2030-01-01"]) == 2
    assert "outside the simulated world" in capsys.readouterr().err


def test_uscc_check_character():
    assert nm.uscc_valid("91350100M000100Y43")  # a published example code
    assert not nm.uscc_valid("91350100M000100Y44")
    rng = __import__("numpy").random.default_rng(0)
    for _ in range(50):
        code = nm.make_uscc(rng, "ent", "330100")
        assert nm.uscc_valid(code) and not nm.uscc_valid(nm.corrupt_uscc(rng, code))


def test_csv_rows_parse(demo):
    base, _ = demo
    for rel in CONTRACT:
        text = (base / "a" / "raw" / rel).read_text(encoding=ENCODING[rel])
        rows = list(csv.reader(io.StringIO(text)))
        assert len({len(r) for r in rows}) == 1, rel


def test_generated_names_unique_as_registration_requires():
    """Within a city, two generated companies never differ only in legal form; a national group owns its
    trade name (通力集团 / 通力控股集团 are not two groups); when the 75² two-character trade names run out,
    three-character ones are drawn instead of a collision."""
    import numpy as np

    from crmlib.demo.world import _Names

    gen = _Names(np.random.default_rng(0))
    legal = re.compile(r"(股份有限公司|有限责任公司|有限公司)$")
    local = [gen.company("成都", ["软件", "贸易"]) for _ in range(4000)]
    stems = [legal.sub("", n) for n in local]
    assert len(set(stems)) == 4000
    assert len({legal.search(n).group(1) for n in local}) == 3   # every legal form is still drawn
    national = [gen.company("", ["控股集团", "集团"], "有限公司") for _ in range(6000)]
    trade = [re.sub(r"(控股集团|集团)有限公司$", "", n) for n in national]
    assert len(set(trade)) == 6000
    assert sum(len(t) == 3 for t in trade) >= 6000 - 75 ** 2
