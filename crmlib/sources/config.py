"""``params/sources.yaml``: which files belong to which table and how their headers map to columns."""
from __future__ import annotations

import re
import unicodedata
from functools import cached_property
from typing import Literal

from pydantic import model_validator

from ..params import Params, load

ColumnType = Literal["id", "text", "date", "timestamp", "amount", "amount_wan", "int", "rating", "flag"]


def normalise_header(text: object) -> str:
    """Header text as compared with aliases: NFKC (full-width → ASCII), no spaces/'*'/colons, lower case."""
    s = unicodedata.normalize("NFKC", str(text or ""))
    s = re.sub(r"[\s*:：]+", "", s)
    return s.lower()


def _strip_unit(s: str) -> str:
    return re.sub(r"\([^()]*\)$", "", s)


class _Mapped(Params):
    columns: dict[str, ColumnType]
    aliases: dict[str, str] = {}

    @model_validator(mode="after")
    def _aliases_name_columns(self):
        bad = sorted({v for v in self.aliases.values() if v not in self.columns})
        if bad:
            raise ValueError(f"aliases point to unknown columns: {', '.join(bad)}")
        return self

    @cached_property
    def _lookup(self) -> dict[str, str]:
        table = {normalise_header(c): c for c in self.columns}
        table.update({normalise_header(k): v for k, v in self.aliases.items()})
        return table

    def canonical(self, header: object) -> str | None:
        """The canonical column a raw header names, or None."""
        h = normalise_header(header)
        if not h:
            return None
        return self._lookup.get(h) or self._lookup.get(_strip_unit(h))


class CsvSource(_Mapped):
    folder: str
    files: str                      # regular expression on the file name (full match)
    key: list[str]
    version_by: str | None = None   # latest value wins; ties → later file, then later row
    raw_table: str | None = None
    stg_table: str | None = None

    @model_validator(mode="after")
    def _key_known(self):
        missing = [k for k in self.key + ([self.version_by] if self.version_by else []) if k not in self.columns]
        if missing:
            raise ValueError(f"key/version_by columns not in columns: {', '.join(missing)}")
        return self


class SalesSheets(_Mapped):
    folder: str
    files: str
    raw_table: str = "raw_sales_sheets"
    stg_table: str = "stg_sales_visits"
    header_scan_rows: int = 20
    min_header_matches: int = 3
    total_labels: list[str] = []


class SourcesConfig(Params):
    encoding_full_check_mb: float = 64
    encoding_sample_mb: float = 4
    sales_sheets: SalesSheets
    csv: dict[str, CsvSource]

    @model_validator(mode="after")
    def _names(self):
        for name, src in self.csv.items():
            src.raw_table = src.raw_table or f"raw_{name}"
            src.stg_table = src.stg_table or f"stg_{name}"
        return self


def load_config(path=None) -> SourcesConfig:
    return load(SourcesConfig, path or "sources")
