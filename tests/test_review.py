"""`crm review export / apply`: the review queue as a workbook for stewards, decisions back into the file
`crm resolve` reads (on the session's resolved demo; the decisions go to a file of the test's own)."""
from __future__ import annotations

import openpyxl
import pandas as pd

from crmlib import cli, master
from crmlib.db import connect


def _queue_size(db) -> int:
    con = connect(db, read_only=True)
    try:
        return con.execute("SELECT count(*) FROM match_review_queue").fetchall()[0][0]
    finally:
        con.close()


def test_export_fill_apply(demo_resolved, tmp_path, capsys):
    db = demo_resolved / "crm.duckdb"
    out = tmp_path / "queue.xlsx"
    assert cli.main(["review", "export", "--db", str(db), "--out", str(out)]) == 0
    n = _queue_size(db)
    assert n >= 3 and f"{n} pairs to review" in capsys.readouterr().out
    wb = openpyxl.load_workbook(out)
    ws = wb["review"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == ["record_id_l", "record_id_r", "name_l", "name_r", "match_probability",
                             "n_records_l", "n_records_r", "same_cluster", "decision", "note", "reason",
                             "first_queued"]
    assert len(rows) == n + 1
    probs = [r[4] for r in rows[1:]]
    scored = [x for x in probs if x is not None]
    assert scored == sorted(scored, reverse=True) and scored == probs[:len(scored)]   # strongest pairs first,
    assert {r[10] for r in rows[1:]} <= set(master.REVIEW_REASONS)       # then the bare-name pairs (no score)
    assert all(r[10] == "bare_name" for r in rows[1 + len(scored):])
    assert ws.data_validations.dataValidation[0].formula1 == '"match,no_match"'
    # a steward decides three pairs, one in Chinese, and leaves the rest blank
    ws["I2"], ws["I3"], ws["I4"] = "match", "否", " no_match "
    wb.save(out)
    decisions = tmp_path / "decisions.csv"
    assert cli.main(["review", "apply", str(out), "--reviewer", "王审核", "--decisions", str(decisions)]) == 0
    assert "3 decisions appended" in capsys.readouterr().out
    got = master.read_decisions(decisions)
    want = {tuple(sorted((rows[i][0], rows[i][1]))): d for i, d in ((1, "match"), (2, "no_match"), (3, "no_match"))}
    assert {(r.record_id_l, r.record_id_r): r.decision for r in got.itertuples()} == want
    assert set(pd.read_csv(decisions)["reviewer"]) == {"王审核"}


def test_apply_refuses_a_bad_word_and_appends_nothing(demo_resolved, tmp_path, capsys):
    out = tmp_path / "queue.xlsx"
    assert cli.main(["review", "export", "--db", str(demo_resolved / "crm.duckdb"), "--out", str(out),
                     "--limit", "2"]) == 0
    wb = openpyxl.load_workbook(out)
    wb["review"]["I2"], wb["review"]["I3"] = "match", "maybe"
    wb.save(out)
    decisions = tmp_path / "decisions.csv"
    capsys.readouterr()
    assert cli.main(["review", "apply", str(out), "--reviewer", "x", "--decisions", str(decisions)]) == 2
    err = capsys.readouterr().err
    assert "queue.xlsx" in err and "row 3" in err and "decision" in err and "Traceback" not in err
    assert not decisions.exists()                          # all or nothing
    (tmp_path / "junk.xlsx").write_bytes(b"not a workbook")
    assert cli.main(["review", "apply", str(tmp_path / "junk.xlsx"), "--reviewer", "x"]) == 2
    assert "cannot read the workbook" in capsys.readouterr().err


def test_limit_pairs_and_hand_edited_decisions_file(demo_resolved, tmp_path, capsys):
    db = str(demo_resolved / "crm.duckdb")
    assert cli.main(["review", "export", "--db", db, "--out", str(tmp_path / "q.xlsx"), "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
    out = tmp_path / "q.xlsx"
    assert cli.main(["review", "export", "--db", db, "--out", str(out), "--limit", "3"]) == 0
    wb = openpyxl.load_workbook(out)
    ws = wb["review"]
    ws["I2"], ws["I3"] = "match", "no_match"
    ws["A4"], ws["B4"], ws["I4"] = ws["B2"].value, ws["A2"].value, "否"   # row 2's pair, the other way round
    wb.save(out)
    decisions = tmp_path / "decisions.csv"
    assert cli.main(["review", "apply", str(out), "--reviewer", "x", "--decisions", str(decisions)]) == 2
    assert "row 4" in capsys.readouterr().err and not decisions.exists()
    ws["I4"] = None
    wb.save(out)
    # a decisions file edited by hand and saved without a final newline
    decisions.write_text("record_id_l,record_id_r,decision,reviewer,decided_at\n"
                         "crm:1,crm:2,match,me,2026-01-01T00:00:00", encoding="utf-8")
    assert cli.main(["review", "apply", str(out), "--reviewer", "x", "--decisions", str(decisions)]) == 0
    got = master.read_decisions(decisions)
    assert len(got) == 3 and ("crm:1", "crm:2", "match") in set(
        got[["record_id_l", "record_id_r", "decision"]].itertuples(index=False, name=None))


def test_a_pair_keeps_the_date_it_first_entered_the_queue(demo_resolved, tmp_path, capsys):
    import datetime as dt
    import shutil
    db = tmp_path / "crm.duckdb"
    shutil.copy(demo_resolved / "crm.duckdb", db)
    con = connect(db)
    pairs = con.execute("SELECT record_id_l, record_id_r FROM match_review_queue ORDER BY 1, 2").fetchall()
    assert len(pairs) >= 3
    # as if every pair had waited since New Year, and the first two had not been queued before
    con.execute("UPDATE match_review_queue SET first_queued = DATE '2026-01-01'")
    con.execute("DELETE FROM match_review_queue WHERE (record_id_l, record_id_r) IN (SELECT * FROM (VALUES (?, ?), "
                "(?, ?)))", [*pairs[0], *pairs[1]])
    con.close()
    assert cli.main(["resolve", "--db", str(db)]) == 0
    assert f"{len(pairs)} pairs to review (2 new)" in capsys.readouterr().out
    con = connect(db, read_only=True)
    got = dict(((a, b), d) for a, b, d in con.execute(
        "SELECT record_id_l, record_id_r, first_queued FROM match_review_queue").fetchall())
    con.close()
    assert set(got) == set(pairs)                 # the same queue (model reused, data unchanged)
    assert got[pairs[0]] == got[pairs[1]] == dt.date.today()
    assert {got[p] for p in pairs[2:]} == {dt.date(2026, 1, 1)}
    out = tmp_path / "queue.xlsx"
    assert cli.main(["review", "export", "--db", str(db), "--out", str(out)]) == 0
    rows = list(openpyxl.load_workbook(out)["review"].iter_rows(values_only=True))
    firsts = {(r[0], r[1]): r[11] for r in rows[1:]}
    assert firsts[pairs[0]].date() == dt.date.today() and firsts[pairs[2]].date() == dt.date(2026, 1, 1)
