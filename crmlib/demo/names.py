"""Names, codes and phone numbers as the demo world writes them, and the ways people mistype them.

Pure functions of their inputs and a numpy Generator, so every caller stays deterministic.
"""
from __future__ import annotations

import re

import numpy as np

from . import catalog as cat

# ---------------------------------------------------------------- unified social credit code (GB 32100-2015)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VAL = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_W = [pow(3, i, 31) for i in range(17)]
_ORG_W = [3, 7, 9, 10, 5, 8, 4, 2]


def uscc_check_char(body17: str) -> str:
    """Check character over the first 17 characters (weights 3^i mod 31)."""
    s = sum(_USCC_VAL[c] * w for c, w in zip(body17, _USCC_W, strict=False))
    return USCC_ALPHABET[(31 - s % 31) % 31]


def uscc_valid(code: str) -> bool:
    if not isinstance(code, str) or len(code) != 18 or any(c not in _USCC_VAL for c in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


def _org_code(rng: np.random.Generator) -> str:
    """9-character organisation code (GB 11714): 8 characters + check (digits, X)."""
    if rng.random() < 0.5:  # codes issued since 2015 start with MA
        # rng.integers(0, n, k) is the draw rng.choice(list, k) makes, without converting the list each call
        body = "MA" + "".join(USCC_ALPHABET[i] for i in rng.integers(0, 31, 6))
    else:
        body = "".join(str(d) for d in rng.integers(0, 10, 8))
    vals = [int(c) if c.isdigit() else ord(c) - 55 for c in body]
    c9 = 11 - sum(v * w for v, w in zip(vals, _ORG_W, strict=False)) % 11
    return body + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))


def make_uscc(rng: np.random.Generator, kind: str, admin_code: str) -> str:
    """A valid code: kind 'ent' (91...), 'gov' (11...), 'inst' (12... public institutions)."""
    prefix = {"ent": "91", "gov": "11", "inst": "12"}[kind]
    body = prefix + admin_code + _org_code(rng)
    return body + uscc_check_char(body)


def corrupt_uscc(rng: np.random.Generator, code: str) -> str:
    """Mistype one character: any single substitution breaks the mod-31 check, so it stays detectable."""
    pos = int(rng.integers(2, 18))
    choices = [c for c in USCC_ALPHABET if c != code[pos]]
    bad = code[:pos] + choices[int(rng.integers(len(choices)))] + code[pos + 1:]
    if uscc_valid(bad):  # cannot happen for one substitution, kept as a guard
        bad = bad[:17] + ("0" if bad[17] != "0" else "1")
    return bad


# ---------------------------------------------------------------- phones
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")


def make_mobile(rng: np.random.Generator) -> str:
    return "1" + "35789"[int(rng.integers(0, 5))] + "".join(str(d) for d in rng.integers(0, 10, 9))


def make_landline(rng: np.random.Generator, area: str) -> str:
    return f"{area}-{int(rng.integers(2, 9))}{''.join(str(d) for d in rng.integers(0, 10, 7))}"


def format_phone(rng: np.random.Generator, phone: str, style: float) -> str:
    """Valid number written in one of the usual ways (style in [0,1): 0 = as stored)."""
    if not phone:
        return phone
    if "-" in phone:  # landline
        area, local = phone.split("-")
        forms = [phone, f"({area}){local}", f"{area}{local}", f"{area} {local[:4]} {local[4:]}", f"{area}－{local}"]
    else:
        forms = [phone, f"{phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}",
                 f"+86 {phone}", f"+86-{phone}"]
    return forms[min(int(style * len(forms)), len(forms) - 1)]


def bad_phone(rng: np.random.Generator, phone: str) -> str:
    """An invalid number (wrong length, letter for digit, truncated): what wrong_phone means."""
    digits = re.sub(r"\D", "", phone) or make_mobile(rng)
    k = int(rng.integers(4))
    if k == 0:
        return digits[:-1] if len(digits) > 7 else digits[:3]          # one digit short
    if k == 1:
        return digits + str(int(rng.integers(10)))                      # one digit too many
    if k == 2:
        i = int(rng.integers(1, len(digits)))
        return digits[:i] + "o" + digits[i + 1:]                        # letter o for zero
    return digits[:5]                                                   # truncated


