"""Customer hierarchy (brand + region containment, CRM parents) and revenue roll-up, hand-checked."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from crmlib import hierarchy


def golden() -> pd.DataFrame:
    rows = [
        # customer_id, brand, hier, branch_level, name_province, name_city, province, city
        ("C1", "中国工商银行", True, "head", None, None, None, "北京"),
        ("C2", "中国工商银行", True, "province", "浙江", None, "浙江", "杭州"),
        ("C3", "中国工商银行", True, "city", "浙江", "杭州", None, None),
        ("C4", "中国工商银行", True, "subbranch", "浙江", "杭州", None, None),
        ("C5", "中国工商银行", True, "city", "江苏", "苏州", None, None),        # no Jiangsu branch: → head
        ("C6", "中国工商银行", True, "subbranch", "江苏", "南京", None, None),   # no Nanjing/Jiangsu: → head
        ("C7", "中国银行", True, "city", "浙江", "杭州", None, None),            # brand without head office
        ("C8", None, False, None, None, "杭州", None, "杭州"),                   # ordinary company
        ("C9", None, False, None, None, None, None, None),                       # its CRM parent is C8
    ]
    return pd.DataFrame(rows, columns=["customer_id", "brand", "hier", "branch_level", "name_province",
                                       "name_city", "province", "city"])


def test_build_hierarchy_brand_region_and_crm_parent():
    crm = pd.DataFrame({"customer_id": ["C9"], "parent_customer_id": ["C8"]})
    h = hierarchy.build_hierarchy(golden(), crm)
    links = dict(zip(h["child_id"], h["parent_id"], strict=True))
    assert links == {"C2": "C1", "C3": "C2", "C4": "C3", "C5": "C1", "C6": "C1", "C9": "C8"}
    lv = dict(zip(h["child_id"], h["child_level"], strict=True))
    assert lv["C4"] == "subbranch" and lv["C3"] == "city" and lv["C9"] == "none"
    assert set(h.loc[h["child_id"] == "C9", "rule"]) == {"crm_parent"}
    levels = hierarchy.master_levels(golden(), h).set_index("customer_id")
    assert levels.loc["C1", "level"] == "head" and levels.loc["C4", "level"] == "city"
    assert levels.loc["C8", "level"] == "head" and levels.loc["C9", "level"] == "none"
    assert levels.loc["C3", "parent_customer_id"] == "C2"


def test_cycles_in_crm_parents_are_broken():
    g = golden().iloc[7:9]
    crm = pd.DataFrame({"customer_id": ["C8", "C9"], "parent_customer_id": ["C9", "C8"]})
    h = hierarchy.build_hierarchy(g, crm)
    assert list(zip(h["child_id"], h["parent_id"], strict=True)) == [("C8", "C9")]


def test_rollup_hand_checked():
    h = pd.DataFrame({"child_id": ["C2", "C3", "C4"], "parent_id": ["C1", "C2", "C3"]})
    rev = pd.DataFrame({"customer_id": ["C1", "C3", "C4", "C8"], "revenue": [10.0, 100.0, 1000.0, 5.0]})
    r = hierarchy.rollup(h, rev).set_index("customer_id")
    assert r.loc["C1", "subtree_revenue"] == 1110.0 and r.loc["C2", "subtree_revenue"] == 1100.0
    assert r.loc["C2", "own_revenue"] == 0.0 and r.loc["C4", "group_id"] == "C1"
    assert r.loc["C8", "group_id"] == "C8" and r.loc["C8", "subtree_revenue"] == 5.0


def test_rollup_revenue_from_db(tmp_path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("""CREATE TABLE stg_orders AS SELECT * FROM (VALUES
        ('O1', 1, 'E1', 100.0, 10.0), ('O2', 1, 'E2', 50.0, 0.0), ('O3', 1, 'E3', 7.0, NULL))
        t(order_id, line_no, erp_customer_id, amount, returned_amount)""")
    con.execute("""CREATE TABLE customer_xref AS SELECT * FROM (VALUES
        ('erp:E1', 'erp', 'E1', 'C2'), ('erp:E2', 'erp', 'E2', 'C1'), ('erp:E3', 'erp', 'E3', NULL))
        t(record_id, source, source_key, customer_id)""")
    con.execute("CREATE TABLE customer_hierarchy AS SELECT 'C2' AS child_id, 'C1' AS parent_id")
    con.execute("""CREATE TABLE customer_master AS SELECT * FROM (VALUES ('C1', '中国工商银行', 'head'),
        ('C2', '中国工商银行浙江省分行', 'province')) t(customer_id, name, level)""")
    r = hierarchy.rollup_revenue(con).set_index("customer_id")
    con.close()
    assert r.loc["C2", "own_revenue"] == pytest.approx(90.0)       # net of returns
    assert r.loc["C1", "subtree_revenue"] == pytest.approx(140.0)
    assert r.loc["C2", "group_name"] == "中国工商银行"
