"""Unlock a PDF with pikepdf, then read it: AcroForm fields, or positioned words and table cells.

This module does the work *inside* the sandbox's child process (see sandbox.py); nothing here
protects itself against hostile files, the child's limits do.  The parent only calls
`read_form` through `sandbox.read_pdf`.

    unlock(data, password)             -> Unlocked (an open pikepdf.Pdf and the status) | PdfReading
    acroform_values(pdf)               -> {field name: str | bool | list[str]}
    extract_layout(pdf_bytes)          -> Layout (words with positions and font size, table cells)
    read_form(data, form, ...)         -> PdfReading (what the child sends back)

Statuses (DOMAIN.md §4):
- opened with an empty password → NOT_ENCRYPTED, whether the file carries no encryption at all
  or only an owner password (permissions) with an empty user password: the manual's
  "パスワード必須" means a password is needed to *open* the form, and such a file opens for
  anyone.  It is still read, so the form checks run too.
- opened with the agreed password (or its NFKC / full-width variant) → READ;
- pikepdf.PasswordError for every candidate → WRONG_PASSWORD;
- any other failure, or a file qpdf opens only by reconstructing it (attempt_recovery=False
  fails) or with damage warnings → UNREADABLE, never NOT_ENCRYPTED;
- more pages than allowed → UNREADABLE; no text on any page and no filled AcroForm field →
  UNREADABLE "no text layer" (shape "scan").
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mailbot.forms.model import PdfReading, PdfStatus

TEXT_LIMIT = 20_000  # characters of page text kept in PdfReading.text
MAX_FIELDS = 2_000  # AcroForm terminal fields read at most (a form has a few dozen)
MAX_FIELD_DEPTH = 32  # nesting of /Kids in the AcroForm field tree


# --------------------------------------------------------------------------- unlocking


@dataclass
class Unlocked:
    pdf: object  # pikepdf.Pdf, open
    status: PdfStatus  # READ or NOT_ENCRYPTED
    detail: str = ""


def password_candidates(password: str) -> list[str]:
    """The agreed password, its NFKC form and its full-width form (IME left in 全角 mode)."""
    nfkc = unicodedata.normalize("NFKC", password)
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in nfkc)
    out: list[str] = []
    for p in (password, nfkc, wide):
        if p and p not in out:
            out.append(p)
    return out


def unlock(data: bytes, password: str) -> Unlocked | PdfReading:
    """Open `data`: with an empty password first (no password needed → NOT_ENCRYPTED), then with
    the agreed password and its variants (→ READ), else WRONG_PASSWORD / UNREADABLE."""
    import pikepdf

    def attempt(pw: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "A password was provided, but no password was needed"
            return pikepdf.open(io.BytesIO(data), password=pw, attempt_recovery=False,
                                suppress_warnings=True)

    try:
        pdf = attempt("")
    except pikepdf.PasswordError:
        pass
    except Exception as e:  # noqa: BLE001 - any other failure is a broken file
        return PdfReading(PdfStatus.UNREADABLE, detail=_damaged(e))
    else:
        if pdf.is_encrypted:
            return Unlocked(pdf, PdfStatus.NOT_ENCRYPTED,
                            "encrypted with an empty user password (opens without a password)")
        return Unlocked(pdf, PdfStatus.NOT_ENCRYPTED, "no password")

    candidates = password_candidates(password)
    for i, pw in enumerate(candidates):
        try:
            pdf = attempt(pw)
        except pikepdf.PasswordError:
            continue
        except Exception as e:  # noqa: BLE001
            return PdfReading(PdfStatus.UNREADABLE, detail=_damaged(e))
        if i == 0 or pw == unicodedata.normalize("NFKC", password):
            return Unlocked(pdf, PdfStatus.READ, "")
        return Unlocked(pdf, PdfStatus.READ, "opened with the password typed in full-width characters")
    return PdfReading(PdfStatus.WRONG_PASSWORD, detail="the agreed password does not open it")


def _damaged(e: BaseException) -> str:
    msg = str(e).replace("\n", " ")
    msg = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "", msg).strip(" :")
    return f"damaged or not a PDF: {type(e).__name__}: {msg[:200]}"


def _warnings_detail(pdf) -> str:
    found = [re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(w)).strip(" :") for w in pdf.get_warnings()]
    if not found:
        return ""
    return f"damaged (qpdf: {found[0][:200]}{f' and {len(found) - 1} more' if len(found) > 1 else ''})"


# --------------------------------------------------------------------------- AcroForm


def _name_text(name) -> str:
    """A PDF name as text: '/B#e3#83#95…' → 'Bフ…' (UTF-8, else cp932, else latin-1)."""
    raw = bytes(name.unparse())[1:] if hasattr(name, "unparse") else str(name)[1:].encode("latin-1", "replace")
    raw = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)
    for enc in ("utf-8", "cp932"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _text(obj) -> str:
    import pikepdf

    if isinstance(obj, pikepdf.String):
        return str(obj)
    if isinstance(obj, pikepdf.Name):
        return _name_text(obj)
    return ""


def _get(node, key: str, inherited: dict):
    if key in node:
        return node[key]
    return inherited.get(key)


def acroform_values(pdf) -> dict[str, object]:
    """Terminal fields of Root.AcroForm.Fields → {full name: value}.

    Text and choice fields give their text (a multiple choice gives a list); check boxes give
    True (any /V but /Off) or False; a radio group gives the chosen option's export name (its
    /Opt label where there is one) or False when nothing is chosen.  Empty text is omitted."""
    import pikepdf

    try:
        fields = pdf.Root.AcroForm.Fields
    except (AttributeError, KeyError):
        return {}
    if not isinstance(fields, pikepdf.Array):
        return {}
    out: dict[str, object] = {}
    seen: set[tuple[int, int]] = set()
    count = 0

    def walk(node, prefix: str, inherited: dict, depth: int) -> None:
        nonlocal count
        if depth > MAX_FIELD_DEPTH or count > MAX_FIELDS or not isinstance(node, pikepdf.Dictionary):
            return
        if node.is_indirect:
            if node.objgen in seen:
                return
            seen.add(node.objgen)
        part = _text(node.get("/T")) if "/T" in node else ""
        name = f"{prefix}.{part}" if prefix and part else (part or prefix)
        inh = dict(inherited)
        for key in ("/FT", "/V", "/Ff", "/Opt"):
            if key in node:
                inh[key] = node[key]
        kids = node.get("/Kids")
        # kids that carry /T are fields; kids without /T are only widgets of this field
        if isinstance(kids, pikepdf.Array) and any(isinstance(k, pikepdf.Dictionary) and "/T" in k for k in kids):
            for kid in kids:
                walk(kid, name, inh, depth + 1)
            return
        count += 1
        if name:
            value = _field_value(inh)
            if value is not None and value != "" and value != []:
                out[name] = value
            elif inh.get("/FT") == pikepdf.Name.Btn and name not in out:
                out[name] = False

    for f in fields:
        walk(f, "", {}, 0)
    return out


def _field_value(inh: dict):
    import pikepdf

    ft = inh.get("/FT")
    v = inh.get("/V")
    if v is None:
        return None
    opt = inh.get("/Opt")
    if ft == pikepdf.Name.Btn:
        if not isinstance(v, pikepdf.Name):
            return None
        if v == pikepdf.Name.Off:
            return False
        flags = int(inh.get("/Ff", 0)) if isinstance(inh.get("/Ff", 0), int | pikepdf.Object) else 0
        export = _name_text(v)
        is_radio = bool(flags & (1 << 15)) or bool(flags & (1 << 16))
        if isinstance(opt, pikepdf.Array) and export.isdigit() and int(export) < len(opt):
            return _text(opt[int(export)]) or export
        if is_radio:
            return export
        return True
    if isinstance(v, pikepdf.Array):
        values = [_opt_display(_text(x), opt) for x in v]
        return [x for x in values if x]
    text = _text(v)
    if ft == pikepdf.Name.Ch:
        text = _opt_display(text, opt)
    return text.strip("\x00") if text else None


def _opt_display(export: str, opt) -> str:
    """A choice field's /Opt may pair [export, display]: show the display text."""
    import pikepdf

    if isinstance(opt, pikepdf.Array):
        for item in opt:
            if isinstance(item, pikepdf.Array) and len(item) == 2 and _text(item[0]) == export:
                return _text(item[1]) or export
    return export


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Word:
    """A word as pdfplumber extracted it; positions in points, pages stacked top to bottom."""

    text: str  # as printed (not normalised)
    x0: float
    x1: float
    top: float
    bottom: float
    size: float
    page: int