def phone_valid(s: str) -> bool:
    d = re.sub(r"[\s\-－()（）]", "", s or "")
    d = d[3:] if d.startswith("+86") else d
    return bool(MOBILE_RE.match(d)) or bool(re.match(r"^0\d{2,3}[2-9]\d{6,7}$", d))


# ---------------------------------------------------------------- people
def person_name(rng: np.random.Generator) -> str:
    n = 1 if rng.random() < 0.35 else 2
    # same draws as rng.choice(list[, n]) (integers(0, len)), minus the list -> array conversion per call
    return (cat.SURNAMES[int(rng.integers(0, len(cat.SURNAMES)))]
            + "".join(cat.GIVEN_CHARS[i] for i in rng.integers(0, len(cat.GIVEN_CHARS), n)))


# ---------------------------------------------------------------- industry from a name (the rule the truth follows)
def infer_industry(name: str) -> str:
    for industry, words in cat.INDUSTRY_RULES:
        if any(w in name for w in words):
            return industry
    return "服务"


# ---------------------------------------------------------------- how people write organisation names
_FW = str.maketrans("()0123456789", "（）０１２３４５６７８９")
_HW = str.maketrans("（）", "()")
_LEGAL = ["股份有限公司", "有限责任公司", "有限公司"]
_T2 = None


def _s2t(s: str) -> str:
    global _T2
    if _T2 is None:
        import opencc  # imported lazily: only needed for the rare traditional-character variant
        _T2 = opencc.OpenCC("s2t")
    return _T2.convert(s)


def typo(rng: np.random.Generator, name: str) -> str:
    """Replace one character by a homophone / look-alike; returns name unchanged if none applies."""
    # people mistype the distinctive part, not the legal form they write a hundred times a day
    core = len(name)
    for lf in ("股份有限公司", "有限责任公司", "有限公司", "公司"):
        if name.endswith(lf):
            core = len(name) - len(lf)
            break
    pos = [i for i, c in enumerate(name[:core]) if c in cat.TYPO_MAP]
    if not pos:
        return name
    i = pos[int(rng.integers(len(pos)))]
    return name[:i] + cat.TYPO_MAP[name[i]] + name[i + 1:]


def variant(rng: np.random.Generator, c: dict, messy: float) -> str:
    """The customer's name as a person writes it. ``messy`` in [0,1] scales how far from canonical.

    c holds: name, alias_from, aliases (list), place (short place in the name or ''), home (city short),
    level. Variants are not errors (the same customer written differently); typos are added by the caller.
    """
    name = c["name"]
    r = rng.random(8)
    if r[0] > messy:
        s = name
    else:
        s = name
        aliases = c["aliases"]
        if c["alias_from"] and aliases and r[1] < 0.7:
            alias = aliases[int(rng.integers(len(aliases)))]
            rest = name.replace(c["alias_from"], "", 1)
            if c["level"] in ("province", "city") and r[2] < 0.35 and c["place"]:
                # 杭州工行 / 浙江建行 / 工行(杭州)
                s = (c["place"] + alias) if r[3] < 0.6 else f"{alias}({c['place']})"
            else:
                s = alias + rest
        if s == name or r[2] >= 0.35:
            # legal form dropped or swapped
            for lf in _LEGAL:
                if s.endswith(lf):
                    if r[4] < 0.5:
                        s = s[: -len(lf)] + ("公司" if r[5] < 0.3 else "")
                    else:
                        s = s[: -len(lf)] + _LEGAL[int(rng.integers(3))]
                    break
            # region dropped / moved into brackets / added
            place = c["place"]
            if place and s.startswith(place) and c["level"] == "none" and len(s) > len(place) + 3:
                if r[6] < 0.4:
                    s = s[len(place):]
                elif r[6] < 0.8:
                    core = s[len(place):]
                    for lf in _LEGAL + ["公司"]:
                        if core.endswith(lf):
                            s = f"{core[:-len(lf)]}({place}){lf}"
                            break
            elif not place and c["home"] and r[6] < 0.3:
                s = c["home"] + s
    # character-level habits, independent of the above
    if r[7] < 0.25 * messy:
        s = s.translate(_FW)
    elif "（" in s and rng.random() < 0.5:
        s = s.translate(_HW)
    if rng.random() < 0.015 * messy:
        s = _s2t(s)
    return s
