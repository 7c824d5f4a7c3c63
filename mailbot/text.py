"""Japanese text helpers, each written once, and the one time zone the office works in.

    normalise(text)     NFKC, invisible characters removed, whitespace runs as one space (subjects, body lines)
    fold(text)          a name as compared: width, kana, case, spaces and JIS/CP932 variants folded away
    compact(text)       NFKC, case folded, no spaces or invisible characters (labels, headers, keys)
    compact_chars(text) the same, char by char, with each char's index in `text` (label positions)
    same_text(a, b)     equal after NFKC and JIS/CP932 repair, spaces ignored, case kept
    jis_to_cp932(text)  the characters JIS and CP932 map differently, taken the CP932 way
    drop_invisible(text) zero-width, bidi and other invisible characters removed
    japanese_date(d)    11月24日（火）, as dates are written to people
    japanese_time(t)    12月4日（金）9:34, Japan time, as times are written to people
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, datetime
from zoneinfo import ZoneInfo

# Every time a person reads (received times, business days, digests, logs) is Japan time.
TOKYO = ZoneInfo("Asia/Tokyo")

# Characters that render as nothing or reorder text: they must not split a keyword, nor make a
# header read as something it is not.
INVISIBLE_CHARS = frozenset(
    [0x00AD, 0x034F, 0x061C, 0x180E, 0xFEFF, *range(0x200B, 0x2010), *range(0x202A, 0x202F),
     *range(0x2060, 0x2070)]
)
_INVISIBLE = dict.fromkeys(INVISIBLE_CHARS)

# Characters that JIS (ISO-2022-JP, EUC-JP, a PDF font's CMap) and CP932 (Windows, Shift_JIS as
# sent) map differently: taken the CP932 way, as Windows writes them.
JIS_TO_CP932 = str.maketrans({
    "\u301c": "\uff5e",  # WAVE DASH → FULLWIDTH TILDE (0x2141)
    "\u2016": "\u2225",  # DOUBLE VERTICAL LINE → PARALLEL TO (0x2142)
    "\u2212": "\uff0d",  # MINUS SIGN → FULLWIDTH HYPHEN-MINUS (0x215D)
    "\u00a2": "\uffe0",  # CENT SIGN → FULLWIDTH CENT SIGN (0x2171)
    "\u00a3": "\uffe1",  # POUND SIGN → FULLWIDTH POUND SIGN (0x2172)
    "\u00ac": "\uffe2",  # NOT SIGN → FULLWIDTH NOT SIGN (0x224C)
    "\u2014": "\u2015",  # EM DASH → HORIZONTAL BAR (0x213D, euc_jis_2004 vs cp932)
})
# Hiragana → katakana: a name written in either reads the same.
_HIRAGANA_KATAKANA = {c: c + 0x60 for c in range(0x3041, 0x3097)}


def japanese_date(d: date) -> str:
    if isinstance(d, datetime) and d.tzinfo is not None:
        d = d.astimezone(TOKYO)
    return f"{d.month}月{d.day}日（{'月火水木金土日'[d.weekday()]}）"


def japanese_time(t: datetime) -> str:
    """Japan time; a naive time is taken as Japan time already."""
    t = t.astimezone(TOKYO) if t.tzinfo is not None else t
    return f"{japanese_date(t)}{t.hour}:{t.minute:02d}"


def _any_of(table: dict[int, object]) -> re.Pattern[str]:
    """A search for any character a translation table maps: str.translate looks every character
    up in the table, ~20x slower than this scan, and most texts have none of them."""
    return re.compile("[" + "".join(re.escape(chr(c)) for c in table) + "]")


_HAS_INVISIBLE = _any_of(_INVISIBLE)
_HAS_JIS_VARIANT = _any_of(JIS_TO_CP932)


def drop_invisible(text: str) -> str:
    return text.translate(_INVISIBLE) if _HAS_INVISIBLE.search(text) else text


def jis_to_cp932(text: str) -> str:
    return text.translate(JIS_TO_CP932) if _HAS_JIS_VARIANT.search(text) else text


def normalise(text: str) -> str:
    """NFKC, invisible characters removed, whitespace runs collapsed to one space."""
    return " ".join(drop_invisible(unicodedata.normalize("NFKC", text)).split())


def fold(text: str) -> str:
    """A name as compared (shop names, line kinds, answers): width (NFKC), kana (hiragana as
    katakana), case and spaces folded away, JIS/CP932 variants taken as one."""
    text = drop_invisible(unicodedata.normalize("NFKC", jis_to_cp932(text)))
    return "".join(text.casefold().translate(_HIRAGANA_KATAKANA).split())


@functools.lru_cache(maxsize=8192)
def _compact_char(c: str) -> str:
    """What one printed character is in compact text (a form's few hundred distinct characters
    are each normalised once per reader, not once per occurrence)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", c).casefold()
                   if not ch.isspace() and ord(ch) not in INVISIBLE_CHARS)


def compact_chars(text: str) -> list[tuple[str, int]]:
    """(char, index in `text`) of each char of `compact(text)`: where a label found in the
    compact text sits in the printed one."""
    out: list[tuple[str, int]] = []
    for i, c in enumerate(text):
        for ch in _compact_char(c):
            out.append((ch, i))
    return out


def compact(text: str) -> str:
    """The comparison form of printed text and keys: NFKC, case folded, with no whitespace or
    invisible characters at all."""
    return "".join(ch for ch, _ in compact_chars(text))


def same_text(a: str | None, b: str | None) -> bool:
    """Equal after NFKC and JIS/CP932 repair, spaces ignored, case kept (〜/～ and −/－ as one)."""
    def k(s: str | None) -> str:
        return re.sub(r"\s+", "", unicodedata.normalize("NFKC", jis_to_cp932(s or "")))
    return k(a) == k(b)