@dataclass(frozen=True)
class Cell:
    x0: float
    top: float
    x1: float
    bottom: float
    page: int

    def contains(self, w: Word) -> bool:
        cx, cy = (w.x0 + w.x1) / 2, (w.top + w.bottom) / 2
        return self.x0 - 0.5 <= cx <= self.x1 + 0.5 and self.top - 0.5 <= cy <= self.bottom + 0.5


@dataclass
class Layout:
    words: list[Word] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    pages: int = 0


PAGE_GAP = 50.0  # points between stacked pages


LAYOUT_CHAR_BUDGET = 20_000  # a form is a page or two: stop reading pages past this much text


def extract_layout(pdf_bytes: bytes, max_pages: int) -> Layout:
    """Words (with font size) and table cells of the pages, via pdfplumber; pages after the
    first LAYOUT_CHAR_BUDGET characters are not read (a form is one or two pages)."""
    import pdfplumber

    layout = Layout()
    offset = 0.0
    chars = 0
    with pdfplumber.open(io.BytesIO(pdf_bytes)) as doc:
        for i, page in enumerate(doc.pages):
            if i >= max_pages or chars > LAYOUT_CHAR_BUDGET:
                break
            chars += len(page.chars)
            layout.pages += 1
            for w in page.extract_words(keep_blank_chars=False, use_text_flow=False, extra_attrs=["size"]):
                text = w.get("text") or ""
                if not text.strip():
                    continue
                layout.words.append(Word(text, float(w["x0"]), float(w["x1"]), float(w["top"]) + offset,
                                         float(w["bottom"]) + offset, float(w.get("size") or 10.0), i))
            if page.chars:  # tables only matter where there is text
                try:
                    tables = page.find_tables()
                except Exception:  # noqa: BLE001 - a table finder failure only loses the cells
                    tables = []
                for t in tables:
                    for c in t.cells:
                        if c is None:
                            continue
                        x0, top, x1, bottom = (float(v) for v in c)
                        layout.cells.append(Cell(x0, top + offset, x1, bottom + offset, i))
            offset += float(page.height) + PAGE_GAP
            page.flush_cache() if hasattr(page, "flush_cache") else None
    return layout


