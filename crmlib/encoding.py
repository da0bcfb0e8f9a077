"""Text encoding of CSV files: UTF-8 (with or without BOM) or GBK/GB18030, and nothing else.

Detection is strict and ordered: ``utf-8-sig`` first, then ``gb18030`` (a superset of GBK and GB2312).
A file with NUL bytes, or that neither decodes, is not text. Big files are checked on a sample (DuckDB
validates UTF-8 again while reading and rejects lines it cannot decode); GB18030 files are transcoded
to a temporary UTF-8 copy for DuckDB, in chunks.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

CHUNK = 1 << 22
_CONTROL = [c for c in range(32) if c not in (9, 10, 13)] + [127]


@dataclass(frozen=True)
class Detected:
    encoding: str       # "utf-8" or "gb18030"
    bom: bool           # a UTF-8 byte-order mark was present
    checked_bytes: int  # how much of the file the decision rests on


def _decodes(path: Path, encoding: str, limit: int | None) -> bool:
    dec = codecs.getincrementaldecoder(encoding)("strict")
    seen = 0
    try:
        with open(path, "rb") as fh:
            while limit is None or seen < limit:
                block = fh.read(CHUNK if limit is None else min(CHUNK, limit - seen))
                if not block:
                    dec.decode(b"", final=True)
                    return True
                if b"\x00" in block:
                    return False
                seen += len(block)
                dec.decode(block)
        return True  # sample decoded; an incomplete trailing character is fine
    except UnicodeDecodeError:
        return False


def detect(path: str | Path, full_check_bytes: int = 64 << 20, sample_bytes: int = 4 << 20) -> Detected:
    """The file's encoding, or :class:`UserError` naming the file if it is not UTF-8/GBK text."""
    path = Path(path)
    size = path.stat().st_size
    limit = None if size <= full_check_bytes else sample_bytes
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    bom = head.startswith(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's and WPS's "Unicode text" export: UTF-16, usually tab-separated
        raise UserError("a UTF-16 text file (Excel's \"Unicode text\" export), not UTF-8 or GBK CSV",
                        file=str(path), hint="save it from Excel as \"CSV UTF-8 (comma delimited)\"")
    # control characters other than tab/CR/LF do not occur in exported text; junk is full of them
    ctrl = sum(head.count(bytes([c])) for c in _CONTROL)
    if ctrl > max(2, len(head) // 200):
        raise UserError("not a text file in UTF-8 or GBK/GB18030 (binary data or an unknown encoding)",
                        file=str(path), hint="export it again as CSV (UTF-8 or GBK)")
    for enc in ("utf-8-sig", "gb18030"):
        if _decodes(path, enc, limit):
            return Detected("utf-8" if enc == "utf-8-sig" else enc, bom and enc == "utf-8-sig",
                            size if limit is None else min(size, limit))
    raise UserError("not a text file in UTF-8 or GBK/GB18030 (binary data or an unknown encoding)",
                    file=str(path), hint="export it again as CSV (UTF-8 or GBK)")


def transcode_to_utf8(src: str | Path, dst: str | Path, encoding: str) -> None:
    """Write ``src`` decoded from ``encoding`` to ``dst`` as UTF-8 (no BOM), chunk by chunk."""
    dec = codecs.getincrementaldecoder(encoding)("strict")
    with open(src, "rb") as fin, open(dst, "w", encoding="utf-8", newline="") as fout:
        while block := fin.read(CHUNK):
            fout.write(dec.decode(block))
        fout.write(dec.decode(b"", final=True))


def python_codec(det: Detected) -> str:
    """The codec that reads the detected file as text (strips a UTF-8 BOM)."""
    return "utf-8-sig" if det.encoding == "utf-8" else det.encoding


def read_text(path: str | Path) -> str:
    """A small text file a user brings (UTF-8 or GBK), decoded; :class:`UserError` if it is not text."""
    return Path(path).read_text(encoding=python_codec(detect(path)))


def read_user_csv(path: str | Path, what: str = "file"):
    """A CSV a user brings to an ad-hoc command (`crm dedup`, `crm pyramid`): every column as text."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found", file=str(path))
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=python_codec(detect(path)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"not a readable CSV: {exc}", file=str(path),
                        hint="save it as CSV (UTF-8 or GBK) with a header row") from None
