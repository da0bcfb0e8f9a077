"""The default report date, defined once (crmlib/asof.py) and used by every analysis."""
from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from crmlib import funnel, pyramid, quality
from crmlib.asof import after_data_warning, newest_data_date, resolve
from crmlib.errors import UserError


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("CREATE TABLE stg_orders (order_date DATE)")
    c.execute("INSERT INTO stg_orders VALUES ('2024-01-30'), ('2024-01-02')")
    c.execute("CREATE TABLE stg_calls (called_at TIMESTAMP)")
    # a call on Feb 4 late in the evening counts as Feb 4; a mistyped call in 2099 is after today
    c.execute("INSERT INTO stg_calls VALUES ('2024-02-04 23:59:00'), ('2099-01-01 08:00:00')")
    c.execute("CREATE TABLE stg_sales_visits (visit_date DATE)")  # reps' typed dates do not count
    c.execute("INSERT INTO stg_sales_visits VALUES ('2024-03-01')")
    yield c
    c.close()


def test_newest_system_stamped_date_not_after_today(con):
    assert newest_data_date(con) == dt.date(2024, 2, 4)
    assert resolve(con, None) == resolve(con, "") == dt.date(2024, 2, 4)


def test_given_dates_win_and_bad_ones_are_named(con):
    assert resolve(con, "2024-01-05") == dt.date(2024, 1, 5)
    assert resolve(con, dt.datetime(2024, 1, 5, 10, 0)) == dt.date(2024, 1, 5)
    with pytest.raises(UserError, match="--as-of '2024/13/45' is not a date"):
        resolve(con, "2024/13/45", "--as-of")


def test_an_empty_database_asks_for_a_load():
    c = duckdb.connect()
    assert newest_data_date(c) is None
    with pytest.raises(UserError, match="no dated records"):
        resolve(c, None)


def test_every_analysis_uses_the_one_definition():
    """No module keeps a private 'newest date' of its own (there were five, each a little different)."""
    for mod in (funnel, pyramid, quality):
        assert not hasattr(mod, "newest_date"), mod.__name__


def test_a_date_long_after_the_records_is_flagged(con):
    # newest system-stamped record on or before each date: the 2024-02-04 call (the 2099 one comes later)
    assert after_data_warning(con, dt.date(2024, 2, 4)) is None
    assert after_data_warning(con, dt.date(2024, 2, 11)) is None          # 7 days: the week just ended
    note = after_data_warning(con, dt.date(2024, 2, 12), "--as-of")
    assert note.startswith("--as-of 2024-02-12 is 8 days after the newest system-stamped record (2024-02-04)")
    assert "(2024-02-04)" in after_data_warning(con, dt.date(2098, 12, 31))
    # before every record: nothing to compare with (the analyses say so themselves)
    assert after_data_warning(con, dt.date(2023, 1, 1)) is None
    # a mistyped future stamp covers the dates after it: the warning only sees records, not intentions
    assert after_data_warning(con, dt.date(2099, 1, 3)) is None


def test_a_date_before_every_record_is_refused_by_the_commands(con):
    """A `crm` command (and the weekly run) given a date before the oldest record says so, with the range
    of dates there are, instead of failing in whichever analysis finds nothing first. Library calls without
    a command (the earlier weeks a comparison recomputes) still take any date."""
    assert resolve(con, "2024-01-02", "--as-of", command="quality") == dt.date(2024, 1, 2)
    with pytest.raises(UserError) as e:
        resolve(con, "2024-01-01", "--as-of", command="quality")
    assert str(e.value) == ("file :memory:: --as-of 2024-01-01 is before the oldest record in the database "
                            "(2024-01-02): there is nothing to report for that date (give a date from 2024-01-02 "
                            "to 2024-02-04, or leave it out for the newest week)")
    assert resolve(con, "2023-06-01") == dt.date(2023, 6, 1)
