"""Name-typo detection (crmlib.quality.checks.check_names and its helpers) on hand-built records."""
from __future__ import annotations

import pandas as pd
import pytest

from crmlib.quality import checks

pytest.importorskip("crmlib.names")

# ten companies whose names hold the common pairs 智能 and 科技 (and a few 天): the corpus the
# cross-customer check weighs a one-character correction against
FILLERS = ["天鹏", "天宇", "光启", "明德", "华科", "博雅", "新锐", "恒通", "聚源", "海纳"]


def _records(extra: list[tuple]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(record_id, source, customer_id, name_raw, city, phone) rows plus the fillers; master = first name."""
    rows = [(f"erp:F{i}", "erp", f"F{i}", f"{t}智能科技有限公司", None, None) for i, t in enumerate(FILLERS)]
    rows += extra
    r = pd.DataFrame(rows, columns=["record_id", "source", "customer_id", "name_raw", "city", "phone"])
    r["source_key"] = r["record_id"].str.split(":").str[1]
    master = r.drop_duplicates("customer_id")[["customer_id", "name_raw", "city"]].rename(columns={"name_raw": "name"})
    return r, master


def _flagged(r: pd.DataFrame, master: pd.DataFrame) -> dict[str, tuple]:
    out = checks.check_names(r, master, ["crm", "erp", "sales", "callcenter"])
    assert set(out["kind"]) <= {"name_typo"}
    return {i: (s, c) for i, s, c in zip(out["record_id"], out["suggested"], out["suggested_customer_id"], strict=True)}


def test_helpers_one_substitution_legal_forms_and_misspelt_words():
    assert checks.one_sub("岳晟精密机械", "岳盛精密机械") == 1
    assert checks.one_sub("岳盛", "岳盛") is None and checks.one_sub("岳盛精密", "岳晟精细") is None
    assert checks.one_sub("岳盛", "岳盛精密") is None
    assert checks.strip_legal("华隆能源科技股份有限公司") == "华隆能源科技"
    assert checks.strip_legal("华隆能源科技") == "华隆能源科技"
    # a legal form one character off inside a name (bank branches carry it in the middle)
    assert checks.legal_typo("中国工商银行股份有限工司鞍山分行")
    assert checks.legal_typo("中国银行股份有很公司新疆维吾尔自治区分行")
    for ok in ("中国工商银行股份有限公司鞍山分行", "宇盛电脑有限责任公司", "华信股份公司", "某某有限责任公司杭州分公司"):
        assert not checks.legal_typo(ok), ok
    # one character off a place name, legal form or branch word, and none of them itself
    assert checks.misspelt_word("陕希") and checks.misspelt_word("股份有限工司") and checks.misspelt_word("分航")
    assert not checks.misspelt_word("陕西") and not checks.misspelt_word("分行") and not checks.misspelt_word("科技")


def test_dictionary_corrections():
    assert ("邮储银行北京市朝阳支行", 0) in checks.dictionary_typo("油储银行北京市朝阳支行")
    assert ("青海光大银行", 5) in checks.dictionary_typo("青海光大银航")
    assert ("中国石化贵州石油分公司", 1) in checks.dictionary_typo("中囯石化贵州石油分公司")
    # known brands, ambiguous short forms and plain company names have no correction to offer
    for name in ("中国光大银行青海省分行", "光大(四川)", "民生", "石化(洛阳)", "华信电子科技有限公司"):
        assert checks.dictionary_typo(name) == (), name
    # offered, but a real name: the caller weighs it (财政 is as common as 邮政), see the next test
    assert checks.dictionary_typo("南京市财政局")


def test_typos_of_another_customer_need_evidence():
    r, master = _records([
        ("crm:A20", "crm", "C20", "远银能源科技股份有限公司", None, None),
        ("erp:E20", "erp", "C20", "远银能源科技股份有限公司", None, None),
        # 料技 for 科技: the correction restores a pair 11 customers write, the record's pair is its own
        ("callcenter:K30", "callcenter", "C30", "远银能源料技", None, None),
        # 远佳 / 远银: two trade names one character apart are two companies
        ("callcenter:K31", "callcenter", "C31", "远佳能源科技有限公司", None, None),
        # 伟信能源 / 伟智能源: 智能 is common, but the character is in the other name's trade name
        ("crm:A32", "crm", "C32", "伟智能源科技有限公司", None, None),
        ("erp:E32", "erp", "C32", "伟智能源科技有限公司", None, None),
        ("callcenter:K33", "callcenter", "C33", "伟信能源科技有限公司", None, None),
        # a trade-name typo counts when the record places itself in that customer's city, or shares a phone
        ("crm:A40", "crm", "C40", "曲靖立曦运输有限公司", "曲靖市", "0874-12345678"),
        ("erp:E40", "erp", "C40", "立曦运输有限公司", None, None),
        ("sales:S41", "sales", "C41", "力曦运输有限公司", "曲靖", None),
        ("callcenter:K43", "callcenter", "C43", "立羲运输有限公司", None, "0874 1234 5678"),
        # one character off a brand of the naming rule, restoring a pair 4 customers write (银行)
        ("crm:A50", "crm", "C50", "中国光大银行青海省分行", None, None),
        ("erp:E50", "erp", "C50", "中国光大银行青海省分行", None, None),
        ("crm:A51", "crm", "C51", "招商银行杭州分行", None, None),
        ("crm:A52", "crm", "C52", "兴业银行福州分行", None, None),
        ("crm:A53", "crm", "C53", "华夏银行北京分行", None, None),
        ("callcenter:K54", "callcenter", "C54", "青海光大银航", None, None),
        # 南京市邮政局 is one character off too, but 财政 is no rarer than 邮政: a real name
        ("callcenter:K55", "callcenter", "C55", "南京市财政局", None, None),
    ])
    assert _flagged(r, master) == {
        "callcenter:K30": ("远银能源科技股份有限公司", "C20"),
        "sales:S41": ("曲靖立曦运输有限公司", "C40"),
        "callcenter:K43": ("曲靖立曦运输有限公司", "C40"),
        "callcenter:K54": ("青海光大银行", None),
    }
    # the same trade-name typo written in another city, or with no place at all, is left alone
    for city in ("昆明", None):
        r.loc[r["record_id"] == "sales:S41", "city"] = city
        assert "sales:S41" not in _flagged(r, master), city


def test_typos_within_a_customer():
    r, master = _records([
        # two records only: 晟 is in half of them, but the brand is the customer's with one character changed
        ("crm:A60", "crm", "C60", "金华岳盛精密机械有限公司", "金华市", None),
        ("sales:S60", "sales", "C60", "金华岳晟精密机械", "金华", None),
        # one record each way and the master took the typo'd CRM name: 天 is in more customers' names than 夭
        ("crm:A61", "crm", "C61", "帆夭智能科技集团股份有限公司", None, None),
        ("erp:E61", "erp", "C61", "帆天智能科技集团有限公司", None, None),
        # short forms, legal forms and places written differently are no typos; nor are brackets or 控股
        ("crm:A62", "crm", "C62", "中信银行曲靖市分行", None, None),
        ("erp:E62", "erp", "C62", "中信银行曲靖市分行", None, None),
        ("callcenter:K62", "callcenter", "C62", "中信(曲靖)", None, None),
        ("crm:A63", "crm", "C63", "海瀚集团有限公司", None, None),
        ("erp:E63", "erp", "C63", "海瀚集团有限公司", None, None),
        ("callcenter:K63", "callcenter", "C63", "海瀚控股集团有限责任公司", None, None),
        ("crm:A64", "crm", "C64", "华为技术有限公司", None, None),
        ("erp:E64", "erp", "C64", "华为技术股份有限公司", None, None),
        ("sales:S64", "sales", "C64", "华为技术(深圳)有限公司", "深圳", None),
        # a legal form one character off inside the name
        ("callcenter:K62b", "callcenter", "C62", "中信银行股份有很公司曲靖分行", None, None),
    ])
    assert _flagged(r, master) == {
        "sales:S60": ("金华岳盛精密机械有限公司", None),
        "crm:A61": ("帆天智能科技集团有限公司", None),
        "callcenter:K62b": ("中信银行曲靖市分行", None),
    }