def layout_text(layout: Layout, limit: int = TEXT_LIMIT) -> str:
    """The page text: words grouped into lines by position (for the audit trail and 備考)."""
    from mailbot.forms.application import group_lines  # the same line grouping the reader uses

    out: list[str] = []
    size = 0
    page = 0
    for line in group_lines(layout.words):
        if line[0].page != page:
            out.append("\f")
            page = line[0].page
        s = " ".join(w.text for w in line)
        out.append(s)
        size += len(s) + 1
        if size > limit:
            break
    return "\n".join(out)[:limit]


# --------------------------------------------------------------------------- the whole read


def read_form(data: bytes, form: str, *, password: str, max_pages: int, rules_dir: Path) -> PdfReading:
    """Unlock and read one PDF; `form` is "application", "termination" or anything else (text
    only).  Runs in the sandbox child; exceptions are the sandbox's to turn into UNREADABLE."""
    import pikepdf

    opened = unlock(data, password)
    if isinstance(opened, PdfReading):
        return opened
    pdf = opened.pdf
    with pdf:
        pages = len(pdf.pages)
        if pages > max_pages:
            return PdfReading(PdfStatus.UNREADABLE, detail=f"too many pages ({pages} > {max_pages})")
        if pages == 0:
            return PdfReading(PdfStatus.UNREADABLE, detail="no pages")
        acro = acroform_values(pdf)
        buf = io.BytesIO()
        pdf.save(buf, stream_decode_level=pikepdf.StreamDecodeLevel.none, encryption=False,
                 preserve_pdfa=False, fix_metadata_version=False)
        damage = _warnings_detail(pdf)
    if damage:
        return PdfReading(PdfStatus.UNREADABLE, detail=damage)
    layout = extract_layout(buf.getvalue(), max_pages)
    del buf
    text = layout_text(layout)

    status, detail = opened.status, opened.detail
    if form == "application":
        from mailbot.forms.application import read_application

        shape, fields = read_application(acro, layout, rules_dir)
    elif form == "termination":
        from mailbot.forms.termination import read_termination

        shape, fields = read_termination(acro, layout, rules_dir)
    else:
        shape, fields = ("acroform" if acro else "layout"), {}
    if shape != "acroform" and not layout.words:
        return PdfReading(PdfStatus.UNREADABLE, detail="no text layer (a scan?)", shape="scan")
    if shape == "acroform":  # the values live in the fields, not in the page text
        filled = "\n".join(f"{k}: {v}" for k, v in acro.items() if v not in (False, "", None))
        text = (text + "\n\f\n" + filled)[:TEXT_LIMIT] if text.strip() else filled[:TEXT_LIMIT]
    return PdfReading(status, detail=detail, shape=shape, fields=fields, text=text, pages=pages)


def _warm_cmaps() -> None:
    """Load pdfminer's Japanese CMaps (Adobe-Japan1: forms written with the non-embedded
    MS明朝/ゴシック or Heisei fonts) once at import.  The sandbox's forkserver imports this
    module, so every child starts with them loaded instead of reading them again (~25 ms)."""
    try:
        from pdfminer.cmapdb import CMapDB

        for name in ("UniJIS-UCS2-H", "UniJIS-UTF16-H", "90ms-RKSJ-H"):
            CMapDB.get_cmap(name)
        CMapDB.get_unicode_map("Adobe-Japan1", vertical=False)
    except Exception:  # noqa: BLE001 - only a speed-up
        pass


_warm_cmaps()
