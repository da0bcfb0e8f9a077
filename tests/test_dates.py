from datetime import date, datetime

import duckdb
import pytest

from crmlib import dates


@pytest.mark.parametrize("value, expected", [
    ("2026-11-23", date(2026, 11, 23)),
    ("2026/11/23", date(2026, 11, 23)),
    ("2026/1/5", date(2026, 1, 5)),
    ("2026.11.23", date(2026, 11, 23)),
    ("2026年11月23日", date(2026, 11, 23)),
    (" 2026年 1月 5日 ", date(2026, 1, 5)),
    ("20261123", date(2026, 11, 23)),
    ("2026-11-23 14:05", date(2026, 11, 23)),
    (46349, date(2026, 11, 23)),            # Excel serial: 46349 days after 1899-12-30
    ("46349", date(2026, 11, 23)),
    (46349.75, date(2026, 11, 23)),
    (datetime(2026, 11, 23, 9, 30), date(2026, 11, 23)),
    (date(2026, 11, 23), date(2026, 11, 23)),
    (None, None),
    ("  ", None),
])
def test_parse_date_forms(value, expected):
    assert dates.parse_date(value) == expected


def test_month_day_takes_year_nearest_reference():
    assert dates.parse_date("11/23", ref=date(2026, 11, 26)) == date(2026, 11, 23)
    assert dates.parse_date("11月23日", ref=date(2026, 11, 26)) == date(2026, 11, 23)
    # a sheet of ISO week 2027-W01 (Thursday 2027-01-07) mentioning 12/30 means last December
    assert dates.parse_date("12/30", ref=date(2027, 1, 7)) == date(2026, 12, 30)
    assert dates.parse_date("1/2", ref=date(2026, 12, 31)) == date(2027, 1, 2)
    with pytest.raises(dates.DateError) as e:
        dates.parse_date("11/23")
    assert e.value.reason == "date without year"


@pytest.mark.parametrize("value, reason", [
    ("2026/13/45", "impossible date"),
    ("2026-02-30", "impossible date"),
    ("20261340", "impossible date"),
    ("2/30", "impossible date"),
    ("下周一", "unparsable date"),
    ("abc", "unparsable date"),
    (12, "unparsable date"),        # a number far outside the Excel serial range
])
def test_bad_dates_have_stable_reasons(value, reason):
    with pytest.raises(dates.DateError) as e:
        dates.parse_date(value, ref=date(2026, 11, 26))
    assert e.value.reason == reason


def test_sql_matches_python():
    con = duckdb.connect()
    values = ["2026-11-23", "2026/1/5", "2026.11.23", "2026年11月23日", "20261123", "46349",
              "2026-11-23 14:05:09", "2026-11-23T14:05:09", "2026/13/45", "2026-02-30", "abc", "", None]
    for v in values:
        ts, reason = con.execute(
            f"SELECT {dates.sql_timestamp('x')}, {dates.sql_date_reason('x')} FROM (SELECT ?::VARCHAR AS x)",
            [v]).fetchone()
        try:
            expected, why = dates.parse_datetime(v), None
        except dates.DateError as exc:
            expected, why = None, exc.reason
        assert ts == expected, v
        if why:
            assert reason == why, v


def test_sql_iso_shortcut_gives_the_full_rules_result():
    """sql_timestamp tries the ISO form alone before the list of formats: same value for any input."""
    fmts = ", ".join(f"'{f}'" for f in dates._SQL_FORMATS)
    full = (f"CASE WHEN regexp_full_match(trim(x), '\\d{{5}}(\\.\\d+)?') AND TRY_CAST(trim(x) AS DOUBLE) "
            f"BETWEEN {dates.SERIAL_MIN} AND {dates.SERIAL_MAX} THEN TIMESTAMP '1899-12-30' + "
            f"to_days(floor(TRY_CAST(trim(x) AS DOUBLE))::INTEGER) ELSE try_strptime(trim(x), [{fmts}]) END")
    values = ["2026-11-23", " 2026-11-23 ", "2026-1-5", "2026-11-23 14:05:09", "2026-11-23 8:05:09",
              "2026-11-23 14:05", "2026-11-23 14:05:09.250", "2026-11-23 25:00:00", "2026-02-30 10:00:00",
              "2026-11-23T14:05:09", "20261123", "45000", "45000.5", "99999", "2026/11/23 14:05", "2026年1月5日",
              "0001-01-01", "12026-11-23", "2026-11-23 14:05:09 ", "2026/11/23", "2026/1/5", "2026/11/23 14:05:09",
              "2026/11/23 8:05:09", "2026/13/45 10:00:00", "2026/11/23 14:05:09.5", "2026/11/23T14:05:09", "", " ", None]
    con = duckdb.connect()
    for v in values:
        got, want = con.execute(f"SELECT {dates.sql_timestamp('x')}, {full} FROM (SELECT ?::VARCHAR AS x)",
                                [v]).fetchone()
        assert got == want, v
