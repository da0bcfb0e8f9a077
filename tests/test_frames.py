"""crmlib.frames: small pandas helpers."""
from __future__ import annotations

import pandas as pd

from crmlib.frames import isin


def test_isin_helper_matches_pandas():
    """crmlib.frames.isin (pyarrow's is_in, for many ids) answers as pandas' isin: Series, Index or any
    iterable of values; blank ids match nothing."""
    ids = pd.Series(["C1", None, "C2", "C3", "C2"], dtype="str")
    assert isin(ids, {"C2", "C9"}).tolist() == [False, False, True, False, True]
    assert isin(ids, pd.Index(["C1", "C3"])).tolist() == [True, False, False, True, False]
    assert isin(ids, pd.Series(["C3", None])).tolist() == ids.isin(["C3"]).tolist()
    assert isin(pd.Index(["C1", "C4"]), {"C4": 1}.keys()).tolist() == [False, True]
    assert isin(pd.Series([], dtype="str"), ["C1"]).tolist() == [] and isin(ids, []).tolist() == [False] * 5
