"""GB 32100-2015 check character of the unified social credit code."""
from __future__ import annotations

import pytest

from crmlib.uscc import CHARSET, uscc_check_char, uscc_is_valid


def test_charset_has_31_characters_without_i_o_z_s_v():
    assert len(CHARSET) == 31
    assert not set("IOZSV") & set(CHARSET)


def test_published_example_is_valid():
    # Hand check: values 9,1,3,5,0,1,0,0,M=21,0,0,0,1,0,0,Y=30,4; Σ value×weight = 1640; 1640 mod 31 = 28;
    # 31 - 28 = 3 → check character '3'.
    assert uscc_check_char("91350100M000100Y4") == "3"
    assert uscc_is_valid("91350100M000100Y43")


def test_hand_checked_second_code():
    # 9,1,1,1,0,0,0,0,6,0,0,0,3,7,3,4,1 × weights → 538; 538 mod 31 = 11; 31 - 11 = 20 → 'L'
    assert uscc_check_char("91110000600037341") == "L"
    assert uscc_is_valid("91110000600037341L")


@pytest.mark.parametrize("code", ["91440300708461136T", "12100000400000771Y"])
def test_computed_codes_are_valid(code):
    assert uscc_is_valid(code)


def test_check_value_31_maps_to_zero():
    # A body whose weighted sum is ≡ 0 (mod 31) has check value 31 → '0'.
    assert uscc_check_char("0" * 17) == "0"
    assert uscc_is_valid("0" * 18)


@pytest.mark.parametrize("code", [
    "91350100M000100Y44",   # last character changed
    "91350100M000100Y4A",
    "91350100M000101Y43",   # one body character changed
    "91350100m000100y43",   # lower case is not the code as written (normalise first)
    "91350100M000100Y4",    # 17 characters
    "91350100M000100Y433",  # 19 characters
    "91350100M0001O0Y43",   # letter O is not in the alphabet
    "",
    None,
    12345,
])
def test_invalid(code):
    assert not uscc_is_valid(code)


def test_every_wrong_last_character_is_rejected():
    wrong = [c for c in CHARSET if c != "3"]
    assert not any(uscc_is_valid("91350100M000100Y4" + c) for c in wrong)


def test_check_char_rejects_bad_body():
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100Y")
    with pytest.raises(ValueError):
        uscc_check_char("91350100I000100Y4")


def test_the_sql_rule_agrees_with_the_python_one():
    import random

    import duckdb

    from crmlib.uscc import uscc_is_valid_sql

    rng = random.Random(3)
    codes = ["91350100M000100Y43", "91110000600037341L", "0" * 18, "91350100M000100Y44", "91350100m000100y43",
             "91350100M0001O0Y43", "91350100M000100Y4", "91350100M000100Y433", "", " 91350100M000100Y43", None]
    for _ in range(3000):
        body = "".join(rng.choice(CHARSET) for _ in range(17))
        codes += [body + uscc_check_char(body), body + rng.choice(CHARSET)]
    con = duckdb.connect()
    got = [r[0] for r in con.execute(f"SELECT {uscc_is_valid_sql('c')} FROM unnest(?::VARCHAR[]) t(c)",
                                     [codes]).fetchall()]
    assert got == [uscc_is_valid(c) for c in codes]
    assert sum(got) > 3000        # the published examples, 000…0 and the 3,000 computed codes (+ lucky ones)
