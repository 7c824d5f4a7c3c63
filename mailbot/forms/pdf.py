"""Unlock a PDF with pikepdf, then read it: AcroForm fields, or positioned words and table cells
(PDFium finds the characters and the ruling, pdfplumber's algorithms make words and cells).

This module does the work *inside* the sandbox's child process (see sandbox.py); nothing here
protects itself against hostile files, the child's limits do.  A form reader
(read.read_form) takes what `open_pdf` finds; the parent calls it through `sandbox.read_pdf`.

    unlock(data, password)             -> Unlocked (an open pikepdf.Pdf and the status) | PdfReading
    acroform_values(pdf)               -> {field name: str | bool | list[str]}
    extract_layout(pdf_bytes, pages)   -> Layout (words with positions and font size, table cells)
    open_pdf(data, password, pages)    -> PdfContent (fields and layout) | PdfReading (unreadable)

Statuses (DOMAIN.md §4):
- opens with an empty password → NOT_ENCRYPTED, whether the file carries no encryption at all
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
    """Open `data`: a file that opens with an empty password → NOT_ENCRYPTED; with the agreed
    password or its variants → READ; else WRONG_PASSWORD / UNREADABLE.

    The agreed password is tried first: on an AES-256 file each try costs a deliberately slow key
    derivation, and when it matches the *user* password an empty one cannot also open the file.
    Only when it opened the file as the owner's, or not at all, is the empty password tried."""
    import pikepdf

    def attempt(pw: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "A password was provided, but no password was needed"
            return pikepdf.open(io.BytesIO(data), password=pw, attempt_recovery=False,
                                suppress_warnings=True)

    def without_password() -> Unlocked | PdfReading | None:
        try:
            pdf = attempt("")
        except pikepdf.PasswordError:
            return None
        except Exception as e:  # noqa: BLE001 - any other failure is a broken file
            return PdfReading(PdfStatus.UNREADABLE, detail=_damaged(e))
        if pdf.is_encrypted:
            return Unlocked(pdf, PdfStatus.NOT_ENCRYPTED,
                            "encrypted with an empty user password (opens without a password)")
        return Unlocked(pdf, PdfStatus.NOT_ENCRYPTED, "no password")

    fast = _open_with_aes256_user_key(data, password)
    if fast is not None:
        return fast
    for i, pw in enumerate(password_candidates(password)):
        try:
            pdf = attempt(pw)
        except pikepdf.PasswordError:
            continue
        except Exception as e:  # noqa: BLE001
            return PdfReading(PdfStatus.UNREADABLE, detail=_damaged(e))
        if not pdf.is_encrypted:
            return Unlocked(pdf, PdfStatus.NOT_ENCRYPTED, "no password")
        if not pdf.user_password_matched:  # the owner's password: may the user's be empty?
            empty = without_password()
            if empty is not None:
                pdf.close()
                return empty
        if i == 0 or pw == unicodedata.normalize("NFKC", password):
            return Unlocked(pdf, PdfStatus.READ, "")
        return Unlocked(pdf, PdfStatus.READ, "opened with the password typed in full-width characters")
    return without_password() or PdfReading(PdfStatus.WRONG_PASSWORD, detail="the agreed password does not open it")


def _open_with_aes256_user_key(data: bytes, password: str) -> Unlocked | None:
    """The common case, fast: an AES-256 file (R5/R6) whose user password is the agreed one.

    Its key derivation (ISO 32000-2 algorithm 2.B: 64+ rounds of AES and SHA-2) is most of the
    cost of reading a form in qpdf's own crypto (~10 ms); OpenSSL does it in ~1 ms.  So the
    encryption dictionary is read with a placeholder key (its strings are not encrypted), the
    file key is derived here, and qpdf opens the file with it (`hex_password`).  Anything else —
    not AES-256, another password, a broken file — returns None and takes the ordinary path."""
    import pikepdf

    if not password.isascii():  # qpdf's own path handles the UTF-8/SASLprep subtleties
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = pikepdf.open(io.BytesIO(data), password="00" * 32, hex_password=True, attempt_recovery=False,
                                 suppress_warnings=True)
    except Exception:  # noqa: BLE001 - the ordinary path says what is wrong
        return None
    with probe:
        encrypt = probe.trailer.get("/Encrypt") if probe.is_encrypted else None
        if not isinstance(encrypt, pikepdf.Dictionary) or encrypt.get("/R") not in (5, 6):
            return None
        try:
            revision, u, ue = int(encrypt.R), bytes(encrypt.U), bytes(encrypt.UE)
            perms, p = bytes(encrypt.get("/Perms", b"")), int(encrypt.get("/P", 0))
        except (AttributeError, TypeError, ValueError, pikepdf.PdfError):
            return None
    if len(u) < 48 or len(ue) < 32:
        return None
    pw = password.encode("ascii")[:127]
    key = _aes256_decrypt(_aes256_hash(pw, u[40:48], b"", revision), ue[:32])  # the file key, from /UE
    # The key is right when /Perms decrypts to its check bytes (ISO 32000-2 algorithm 13): one
    # derivation instead of two.  Else the password is checked against /U as the standard says
    # (a file whose /Perms its writer got wrong still opens).
    if not _perms_match(key, perms, p) and _aes256_hash(pw, u[32:40], b"", revision) != u[:32]:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pdf = pikepdf.open(io.BytesIO(data), password=key.hex(), hex_password=True, attempt_recovery=False,
                               suppress_warnings=True)
    except Exception:  # noqa: BLE001
        return None
    return Unlocked(pdf, PdfStatus.READ, "")


def _aes256_hash(password: bytes, salt: bytes, udata: bytes, revision: int) -> bytes:
    """ISO 32000-2 algorithm 2.B (R6), or plain SHA-256 (R5, Adobe's extension level 3)."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    k = hashlib.sha256(password + salt + udata).digest()
    if revision == 5:
        return k
    i = 0
    while True:
        k1 = (password + k + udata) * 64
        encryptor = Cipher(algorithms.AES(k[:16]), modes.CBC(k[16:32])).encryptor()
        e = encryptor.update(k1) + encryptor.finalize()
        k = (hashlib.sha256, hashlib.sha384, hashlib.sha512)[sum(e[:16]) % 3](e).digest()
        i += 1
        if i >= 64 and e[-1] <= i - 32:
            return k[:32]


def _perms_match(key: bytes, perms: bytes, p: int) -> bool:
    """/Perms decrypted with the file key (AES-256, ECB) reads "adb" at 9-11 and the
    permissions /P at 0-3: 56 bits that a wrong key matches once in 7 × 10^16."""
    if len(perms) < 16 or len(key) != 32:
        return False
    plain = _aes256_decrypt(key, perms[:16])  # one block: the standard's ECB
    return plain[9:12] == b"adb" and plain[:4] == (p & 0xFFFFFFFF).to_bytes(4, "little")


def _aes256_decrypt(key: bytes, encrypted: bytes) -> bytes:
    """AES-256 with no IV and no padding (CBC from a zero IV: ECB for a single block), as the
    standard decrypts /UE (the file key) and /Perms."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    return decryptor.update(encrypted) + decryptor.finalize()


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


@dataclass
class Layout:
    words: list[Word] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    pages: int = 0


PAGE_GAP = 50.0  # points between stacked pages


LAYOUT_CHAR_BUDGET = 20_000  # a form is a page or two: stop reading pages past this much text
MAX_PAGE_CONTENT = 32 * 2**20  # decoded content stream bytes of a page (a form's: ~50 kB)
MAX_EDGES = 50_000  # drawn line pieces looked at per page (a form's grid has a few hundred)


def extract_layout(pdf_bytes: bytes, max_pages: int) -> Layout:
    """Words (with font size) and table cells of the pages, via PDFium (pypdfium2); pages after
    the first LAYOUT_CHAR_BUDGET characters are not read (a form is one or two pages).

    PDFium reads a page in C++, about ten times faster than pdfminer in Python; what it finds is
    given the shape pdfplumber gives (characters as dicts, drawn lines as edges), and words and
    table cells are made from it by pdfplumber's own word extractor and table finder, so a form
    reads the same either way (tests/test_forms_read.py compares both)."""
    import pypdfium2 as pdfium
    from pdfplumber.utils.text import WordExtractor

    layout = Layout()
    offset = 0.0
    chars_read = 0
    words = WordExtractor(x_tolerance=3, y_tolerance=3, keep_blank_chars=False, use_text_flow=False,
                          extra_attrs=["size"])
    doc = pdfium.PdfDocument(pdf_bytes)
    try:
        for i in range(min(len(doc), max_pages)):
            if chars_read > LAYOUT_CHAR_BUDGET:
                break
            page = doc[i]
            try:
                height = page.get_height()
                chars = _page_chars(page, height)
                chars_read += len(chars)
                layout.pages += 1
                for w in words.extract_words(chars):
                    text = w.get("text") or ""
                    if text.strip():
                        layout.words.append(Word(text, float(w["x0"]), float(w["x1"]), float(w["top"]) + offset,
                                                 float(w["bottom"]) + offset, float(w.get("size") or 10.0), i))
                if chars:  # tables only matter where there is text
                    for x0, top, x1, bottom in _table_cells(_page_edges(page, height)):
                        layout.cells.append(Cell(x0, top + offset, x1, bottom + offset, i))
                offset += height + PAGE_GAP
            finally:
                page.close()
    finally:
        doc.close()
    return layout


_NOT_CHARS = frozenset((0, 0x0A, 0x0D, 0xFFFE, 0xFFFF))  # none, line breaks, PDFium's "unknown"


def _page_chars(page, height: float) -> list[dict]:
    """The page's characters as pdfplumber's char dicts (the attributes its word extractor uses),
    without the spaces and line breaks PDFium generates between words and lines."""
    import pypdfium2.raw as raw

    textpage = page.get_textpage()
    # the C functions as locals: a form page has a thousand characters, four calls each
    unicode, generated, loose_box, font_size, angle = (raw.FPDFText_GetUnicode, raw.FPDFText_IsGenerated,
                                                       raw.FPDFText_GetLooseCharBox, raw.FPDFText_GetFontSize,
                                                       raw.FPDFText_GetCharAngle)
    try:
        tp = textpage.raw
        box = raw.FS_RECTF()
        chars = []
        for k in range(raw.FPDFText_CountChars(tp)):
            code = unicode(tp, k)
            if code in _NOT_CHARS or 0xD800 <= code <= 0xDFFF:
                continue
            # PDFium generates only spaces and line breaks (between words and lines): a space is
            # asked whether it is one, line breaks are dropped above
            if code == 0x20 and generated(tp, k) == 1:
                continue
            if not loose_box(tp, k, box):
                continue
            left, right, y1, y0 = box.left, box.right, box.top, box.bottom
            top, bottom = height - y1, height - y0
            size = font_size(tp, k)
            chars.append({"text": chr(code), "x0": left, "x1": right, "top": top, "bottom": bottom,
                          "doctop": top, "y0": y0, "y1": y1, "width": right - left,
                          "height": bottom - top, "size": size if size > 0 else bottom - top,
                          "upright": abs(angle(tp, k)) < 1e-3, "page_number": 1})
        return chars
    finally:
        textpage.close()


def _page_edges(page, height: float) -> list[dict]:
    """The horizontal and vertical pieces of every drawn path (in form XObjects too) as
    pdfplumber's edge dicts: the ruling of tables."""
    import ctypes

    import pypdfium2.raw as raw

    edges: list[dict] = []
    x, y = ctypes.c_float(), ctypes.c_float()

    def points(path, m) -> list[list[tuple[float, float]]]:
        """The path's subpaths (corner points, closed ones closed) in page space."""
        subpaths: list[list[tuple[float, float]]] = []
        for s in range(raw.FPDFPath_CountSegments(path)):
            seg = raw.FPDFPath_GetPathSegment(path, s)
            if not raw.FPDFPathSegment_GetPoint(seg, x, y):
                continue
            p = (m[0] * x.value + m[2] * y.value + m[4], m[1] * x.value + m[3] * y.value + m[5])
            if raw.FPDFPathSegment_GetType(seg) == raw.FPDF_SEGMENT_MOVETO or not subpaths:
                subpaths.append([p])
            else:
                subpaths[-1].append(p)
            if raw.FPDFPathSegment_GetClose(seg) and subpaths[-1][0] != p:
                subpaths[-1].append(subpaths[-1][0])
        return subpaths

    def add(p0: tuple[float, float], p1: tuple[float, float]) -> None:
        x0, x1 = sorted((p0[0], p1[0]))
        top, bottom = sorted((height - p0[1], height - p1[1]))
        if abs(p0[0] - p1[0]) < 1e-3:
            orientation = "v"
        elif abs(p0[1] - p1[1]) < 1e-3:
            orientation = "h"
        else:
            return
        edges.append({"object_type": "curve_edge", "orientation": orientation, "x0": x0, "x1": x1, "top": top,
                      "bottom": bottom, "doctop": top, "y0": height - bottom, "y1": height - top,
                      "width": x1 - x0, "height": bottom - top})

    def walk(count, get, m) -> None:
        for k in range(count):
            obj = get(k)
            kind = raw.FPDFPageObj_GetType(obj)
            own = raw.FS_MATRIX()
            if not raw.FPDFPageObj_GetMatrix(obj, own):
                continue
            # the object's matrix, then its container's (a form XObject within the page)
            mm = (own.a * m[0] + own.b * m[2], own.a * m[1] + own.b * m[3],
                  own.c * m[0] + own.d * m[2], own.c * m[1] + own.d * m[3],
                  own.e * m[0] + own.f * m[2] + m[4], own.e * m[1] + own.f * m[3] + m[5])
            if kind == raw.FPDF_PAGEOBJ_PATH:
                for sub in points(obj, mm):
                    for p0, p1 in zip(sub, sub[1:]):
                        add(p0, p1)
            elif kind == raw.FPDF_PAGEOBJ_FORM and len(edges) < MAX_EDGES:
                walk(raw.FPDFFormObj_CountObjects(obj), lambda j, o=obj: raw.FPDFFormObj_GetObject(o, j), mm)
            if len(edges) >= MAX_EDGES:
                return

    walk(raw.FPDFPage_CountObjects(page.raw), lambda j: raw.FPDFPage_GetObject(page.raw, j), (1, 0, 0, 1, 0, 0))
    return edges


def _table_cells(edges: list[dict]) -> list[tuple[float, float, float, float]]:
    """Table cells from the ruling, as pdfplumber's find_tables() finds them (default settings:
    snap and join 3 pt, edges of at least 3 pt, intersections within 3 pt, tables of 2+ cells)."""
    from pdfplumber.table import cells_to_tables, edges_to_intersections, merge_edges
    from pdfplumber.utils import filter_edges

    ruled = [e for e in edges if e["orientation"] == "v" and e["height"] >= 1] + \
        [e for e in edges if e["orientation"] == "h" and e["width"] >= 1]
    if not ruled:
        return []
    merged = filter_edges(merge_edges(ruled, snap_x_tolerance=3, snap_y_tolerance=3, join_x_tolerance=3,
                                      join_y_tolerance=3), min_length=3)
    cells = cells_from_intersections(edges_to_intersections(merged, 3, 3))
    return [tuple(float(v) for v in c) for table in cells_to_tables(cells) for c in table]


def cells_from_intersections(intersections: dict) -> list[tuple[float, float, float, float]]:
    """pdfplumber's intersections_to_cells, the same cells in the same order, with each point's
    edges made a set once (it makes them again for every pair it looks at: ~3 ms a grid form)."""
    from operator import itemgetter

    bbox = itemgetter("x0", "top", "x1", "bottom")
    v_edges = {p: frozenset(map(bbox, e["v"])) for p, e in intersections.items()}
    h_edges = {p: frozenset(map(bbox, e["h"])) for p, e in intersections.items()}

    def connects(p1, p2) -> bool:
        return bool((p1[0] == p2[0] and v_edges[p1] & v_edges[p2]) or (p1[1] == p2[1] and h_edges[p1] & h_edges[p2]))

    points = sorted(intersections)
    column: dict[float, list] = {}  # x → its points, top to bottom
    row: dict[float, list] = {}  # top → its points, left to right
    for p in points:
        column.setdefault(p[0], []).append(p)
        row.setdefault(p[1], []).append(p)
    cells = []
    for pt in points:
        below = [q for q in column[pt[0]] if q[1] > pt[1]]
        right = [q for q in row[pt[1]] if q[0] > pt[0]]
        found = None
        for below_pt in below:
            if not connects(pt, below_pt):
                continue
            for right_pt in right:
                if not connects(pt, right_pt):
                    continue
                corner = (right_pt[0], below_pt[1])
                if corner in intersections and connects(corner, right_pt) and connects(corner, below_pt):
                    found = (pt[0], pt[1], corner[0], corner[1])
                    break
            if found:
                break
        if found:
            cells.append(found)
    return cells


# --------------------------------------------------------------------------- the whole read


@dataclass
class PdfContent:
    """An unlocked PDF's AcroForm values and page layout, for a form reader."""

    status: PdfStatus  # READ or NOT_ENCRYPTED
    detail: str
    acro: dict[str, object]
    layout: Layout
    pages: int


def open_pdf(data: bytes, *, password: str, max_pages: int) -> PdfContent | PdfReading:
    """Unlock one PDF and take out its fields and layout; a PdfReading when it cannot be read.
    Runs in the sandbox child; exceptions are the sandbox's to turn into UNREADABLE."""
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
        oversized = _oversized_content(pdf, max_pages)
        if oversized:
            return PdfReading(PdfStatus.UNREADABLE, detail=oversized)
        acro = acroform_values(pdf)
        buf = io.BytesIO()
        pdf.save(buf, stream_decode_level=pikepdf.StreamDecodeLevel.none, encryption=False,
                 preserve_pdfa=False, fix_metadata_version=False)
        damage = _warnings_detail(pdf)
    if damage:
        return PdfReading(PdfStatus.UNREADABLE, detail=damage)
    layout = extract_layout(buf.getvalue(), max_pages)
    return PdfContent(opened.status, opened.detail, acro, layout, pages)


def _oversized_content(pdf, max_pages: int) -> str:
    """Why a page's content is no form's (a decompression bomb), or "".  Flate streams are
    inflated a megabyte at a time and only counted, so a bomb costs no memory here; PDFium would
    inflate it whole before reading."""
    import pikepdf

    for number, page in enumerate(pdf.pages[:max_pages], 1):
        contents = page.obj.get("/Contents")
        streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents]
        size = 0
        for stream in streams:
            if isinstance(stream, pikepdf.Stream):
                size += _inflated_size(stream, MAX_PAGE_CONTENT - size)
            if size > MAX_PAGE_CONTENT:
                return f"page {number}: content over {MAX_PAGE_CONTENT // 2**20} MB once inflated (a bomb?)"
    return ""


def _inflated_size(stream, cap: int) -> int:
    """The stream's decoded length, counted up to just past `cap` for Flate; other filters are
    decoded whole by qpdf (within the reader's memory limit)."""
    import zlib

    import pikepdf

    filters = stream.get("/Filter")
    filters = list(filters) if isinstance(filters, pikepdf.Array) else [filters] if filters is not None else []
    if any(f not in (pikepdf.Name.FlateDecode, pikepdf.Name("/Fl")) for f in filters):
        try:
            return len(stream.read_bytes())
        except pikepdf.PdfError:
            return 0  # a filter qpdf cannot decode: PDFium says what it makes of it

    def inflate(chunks):
        d = zlib.decompressobj()
        for chunk in chunks:
            while chunk:
                yield d.decompress(chunk, 2**20)
                chunk = d.unconsumed_tail
            if d.eof:
                return

    chunks = iter([stream.read_raw_bytes()])
    for _ in filters:
        chunks = inflate(chunks)
    size = 0
    try:
        for out in chunks:
            size += len(out)
            if size > cap:
                break
    except zlib.error:
        return 0  # broken data: PDFium says what it makes of it
    return size
