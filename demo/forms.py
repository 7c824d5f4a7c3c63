"""Realistic sample forms, as branches attach them: for the tests and the embedded demo.

    application_pdf(form, layout=, producer=, encryption=, password=) -> PDF bytes
    termination_pdf(form, layout=, producer=, encryption=, password=) -> PDF bytes
    scanned_pdf(encryption=, password=)                               -> an image-only page
    sample_application(code, **overrides)                             -> a complete ApplicationForm
    marks(layout, producer)                                           -> (chosen, unchosen) marks

Application layouts (A4, one page, title 「USEN SPOT ご加入申込書」), each with the /Creator and
/Producer of the tool that really makes that shape:

    acroform             fillable form (Acrobat): fields named as DOMAIN.md §3, values filled
                         in, with appearance streams; mail_addresses is ONE multi-line field
    acroform_split       the same with mail_address_1 … mail_address_3
    excel_grid           Excel sheet printed to PDF: drawn cell grid, label | value, every option
                         printed with ☑/☐ (■/□ where the font has no ballot box), the addresses
                         wrapped over two lines inside their cells
    word_stacked         Word document: label on its line, value on the line below, ●/○ options,
                         labels spaced out by hand (「店 舗 名」「ご 担 当 者 名」)
    browser_chosen_only  a web form printed from Chrome: 「label：value」 on one line, only the
                         chosen option printed, check boxes as ✓
    label_below          LibreOffice Calc with bottom-aligned label cells and top-aligned values:
                         every label is printed below its value (wrapped values on two lines)

Producers: "reportlab" (non-embedded CID fonts HeiseiKakuGo-W5 / HeiseiMin-W3, no font file
needed; ✓ from ZapfDingbats, to which a /ToUnicode is added so the text reads as ✓) and "fpdf2"
(embedded TrueType subsets of IPA Gothic / IPA P Gothic, ☑☐ from DejaVu Sans).  When fpdf2 or the
IPA font is missing, "fpdf2" quietly falls back to reportlab, so the demo runs on a bare machine.

Missing values are simply not printed / not marked / not set, so tests can build forms that
lack any field.  Encryption is applied with pikepdf after generation; the output is
deterministic (fixed dates and IDs) except for the random salts and IVs of AES.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from mailbot.forms.model import ApplicationForm, TerminationForm

__all__ = [
    "ENCRYPTIONS",
    "LAYOUTS",
    "PRODUCERS",
    "TERMINATION_LAYOUTS",
    "application_pdf",
    "marks",
    "sample_application",
    "scanned_pdf",
    "termination_pdf",
]

LAYOUTS: tuple[str, ...] = (
    "acroform", "acroform_split", "excel_grid", "word_stacked", "browser_chosen_only", "label_below",
)
TERMINATION_LAYOUTS: tuple[str, ...] = ("table", "plain")
PRODUCERS: tuple[str, ...] = ("reportlab", "fpdf2")
ENCRYPTIONS: tuple[str | None, ...] = (None, "aes256", "aes128", "rc4")

TITLE = "USEN SPOT ご加入申込書"
TERMINATION_TITLE = "解約申請書"
OWNER_PASSWORD = "usen-spot-owner"

LINE_KINDS = ("フレッツ光ネクスト", "Bフレッツ")
LINE_TYPES = ("ファミリー", "マンション")
OPENING_CHECKS = ("開通通知書", "NTT請求書(裏面)", "116へ確認")
SERVICES = ("USEN SPOT", "USEN SPOT Plus")
TOURIST = "外国人対応SSIDオプション"
INTRO = "お申し込みいただき誠にありがとうございます。以下、お客様ご記入欄へ必要事項のご記入をお願い申し上げます。"

PAGE_W, PAGE_H = 595.2756, 841.8898  # A4 in points
_CREATED = "D:20260401100512+09'00'"
_CREATED_DT = datetime(2026, 4, 1, 10, 5, 12, tzinfo=timezone(timedelta(hours=9)))

# What really makes each shape: (Creator, Producer, Title or None)
_CHROME_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
_EXCEL = ("Microsoft® Excel® for Microsoft 365", "Microsoft® Excel® for Microsoft 365", None)
_WORD = ("Microsoft® Word for Microsoft 365", "Microsoft® Word for Microsoft 365", None)
_INFO: dict[str, tuple[str, str, str | None]] = {
    "acroform": ("Adobe Acrobat Pro (64-bit) 24.1.20643", "Adobe Acrobat Pro (64-bit) 24.1.20643", TITLE),
    "acroform_split": ("Adobe Acrobat Pro (64-bit) 24.1.20643", "Adobe Acrobat Pro (64-bit) 24.1.20643", TITLE),
    "excel_grid": _EXCEL,
    "word_stacked": _WORD,
    "browser_chosen_only": (_CHROME_UA, "Skia/PDF m120", "USEN SPOT ご加入申込書 - USEN 申込受付"),
    "label_below": ("Calc", "LibreOffice 7.6", None),
    "table": _EXCEL,
    "plain": _WORD,
    "scan": ("RICOH MP C3504ex", "RICOH MP C3504ex", None),
}

# fpdf2's fonts, first existing file wins
_FONT_FILES: dict[str, tuple[str, ...]] = {
    "gothic": ("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
               "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
    "pgothic": ("/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf",
                "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
                "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
    "mincho": ("/usr/share/fonts/opentype/ipafont-mincho/ipamp.ttf",
               "/usr/share/fonts/opentype/ipafont-mincho/ipam.ttf",
               "/usr/share/fonts/truetype/fonts-japanese-mincho.ttf",
               "/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf",
               "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"),
    "symbol": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",),
}
_CID_FONTS = {"gothic": "HeiseiKakuGo-W5", "pgothic": "HeiseiKakuGo-W5", "mincho": "HeiseiMin-W3"}
_ZAPF = {"✓": 0x33, "✔": 0x34}  # ZapfDingbats codes (a19, a20)


# ---- public API --------------------------------------------------------------------------------


def application_pdf(
    form: ApplicationForm,
    *,
    layout: str = "excel_grid",
    producer: str = "reportlab",
    encryption: str | None = "aes256",
    password: str = "uspot",
) -> bytes:
    """The application form `form` as a one-page A4 PDF in `layout`, made with `producer`."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
    _check(producer, encryption)
    if not isinstance(form.mail_addresses, tuple):  # a list would not hash (the render is cached)
        form = dataclasses.replace(form, mail_addresses=tuple(form.mail_addresses))
    return _encrypt(_application_plain(form, layout, _producer(producer)), encryption, password)


def termination_pdf(
    form: TerminationForm,
    *,
    layout: str = "table",
    producer: str = "reportlab",
    encryption: str | None = "aes256",
    password: str = "uspot",
) -> bytes:
    """The termination form (解約申請書): `table` (Excel, 2026年11月27日) or `plain` (Word, 2026/11/27)."""
    if layout not in TERMINATION_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {TERMINATION_LAYOUTS}")
    _check(producer, encryption)
    return _encrypt(_termination_plain(form, layout, _producer(producer)), encryption, password)


def scanned_pdf(encryption: str | None = "aes256", password: str = "uspot") -> bytes:
    """A scanned application form: one A4 page holding a single grey JPEG, no text layer."""
    _check("reportlab", encryption)
    return _encrypt(_scan_plain(), encryption, password)


def marks(layout: str, producer: str) -> tuple[str, str]:
    """(chosen, unchosen) mark printed in front of the options of `layout` by `producer`.
    ("✓", "") for browser_chosen_only (only the chosen option is printed), ("", "") for the
    fillable forms (values live in the fields)."""
    if layout in ("acroform", "acroform_split"):
        return ("", "")
    if layout == "browser_chosen_only":
        return ("✓", "")
    if layout == "word_stacked":
        return ("●", "○")
    if layout == "label_below":
        return ("■", "□")
    if layout == "excel_grid":
        return ("☑", "☐") if _can(_producer(producer), "☑☐") else ("■", "□")
    raise ValueError(f"unknown layout {layout!r}")


def sample_application(code: str, **overrides: object) -> ApplicationForm:
    """A complete, valid form for customer `code` (the same for the same code); `overrides` are
    ApplicationForm fields (None / () to leave one out).  The fees follow `plus`."""
    h = hashlib.sha256(("mailbot-form|" + code).encode()).digest()
    c = _CUSTOMERS[h[0] % len(_CUSTOMERS)]
    line_kind = LINE_KINDS[h[1] % 2]
    line_type = LINE_TYPES[h[2] % 2] if line_kind == "Bフレッツ" or h[2] % 3 else None
    n_mail = 1 + h[3] % 3
    plus = h[4] % 4 == 0
    values: dict[str, object] = dict(
        customer_code=code,
        contractor_kana=c.contractor_kana, contractor_name=c.contractor_name,
        contractor_address=c.contractor_address, contractor_phone=c.contractor_phone,
        shop_kana=c.shop_kana, shop_name=c.shop_name, shop_address=c.shop_address,
        shop_phone=c.shop_phone,
        line_kind=line_kind, line_type=line_type, opening_check=OPENING_CHECKS[h[5] % 3],
        mail_addresses=tuple(f"{local}@uspot.jp" for local in c.mail_locals[:n_mail]),
        contact_name=c.contact, plus=plus, ssid=c.ssid, tourist=h[6] % 3 == 0, remarks=None,
    )
    values.update(overrides)
    if "initial_fee" not in overrides:
        values["initial_fee"] = "21,000"
    if "monthly_fee" not in overrides:
        values["monthly_fee"] = "4,320" if values["plus"] else "2,160"
    return ApplicationForm(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Customer:
    contractor_kana: str
    contractor_name: str
    contractor_address: str
    contractor_phone: str
    shop_kana: str
    shop_name: str
    shop_address: str
    shop_phone: str
    contact: str
    mail_locals: tuple[str, ...]
    ssid: str


_CUSTOMERS: tuple[_Customer, ...] = (
    _Customer("カブシキガイシャ ヒダマリ", "株式会社ひだまり",
              "180-0004 東京都武蔵野市吉祥寺本町1丁目15番9号 吉祥寺ヒルズ5F", "0422-20-5511",
              "コーヒーテン ヒダマリ キチジョウジテン", "珈琲店 ひだまり 吉祥寺店",
              "180-0004 東京都武蔵野市吉祥寺本町2丁目4番16号 原ビル1F", "0422-20-5512",
              "小野 さやか", ("hidamari-kichijoji", "hidamari-info", "hidamari-staff"), "hidamari_Free_Wi-Fi"),
    _Customer("ユウゲンガイシャ タケノ", "有限会社竹野",
              "530-0012 大阪府大阪市北区芝田1丁目8番20号 梅田ノースプレイス7F", "06-6372-4410",
              "ヤキニク タケノ ウメダテン", "焼肉 竹野 梅田店",
              "530-0012 大阪府大阪市北区芝田2丁目3番18号 梅田センタービル地下1F", "06-6372-4411",
              "竹野 修", ("takeno-umeda", "takeno-yoyaku"), "TAKENO_GUEST"),
    _Customer("ホンダ イチロウ", "本田 一郎",
              "143-0016 東京都大田区大森北1丁目23番16号 大森北パークハウス203", "03-1234-5678",
              "カフェ アオヤマ", "カフェ AOYAMA",
              "107-0061 東京都港区北青山3丁目1番2号 青山セントクレストビル2F", "03-9999-3333",
              "香川 花子", ("aoyama", "cafe-aoyama", "c-aoya"), "+kitsune_Wi-Fi"),
    _Customer("カブシキガイシャ ハカタフーズ", "株式会社博多フーズ",
              "812-0011 福岡県福岡市博多区博多駅前3丁目25番21号 博多駅前ビジネスセンター8F", "092-431-7700",
              "イザカヤ ハカタノモリ", "居酒屋 博多の杜",
              "812-0011 福岡県福岡市博多区博多駅前2丁目6番12号 博多駅前ビル1F", "092-431-7701",
              "森 大輔", ("hakata-mori", "hakatanomori"), "HakataNoMori_WiFi"),
    _Customer("ゴウドウガイシャ サカエ", "合同会社さかえ",
              "460-0008 愛知県名古屋市中区栄3丁目18番1号 ナディアパークビジネスセンター12F", "052-251-3300",
              "ビヨウシツ サカエ", "美容室 さかえ 栄本店",
              "460-0008 愛知県名古屋市中区栄4丁目1番1号 中日ビル3F", "052-251-3301",
              "栄 美咲", ("sakae-hair", "sakae-yoyaku", "sakae-info"), "sakae_hair_free"),
    _Customer("カブシキガイシャ ホッコウ", "株式会社北光",
              "060-0005 北海道札幌市中央区北五条西2丁目5番 JRタワーオフィスプラザさっぽろ15F", "011-209-5100",
              "スープカレー ホッコウ サッポロエキマエテン", "スープカレー 北光 札幌駅前店",
              "060-0005 北海道札幌市中央区北五条西3丁目1番地 札幌駅前ビル2F", "011-209-5101",
              "北村 亮", ("hokko-sapporo",), "HOKKO_CURRY"),
)


# ---- producers and pens --------------------------------------------------------------------------


def _check(producer: str, encryption: str | None) -> None:
    if producer not in PRODUCERS:
        raise ValueError(f"unknown producer {producer!r}; one of {PRODUCERS}")
    if encryption not in ENCRYPTIONS:
        raise ValueError(f"unknown encryption {encryption!r}; one of {ENCRYPTIONS}")


def _font_file(kind: str) -> str | None:
    return next((p for p in _FONT_FILES[kind] if os.path.exists(p)), None)


@functools.lru_cache(maxsize=1)
def _fpdf2_available() -> bool:
    try:
        import fpdf  # noqa: F401
    except ImportError:
        return False
    return _font_file("gothic") is not None


def _producer(producer: str) -> str:
    """The producer really used: fpdf2 falls back to reportlab without fpdf2 or an IPA font."""
    return "fpdf2" if producer == "fpdf2" and _fpdf2_available() else "reportlab"


@functools.lru_cache(maxsize=8)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def _can(producer: str, chars: str) -> bool:
    """Whether `producer` prints every char of `chars` as a glyph that extracts as that char."""
    if producer == "reportlab":
        return not set(chars) & set("☑☐")  # not in Adobe-Japan1 nor ZapfDingbats
    covered: set[int] = set()
    for kind in ("gothic", "symbol"):
        path = _font_file(kind)
        if path:
            covered |= _cmap(path)
    return all(ord(ch) in covered for ch in chars)


class _Pen(Protocol):
    """Drawing on one A4 page; (x, y) from the top left in points, y of text = its baseline."""

    def text(self, x: float, y: float, s: str, size: float = 9.5, font: str = "gothic") -> None: ...
    def width(self, s: str, size: float = 9.5, font: str = "gothic") -> float: ...
    def line(self, x1: float, y1: float, x2: float, y2: float, lw: float = 0.5) -> None: ...
    def rect(self, x: float, y: float, w: float, h: float, lw: float = 0.5,
             fill: float | None = None, stroke: bool = True) -> None: ...
    def output(self) -> bytes: ...


@functools.lru_cache(maxsize=1)
def _register_cid_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    for name in set(_CID_FONTS.values()):
        pdfmetrics.registerFont(UnicodeCIDFont(name))


class _ReportLabPen:
    """reportlab: CID fonts named, not embedded (Adobe-Japan1, UniJIS-UCS2-H); ✓ ✔ in ZapfDingbats."""

    def __init__(self) -> None:
        from reportlab.pdfgen import canvas

        _register_cid_fonts()
        self._buf = io.BytesIO()
        self._c = canvas.Canvas(self._buf, pagesize=(PAGE_W, PAGE_H), invariant=1)

    @staticmethod
    def _runs(s: str, font: str) -> list[tuple[str, str]]:
        runs: list[tuple[str, str]] = []
        for ch in s:
            name = "ZapfDingbats" if ch in _ZAPF else _CID_FONTS[font]
            if runs and runs[-1][0] == name:
                runs[-1] = (name, runs[-1][1] + ch)
            else:
                runs.append((name, ch))
        return runs

    def width(self, s: str, size: float = 9.5, font: str = "gothic") -> float:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        return sum(stringWidth(run, name, size) for name, run in self._runs(s, font))

    def text(self, x: float, y: float, s: str, size: float = 9.5, font: str = "gothic") -> None:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        for name, run in self._runs(s, font):
            self._c.setFont(name, size)
            self._c.drawString(x, PAGE_H - y, run)
            x += stringWidth(run, name, size)

    def line(self, x1: float, y1: float, x2: float, y2: float, lw: float = 0.5) -> None:
        self._c.setLineWidth(lw)
        self._c.line(x1, PAGE_H - y1, x2, PAGE_H - y2)

    def rect(self, x: float, y: float, w: float, h: float, lw: float = 0.5,
             fill: float | None = None, stroke: bool = True) -> None:
        self._c.setLineWidth(lw)
        if fill is not None:
            self._c.setFillGray(fill)
        self._c.rect(x, PAGE_H - y - h, w, h, stroke=int(stroke), fill=int(fill is not None))
        self._c.setFillGray(0)

    def output(self) -> bytes:
        self._c.showPage()
        self._c.save()
        return self._buf.getvalue()


class _Fpdf2Pen:
    """fpdf2: embedded TrueType subsets (IPA Gothic / IPA P Gothic), DejaVu Sans for ☑ ☐ ✔."""

    def __init__(self) -> None:
        from fpdf import FPDF

        self._pdf = FPDF(unit="pt", format=(PAGE_W, PAGE_H))
        self._pdf.set_auto_page_break(False)
        self._pdf.set_margins(0, 0, 0)
        self._pdf.set_creation_date(_CREATED_DT)  # fixed, so fpdf2's /ID is stable too
        self._pdf.add_page()
        self._added: set[str] = set()

    def _family(self, kind: str) -> str:
        family = f"mailbot-{kind}"  # not to clash with fpdf2's core fonts ("symbol")
        if kind not in self._added:
            path = _font_file(kind) or _font_file("gothic")
            assert path is not None
            self._pdf.add_font(family, fname=path)
            self._added.add(kind)
        return family

    def _runs(self, s: str, font: str) -> list[tuple[str, str]]:
        main = _cmap(_font_file(font) or _font_file("gothic") or "")
        symbol_path = _font_file("symbol")
        symbol = _cmap(symbol_path) if symbol_path else frozenset()
        runs: list[tuple[str, str]] = []
        for ch in s:
            kind = "symbol" if ord(ch) not in main and ord(ch) in symbol else font
            if runs and runs[-1][0] == kind:
                runs[-1] = (kind, runs[-1][1] + ch)
            else:
                runs.append((kind, ch))
        return runs

    def width(self, s: str, size: float = 9.5, font: str = "gothic") -> float:
        total = 0.0
        for kind, run in self._runs(s, font):
            self._pdf.set_font(self._family(kind), size=size)
            total += self._pdf.get_string_width(run)
        return total

    def text(self, x: float, y: float, s: str, size: float = 9.5, font: str = "gothic") -> None:
        for kind, run in self._runs(s, font):
            self._pdf.set_font(self._family(kind), size=size)
            self._pdf.text(x, y, run)
            x += self._pdf.get_string_width(run)

    def line(self, x1: float, y1: float, x2: float, y2: float, lw: float = 0.5) -> None:
        self._pdf.set_line_width(lw)
        self._pdf.line(x1, y1, x2, y2)

    def rect(self, x: float, y: float, w: float, h: float, lw: float = 0.5,
             fill: float | None = None, stroke: bool = True) -> None:
        self._pdf.set_line_width(lw)
        if fill is not None:
            self._pdf.set_fill_color(round(fill * 255))
        style = ("D" if fill is None else "DF") if stroke else "F"
        self._pdf.rect(x, y, w, h, style=style)

    def output(self) -> bytes:
        return bytes(self._pdf.output())


def _pen(producer: str) -> _Pen:
    return _Fpdf2Pen() if producer == "fpdf2" else _ReportLabPen()


# ---- drawing helpers ---------------------------------------------------------------------------


def _wrap(pen: _Pen, s: str, width: float, size: float, font: str = "gothic") -> list[str]:
    """Break `s` into lines no wider than `width`, char by char as Excel and Word do for
    Japanese, preferring a space in the second half of a line; explicit newlines kept."""
    out: list[str] = []
    for para in s.split("\n"):
        line = ""
        for ch in para:
            if line and pen.width(line + ch, size, font) > width:
                cut = line.rfind(" ")
                if cut > len(line) // 2:
                    out.append(line[:cut])
                    line = line[cut + 1:] + ch
                else:
                    out.append(line)
                    line = ch.lstrip()
            else:
                line += ch
        out.append(line)
    return out


def _cell(pen: _Pen, x: float, y: float, w: float, h: float, lines: Sequence[str], *,
          size: float = 9.5, font: str = "gothic", lead: float | None = None,
          align: str = "left", valign: str = "center", pad: float = 3.5) -> None:
    """Text lines inside the cell (x, y, w, h), aligned as a spreadsheet cell."""
    lead = lead or size * 1.3
    block = lead * (len(lines) - 1) + size * 0.88
    if valign == "top":
        base = y + pad + size * 0.88
    elif valign == "bottom":
        base = y + h - pad - block + size * 0.88
    else:
        base = y + (h - block) / 2 + size * 0.88
    for i, line in enumerate(lines):
        if not line:
            continue
        if align == "center":
            tx = x + (w - pen.width(line, size, font)) / 2
        elif align == "right":
            tx = x + w - pad - pen.width(line, size, font)
        else:
            tx = x + pad
        pen.text(tx, base + i * lead, line, size, font)


def _grid_row(pen: _Pen, x: float, y: float, widths: Sequence[float], h: float,
              contents: Sequence[Sequence[str]], *, fills: Sequence[float | None] = (),
              size: float = 9.5, font: str = "gothic", aligns: Sequence[str] = (),
              valigns: Sequence[str] = (), lw: float = 0.5) -> float:
    """One spreadsheet row of cells with drawn borders; returns the y below it."""
    cx = x
    for i, w in enumerate(widths):
        fill = fills[i] if i < len(fills) else None
        pen.rect(cx, y, w, h, lw=lw, fill=fill)
        if i < len(contents) and contents[i]:
            _cell(pen, cx, y, w, h, contents[i], size=size, font=font,
                  align=aligns[i] if i < len(aligns) else "left",
                  valign=valigns[i] if i < len(valigns) else "center")
        cx += w
    return y + h


def _centered(pen: _Pen, y: float, s: str, size: float, font: str = "gothic") -> None:
    pen.text((PAGE_W - pen.width(s, size, font)) / 2, y, s, size, font)


def _options(options: Sequence[str], value: str | None) -> list[tuple[str, bool]]:
    """Each printed option and whether it is chosen; a value that is none of them is added."""
    out = [(o, o == value) for o in options]
    if value and value not in options:
        out.append((value, True))
    return out


def _service(form: ApplicationForm) -> str | None:
    return None if form.plus is None else SERVICES[1 if form.plus else 0]


def _yen(fee: str | None) -> str:
    if not fee:
        return ""
    return fee if fee.rstrip().endswith("円") else f"{fee} 円"


def _mails(form: ApplicationForm, n: int = 3) -> list[str]:
    got = list(form.mail_addresses)
    return got + [""] * (n - len(got)) if len(got) < n else got


# ---- application layouts -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # "text" | "choice" | "check"
    x: float
    y: float
    w: float
    h: float
    value: str | bool | None
    options: tuple[str, ...] = ()
    multiline: bool = False


def _excel_grid(pen: _Pen, form: ApplicationForm, producer: str) -> list[_Field]:
    on, off = marks("excel_grid", producer)
    x0, x1, lw_ = 56.7, 538.6, 122.0
    vw = x1 - x0 - lw_
    _centered(pen, 62, TITLE, 16)
    pen.line((PAGE_W - 190) / 2, 67, (PAGE_W + 190) / 2, 67, 0.8)
    pen.text(x0, 84, INTRO, 7.5)
    y = _grid_row(pen, x1 - 180, 92, [64, 116], 18, [["顧客CD"], [form.customer_code or ""]],
                  fills=[0.88], size=9.5)
    y += 10

    def section(title: str) -> None:
        nonlocal y
        y = _grid_row(pen, x0, y, [x1 - x0], 16, [[title]], fills=[0.82], size=9, lw=0.8)

    def pair(label: str, value: str | None, *, min_lines: int = 1, size: float = 9.5) -> None:
        nonlocal y
        lines = _wrap(pen, value or "", vw - 8, size)
        lines += [""] * (min_lines - len(lines))
        h = 18 if len(lines) == 1 else 6 + 12.5 * len(lines)
        y = _grid_row(pen, x0, y, [lw_, vw], h, [[label], lines], fills=[0.94], size=size)

    def address(value: str | None) -> None:
        # a 〒 cell of its own, the rest wraps in its cell (Excel's 11 pt); the sheet's last
        # column (the one of "@uspot.jp") stays empty on this row
        nonlocal y
        postal, _, rest = (value or "").partition(" ")
        if not (len(postal) == 8 and postal[3] == "-" and rest):
            postal, rest = "", value or ""
        lines = _wrap(pen, rest, vw - 78 - 90 - 8, 11)
        h = 18 if len(lines) == 1 else 6 + 13 * len(lines)
        y = _grid_row(pen, x0, y, [lw_, 78, vw - 78 - 90, 90], h, [["住所 〒"], [postal], lines],
                      fills=[0.94], size=11)

    def choice(label: str, options: Sequence[str], value: str | None) -> None:
        nonlocal y
        opts = _options(options, value)
        w = vw / len(opts)
        y = _grid_row(pen, x0, y, [lw_] + [w] * len(opts), 18,
                      [[label]] + [[f"{on if chosen else off} {o}"] for o, chosen in opts],
                      fills=[0.94])

    section("ご契約者様")
    pair("フリガナ", form.contractor_kana)
    pair("名称", form.contractor_name)
    address(form.contractor_address)
    pair("電話番号", form.contractor_phone)
    section("設置店舗")
    pair("フリガナ", form.shop_kana)
    pair("店舗/施設名", form.shop_name)
    address(form.shop_address)
    pair("電話番号", form.shop_phone)
    section("ご利用回線")
    choice("ご利用回線種別", LINE_KINDS, form.line_kind)
    choice("ご利用回線タイプ", LINE_TYPES, form.line_type)
    choice("確認方法", OPENING_CHECKS, form.opening_check)
    section("ご希望のメールアドレス")
    for i, addr in enumerate(_mails(form)):
        local, domain = (addr[:-len("@uspot.jp")], "@uspot.jp") if addr.endswith("@uspot.jp") or not addr \
            else (addr, "")
        y = _grid_row(pen, x0, y, [lw_, vw - 90, 90], 18,
                      [[f"ご希望のメールアドレス{'①②③④⑤'[i] if i < 5 else i + 1}"], [local], [domain]],
                      fills=[0.94], size=9)
    section("ご担当者・サービス内容")
    pair("ご担当者名", form.contact_name)
    choice("ご利用サービス", SERVICES, _service(form))
    pair("SSID (Original SSID)", form.ssid)
    y = _grid_row(pen, x0, y, [lw_, vw], 18,
                  [["オプション"], [f"{on if form.tourist else off} {TOURIST}"]], fills=[0.94])
    section("料金")
    half = (x1 - x0 - 2 * lw_) / 2
    y = _grid_row(pen, x0, y, [lw_, half, lw_, half], 18,
                  [["基本工事費"], [_yen(form.initial_fee)], ["月額利用料"], [_yen(form.monthly_fee)]],
                  fills=[0.94, None, 0.94], aligns=["left", "right", "left", "right"])
    pair("備考", form.remarks, min_lines=2)
    y += 14
    for note in ("※ 確認方法の記載が無い場合は差し戻しになります。",
                 "※ Bフレッツの場合はご利用回線タイプを必ずご選択ください。",
                 "※ USEN SPOT Plus の場合は Original SSID をご記入ください。"):
        pen.text(x0, y, note, 7.5)
        y += 11
    pen.text(x1 - pen.width("株式会社USEN", 8), 805, "株式会社USEN", 8)
    return []


def _word_stacked(pen: _Pen, form: ApplicationForm, producer: str) -> list[_Field]:
    on, off = marks("word_stacked", producer)
    font, size, lead = "mincho", 9.5, 13.2
    x, indent = 72.0, 86.0
    _centered(pen, 58, TITLE, 15, font)
    y = 80.0
    for line in _wrap(pen, INTRO, PAGE_W - 2 * x, 8.5, font):
        pen.text(x, y, line, 8.5, font)
        y += 11.5
    y += 4

    def stacked(label: str, values: Sequence[str]) -> None:
        nonlocal y
        pen.text(x, y, label, size, font)
        y += lead
        for v in values:
            for line in _wrap(pen, v, PAGE_W - indent - x, size, font):
                if line:
                    pen.text(indent, y, line, size, font)
                y += lead

    def value(label: str, v: str | None) -> None:
        stacked(label, [v or ""])

    def options(label: str, opts: Sequence[str], v: str | None) -> None:
        stacked(label, ["　　".join(f"{on if c else off} {o}" for o, c in _options(opts, v))])

    def heading(title: str) -> None:
        nonlocal y
        y += 3
        pen.text(x - 6, y, f"【{title}】", size + 0.5, font)
        y += lead + 1

    value("顧客CD", form.customer_code)
    heading("ご契約者様")
    value("フリガナ", form.contractor_kana)
    value("名　称", form.contractor_name)
    value("住 所 〒", form.contractor_address)
    value("電 話 番 号", form.contractor_phone)
    heading("設置店舗")
    value("フリガナ", form.shop_kana)
    value("店 舗 名", form.shop_name)
    value("住 所 〒", form.shop_address)
    value("電 話 番 号", form.shop_phone)
    heading("ご利用回線")
    options("ご利用回線種別", LINE_KINDS, form.line_kind)
    options("ご利用回線タイプ", LINE_TYPES, form.line_type)
    options("確認方法", OPENING_CHECKS, form.opening_check)
    heading("ご希望のメールアドレス")
    stacked("ご希望のメールアドレス", list(form.mail_addresses) or [""])
    value("ご 担 当 者 名", form.contact_name)
    heading("サービス内容")
    options("ご利用サービス", SERVICES, _service(form))
    value("SSID（Original SSID）", form.ssid)
    stacked("オプション", [f"{on if form.tourist else off} {TOURIST}"])
    heading("料金")
    value("基本工事費", _yen(form.initial_fee))
    value("月額利用料", _yen(form.monthly_fee))
    value("備　考", form.remarks)
    pen.text(PAGE_W - x - pen.width("以上", size, font), min(y + 4, 800), "以上", size, font)
    return []


def _browser(pen: _Pen, form: ApplicationForm, producer: str) -> list[_Field]:
    check, _ = marks("browser_chosen_only", producer)
    font = "pgothic"
    # Chrome's print header and footer
    pen.text(22, 20, "2026/04/01 10:05", 7, font)
    head = "USEN SPOT ご加入申込書 - USEN 申込受付"
    pen.text((PAGE_W - pen.width(head, 7, font)) / 2, 20, head, 7, font)
    pen.text(22, 830, "https://apply.usen.co.jp/spot/entry/confirm", 7, font)
    pen.text(PAGE_W - 22 - pen.width("1/1", 7, font), 830, "1/1", 7, font)
    x, y = 50.0, 66.0
    pen.text(x, y, TITLE, 17, font)
    y += 20
    pen.text(x, y, "お申込み内容の確認", 10, font)
    y += 12

    def h2(title: str) -> None:
        nonlocal y
        y += 26
        pen.text(x, y, title, 11.5, font)
        y += 5
        pen.line(x, y, PAGE_W - x, y, 0.6)
        y += 4

    def item(label: str, value: str | None) -> None:
        nonlocal y
        y += 15.5
        lines = _wrap(pen, f"{label}：{value or ''}", PAGE_W - 2 * x - 10, 10, font)
        for i, line in enumerate(lines):
            pen.text(x + 8 + (0 if i == 0 else 14), y, line, 10, font)
            if i < len(lines) - 1:
                y += 13

    h2("ご契約者様")
    item("フリガナ", form.contractor_kana)
    item("名称", form.contractor_name)
    item("住所", f"〒{form.contractor_address}" if form.contractor_address else None)
    item("電話番号", form.contractor_phone)
    h2("設置店舗")
    item("顧客CD", form.customer_code)
    item("フリガナ", form.shop_kana)
    item("店舗/施設名", form.shop_name)
    item("住所", f"〒{form.shop_address}" if form.shop_address else None)
    item("電話番号", form.shop_phone)
    h2("ご利用回線")
    item("ご利用回線種別", form.line_kind)
    item("ご利用回線タイプ", form.line_type)
    item("確認方法", form.opening_check)
    h2("ご希望のメールアドレス・サービス内容")
    for i, addr in enumerate(_mails(form)):
        item(f"ご希望のメールアドレス{i + 1}", addr)
    item("ご担当者名", form.contact_name)
    item("ご利用サービス", _service(form))
    item("SSID（Original SSID）", form.ssid)
    item(TOURIST, check if form.tourist else None)
    item("基本工事費", _yen(form.initial_fee))
    item("月額利用料", _yen(form.monthly_fee))
    item("備考", form.remarks)
    return []


def _label_below(pen: _Pen, form: ApplicationForm, producer: str) -> list[_Field]:
    on, off = marks("label_below", producer)
    x0, x1, bw, lw_, cw = 50.0, 545.0, 44.0, 112.0, 100.0
    vw = x1 - x0 - bw - lw_ - cw  # the last column is the office center's, left empty
    size, lead = 9.0, 11.5
    _centered(pen, 56, TITLE, 15)
    pen.text(x0, 76, INTRO, 7.5)
    y = 86.0
    _grid_row(pen, x0, y, [bw, lw_, vw, cw], 16, [[], ["項目"], ["ご記入内容"], ["事務センター使用欄"]],
              fills=[0.8, 0.8, 0.8, 0.8], size=8, aligns=["center"] * 4)
    y += 16

    def block(name: str, rows: Sequence[tuple[str, str]]) -> None:
        nonlocal y
        top = y
        for label, value in rows:
            lines = _wrap(pen, value, vw - 7, size)
            n = max(2, len(lines) + 1)
            h = lead * n + 4
            pen.rect(x0 + bw, y, lw_, h)
            pen.rect(x0 + bw + lw_, y, vw, h)
            pen.rect(x0 + bw + lw_ + vw, y, cw, h)
            _cell(pen, x0 + bw, y, lw_, h, [label], size=size, valign="bottom", pad=2.5)
            _cell(pen, x0 + bw + lw_, y, vw, h, lines, size=size, lead=lead, valign="top", pad=2.5)
            y += h
        pen.rect(x0, top, bw, y - top, fill=0.92)
        _cell(pen, x0, top, bw, y - top, [name], size=size, align="center")

    def opts(options: Sequence[str], value: str | None) -> str:
        return "　".join(f"{on if c else off} {o}" for o, c in _options(options, value))

    block("", [("顧客CD", form.customer_code or "")])
    block("契約者", [("フリガナ", form.contractor_kana or ""), ("名称", form.contractor_name or ""),
                    ("住所 〒", form.contractor_address or ""), ("電話番号", form.contractor_phone or "")])
    block("店舗", [("フリガナ", form.shop_kana or ""), ("店舗/施設名", form.shop_name or ""),
                  ("住所 〒", form.shop_address or ""), ("電話番号", form.shop_phone or "")])
    block("回線", [("ご利用回線種別", opts(LINE_KINDS, form.line_kind)),
                  ("ご利用回線タイプ", opts(LINE_TYPES, form.line_type)),
                  ("確認方法", opts(OPENING_CHECKS, form.opening_check))])
    block("申込内容", [("ご希望のメールアドレス", "\n".join(form.mail_addresses)),
                      ("ご担当者名", form.contact_name or ""),
                      ("サービス", opts(SERVICES, _service(form))),
                      ("SSID", form.ssid or ""),
                      ("オプション", f"{on if form.tourist else off} {TOURIST}"),
                      ("基本工事費", _yen(form.initial_fee)), ("月額利用料", _yen(form.monthly_fee)),
                      ("備考", form.remarks or "")])
    pen.text(x0, y + 14, "※ 確認方法の記載が無い場合は差し戻しになります。", 7.5)
    return []


def _acroform(pen: _Pen, form: ApplicationForm, producer: str, *, split: bool) -> list[_Field]:
    """The page of a fillable form (labels, empty boxes) and its fields with their values."""
    x0, x1, lw_ = 56.7, 538.6, 122.0
    vw = x1 - x0 - lw_
    fields: list[_Field] = []
    _centered(pen, 62, TITLE, 16)
    pen.text(x0, 84, INTRO, 7.5)
    pen.text(x0, 96, "※ 入力欄に直接ご入力いただけます。選択項目はプルダウンからお選びください。", 7.5)
    _grid_row(pen, x1 - 180, 104, [64, 116], 18, [["顧客CD"]], fills=[0.88])
    fields.append(_Field("customer_code", "text", x1 - 116 + 1, 105, 114, 16, form.customer_code))
    y = 132.0

    def section(title: str) -> None:
        nonlocal y
        y = _grid_row(pen, x0, y, [x1 - x0], 16, [[title]], fills=[0.82], size=9, lw=0.8)

    def field(label: str, name: str, kind: str, value: str | bool | None, *, lines: int = 1,
              options: tuple[str, ...] = (), width: float | None = None, after: str = "") -> None:
        nonlocal y
        h = 20 if lines == 1 else 6 + 13 * lines
        w = width or vw
        _grid_row(pen, x0, y, [lw_, vw], h, [[label]], fills=[0.94])
        if after:
            pen.text(x0 + lw_ + w + 4, y + h / 2 + 3.5, after, 9.5)
        fields.append(_Field(name, kind, x0 + lw_ + 1, y + 1, w - 2, h - 2, value, options, lines > 1))
        y += h

    def checkbox(label: str, name: str, value: bool | None, caption: str) -> None:
        nonlocal y
        _grid_row(pen, x0, y, [lw_, vw], 20, [[label]], fills=[0.94])
        pen.rect(x0 + lw_ + 5, y + 4, 12, 12, lw=0.6)
        pen.text(x0 + lw_ + 22, y + 13.5, caption, 9.5)
        fields.append(_Field(name, "check", x0 + lw_ + 5, y + 4, 12, 12, bool(value)))
        y += 20

    section("ご契約者様")
    field("フリガナ", "contractor_kana", "text", form.contractor_kana)
    field("名称", "contractor_name", "text", form.contractor_name)
    field("住所 〒", "contractor_address", "text", form.contractor_address)
    field("電話番号", "contractor_phone", "text", form.contractor_phone)
    section("設置店舗")
    field("フリガナ", "shop_kana", "text", form.shop_kana)
    field("店舗/施設名", "shop_name", "text", form.shop_name)
    field("住所 〒", "shop_address", "text", form.shop_address)
    field("電話番号", "shop_phone", "text", form.shop_phone)
    section("ご利用回線")
    field("ご利用回線種別", "line_kind", "choice", form.line_kind, options=LINE_KINDS, width=160)
    field("ご利用回線タイプ", "line_type", "choice", form.line_type, options=LINE_TYPES, width=160)
    field("確認方法", "opening_check", "choice", form.opening_check, options=OPENING_CHECKS, width=160,
          after="※記載が無い場合は差し戻しになります")
    section("ご希望のメールアドレス")
    if split:
        for i, addr in enumerate(_mails(form)):
            field(f"ご希望のメールアドレス{'①②③④⑤'[i] if i < 5 else i + 1}", f"mail_address_{i + 1}",
                  "text", addr or None)
    else:
        field("ご希望のメールアドレス", "mail_addresses", "text",
              "\n".join(form.mail_addresses) or None, lines=3)
    section("ご担当者・サービス内容")
    field("ご担当者名", "contact_name", "text", form.contact_name)
    checkbox("USEN SPOT Plus", "plus", form.plus, "USEN SPOT Plus の場合はチェック")
    field("SSID (Original SSID)", "ssid", "text", form.ssid)
    checkbox("オプション", "tourist", form.tourist, TOURIST)
    section("料金")
    field("基本工事費", "initial_fee", "text", form.initial_fee, width=120, after="円")
    field("月額利用料", "monthly_fee", "text", form.monthly_fee, width=120, after="円")
    field("備考", "remarks", "text", form.remarks, lines=3)
    pen.text(x1 - pen.width("株式会社USEN", 8), 805, "株式会社USEN", 8)
    return fields


_LAYOUT_FUNCS: dict[str, Callable[[_Pen, ApplicationForm, str], list[_Field]]] = {
    "acroform": lambda pen, form, p: _acroform(pen, form, p, split=False),
    "acroform_split": lambda pen, form, p: _acroform(pen, form, p, split=True),
    "excel_grid": _excel_grid,
    "word_stacked": _word_stacked,
    "browser_chosen_only": _browser,
    "label_below": _label_below,
}


@functools.lru_cache(maxsize=128)
def _application_plain(form: ApplicationForm, layout: str, producer: str) -> bytes:
    pen = _pen(producer)
    fields = _LAYOUT_FUNCS[layout](pen, form, producer)
    return _finish(pen.output(), layout, fields)


# ---- termination form --------------------------------------------------------------------------


def _termination_table(pen: _Pen, form: TerminationForm) -> None:
    x0, x1, lw_ = 70.0, 525.0, 110.0
    _centered(pen, 70, TERMINATION_TITLE, 18)
    pen.line((PAGE_W - 120) / 2, 76, (PAGE_W + 120) / 2, 76, 0.8)
    pen.text(x0, 110, "株式会社USEN 御中", 11)
    pen.text(x0, 136, "下記の通り、USEN SPOT サービスの解約を申請いたします。", 9.5)
    d = form.termination_date
    y = 150.0
    rows: list[tuple[str, str | None, int]] = [
        ("顧客CD", form.customer_code, 1), ("店舗名", form.shop_name, 1),
        ("解約日", f"{d.year}年{d.month}月{d.day}日" if d else None, 1), ("解約事由", form.reason, 3),
    ]
    for label, value, min_lines in rows:
        lines = _wrap(pen, value or "", x1 - x0 - lw_ - 8, 10.5)
        lines += [""] * (min_lines - len(lines))
        h = 26 if len(lines) == 1 else 8 + 14 * len(lines)
        y = _grid_row(pen, x0, y, [lw_, x1 - x0 - lw_], h, [[label], lines], fills=[0.92],
                      size=10.5, valigns=["center", "top" if len(lines) > 1 else "center"])
    pen.text(x0, y + 22, "※ 解約日の3営業日前までであれば、解約のキャンセルが可能です。", 8)
    pen.text(x1 - pen.width("株式会社USEN 業務店受付センター", 9), 780, "株式会社USEN 業務店受付センター", 9)


def _termination_plain_page(pen: _Pen, form: TerminationForm) -> None:
    font, x = "mincho", 85.0
    _centered(pen, 80, f"USEN SPOT {TERMINATION_TITLE}", 16, font)
    pen.text(x, 130, "株式会社USEN 御中", 11, font)
    pen.text(x, 160, "下記のとおり解約を申請いたします。", 10.5, font)
    _centered(pen, 196, "記", 10.5, font)
    d = form.termination_date
    y = 230.0
    for label, value in (("顧客CD", form.customer_code), ("店舗名", form.shop_name),
                         ("解約日", f"{d.year}/{d.month:02d}/{d.day:02d}" if d else None),
                         ("解約事由", form.reason)):
        lines = _wrap(pen, f"{label}：{value or ''}", PAGE_W - 2 * x, 10.5, font)
        for i, line in enumerate(lines):
            pen.text(x + (0 if i == 0 else 44), y, line, 10.5, font)
            y += 16
        y += 8
    pen.text(PAGE_W - x - pen.width("以上", 10.5, font), y + 20, "以上", 10.5, font)


@functools.lru_cache(maxsize=64)
def _termination_plain(form: TerminationForm, layout: str, producer: str) -> bytes:
    pen = _pen(producer)
    (_termination_table if layout == "table" else _termination_plain_page)(pen, form)
    return _finish(pen.output(), layout, [])


# ---- scan ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _scan_plain() -> bytes:
    """A 150 dpi grey JPEG of a hand-filled form, slightly skewed, as an MFP scans it."""
    import pikepdf
    from PIL import Image, ImageDraw, ImageFont

    dpi = 150
    w, h = round(PAGE_W / 72 * dpi), round(PAGE_H / 72 * dpi)
    img = Image.new("L", (w, h), 250)
    draw = ImageDraw.Draw(img)
    path = _font_file("gothic")

    def font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        return ImageFont.truetype(path, px) if path else ImageFont.load_default()

    def put(x: float, y: float, s: str, px: int, fill: int = 30) -> None:
        if path or s.isascii():
            draw.text((x, y), s, font=font(px), fill=fill)

    form = sample_application("900000001")
    put(w / 2 - 330, 110, TITLE, 46)
    top, left, right, row = 260, 120, w - 120, 56
    rows = [("フリガナ", form.contractor_kana), ("名称", form.contractor_name),
            ("住所 〒", form.contractor_address), ("電話番号", form.contractor_phone),
            ("フリガナ", form.shop_kana), ("店舗/施設名", form.shop_name),
            ("住所 〒", form.shop_address), ("電話番号", form.shop_phone),
            ("ご利用回線種別", "■ フレッツ光ネクスト  □ Bフレッツ"),
            ("確認方法", "□ 開通通知書  ■ NTT請求書(裏面)  □ 116へ確認"),
            ("ご希望のメールアドレス", ", ".join(form.mail_addresses)),
            ("ご担当者名", form.contact_name), ("SSID", form.ssid), ("備考", "")]
    for i, (label, value) in enumerate(rows):
        y = top + i * row
        draw.rectangle((left, y, right, y + row), outline=40, width=2)
        draw.line((left + 300, y, left + 300, y + row), fill=40, width=2)
        put(left + 12, y + 14, label, 24)
        value = value or ""
        if len(value) > 30:  # handwriting squeezed onto two lines
            put(left + 318, y + 4, value[:30], 22, fill=60)
            put(left + 318, y + 29, value[30:], 22, fill=60)
        else:
            put(left + 318, y + 12, value, 26, fill=60)
    img = img.rotate(0.35, resample=Image.BICUBIC, fillcolor=250)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70, dpi=(dpi, dpi))

    pdf = pikepdf.new()
    image = pikepdf.Stream(pdf, buf.getvalue())
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height, image.BitsPerComponent = w, h, 8
    image.ColorSpace, image.Filter = pikepdf.Name.DeviceGray, pikepdf.Name.DCTDecode
    content = pdf.make_stream(f"q {PAGE_W:.4f} 0 0 {PAGE_H:.4f} 0 0 cm /Im0 Do Q".encode())
    pdf.pages.append(pikepdf.Page(pikepdf.Dictionary(
        Type=pikepdf.Name.Page, MediaBox=pikepdf.Array([0, 0, PAGE_W, PAGE_H]),
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image)), Contents=content,
    )))
    _docinfo(pdf, "scan")
    out = io.BytesIO()
    pdf.save(out, deterministic_id=True)
    return out.getvalue()


# ---- post-processing: ToUnicode, fields, metadata, encryption ------------------------------------


def _docinfo(pdf: object, shape: str) -> None:
    import pikepdf

    assert isinstance(pdf, pikepdf.Pdf)
    creator, producer, title = _INFO[shape]
    info = pikepdf.Dictionary(Creator=pikepdf.String(creator), Producer=pikepdf.String(producer),
                              CreationDate=pikepdf.String(_CREATED), ModDate=pikepdf.String(_CREATED))
    if title:
        info.Title = pikepdf.String(title)
    pdf.trailer.Info = pdf.make_indirect(info)


def _cmap_stream(pairs: dict[int, str]) -> bytes:
    body = "\n".join(f"<{code:02X}> <{ord(ch):04X}>" for code, ch in sorted(pairs.items()))
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        f"{len(pairs)} beginbfchar\n{body}\nendbfchar\n"
        "endcmap\nCMapName currentdict /CIDInit /ProcSet findresource /defineresource pop\nend\nend\n"
    ).encode("ascii")


def _finish(base: bytes, shape: str, fields: Sequence[_Field]) -> bytes:
    """The library's PDF → fonts made extractable, fields added, docinfo set; unencrypted."""
    import pikepdf

    with pikepdf.open(io.BytesIO(base)) as pdf:
        for page in pdf.pages:
            fonts = page.obj.get("/Resources", {}).get("/Font", {})
            for _, font in fonts.items():
                if font.get("/BaseFont") == pikepdf.Name.ZapfDingbats and "/ToUnicode" not in font:
                    font.ToUnicode = pdf.make_stream(_cmap_stream({v: k for k, v in _ZAPF.items()}))
        if fields:
            _add_fields(pdf, fields)
        _docinfo(pdf, shape)
        out = io.BytesIO()
        pdf.save(out, deterministic_id=True)
        return out.getvalue()


@functools.lru_cache(maxsize=1)
def _cid_font_source() -> bytes:
    """A tiny reportlab PDF whose font HeiseiKakuGo-W5 the field appearances borrow."""
    pen = _ReportLabPen()
    pen.text(0, 10, "あ", 9)
    return pen.output()


def _add_fields(pdf: object, fields: Sequence[_Field]) -> None:
    import pikepdf
    from pikepdf import Array, Dictionary, Name, String
    from reportlab.pdfbase.pdfmetrics import stringWidth

    assert isinstance(pdf, pikepdf.Pdf)
    _register_cid_fonts()
    with pikepdf.open(io.BytesIO(_cid_font_source())) as src:
        cid = next(f for _, f in src.pages[0].Resources.Font.items()
                   if f.get("/BaseFont") == Name("/HeiseiKakuGo-W5"))
        hei = pdf.copy_foreign(cid)
    zadb = pdf.make_indirect(Dictionary(Type=Name.Font, Subtype=Name.Type1,
                                        BaseFont=Name.ZapfDingbats))
    page = pdf.pages[0].obj
    annots = page.get("/Annots")
    if annots is None:
        page.Annots = annots = Array()
    all_fields = Array()

    def appearance(w: float, h: float, content: str, font: str) -> pikepdf.Stream:
        s = pdf.make_stream(content.encode("ascii"))
        s.Type, s.Subtype = Name.XObject, Name.Form
        s.BBox = Array([0, 0, round(w, 2), round(h, 2)])
        s.Resources = Dictionary(Font=Dictionary({font: hei if font == "/HeiGo" else zadb}))
        return s

    for f in fields:
        rect = Array([round(f.x, 2), round(PAGE_H - f.y - f.h, 2), round(f.x + f.w, 2),
                      round(PAGE_H - f.y, 2)])
        d = Dictionary(Type=Name.Annot, Subtype=Name.Widget, T=String(f.name), Rect=rect, F=4,
                       P=page, MK=Dictionary())
        if f.kind == "check":
            on = bool(f.value)
            d.FT, d.DA = Name.Btn, String("/ZaDb 0 Tf 0 g")
            d.MK = Dictionary(CA=String("4"))
            d.V = d.AS = Name.Yes if on else Name.Off
            s = min(f.w, f.h) * 0.8
            yes = f"q BT /ZaDb {s:.2f} Tf 0 g {f.w * 0.15:.2f} {f.h * 0.22:.2f} Td (4) Tj ET Q"
            d.AP = Dictionary(N=Dictionary(Yes=appearance(f.w, f.h, yes, "/ZaDb"),
                                           Off=appearance(f.w, f.h, "", "/ZaDb")))
        else:
            text = f.value if isinstance(f.value, str) else ""
            lines = text.split("\n") if text else []
            size = 9.5
            for line in lines:
                wid = stringWidth(line, "HeiseiKakuGo-W5", size)
                if wid > f.w - 4:
                    size = max(5.0, size * (f.w - 4) / wid)
            d.DA = String(f"/HeiGo {size:.2f} Tf 0 g")
            if f.kind == "choice":
                d.FT, d.Ff = Name.Ch, 1 << 17  # combo box
                d.Opt = Array([String(o) for o in f.options])
            else:
                d.FT = Name.Tx
                if f.multiline:
                    d.Ff = 1 << 12
            if text:
                d.V = String(text)
            lead = size * 1.25
            first = (f.h - size * 0.8) / 2 if len(lines) <= 1 else f.h - 2 - size
            ops = [f"/Tx BMC q 1 1 {f.w - 2:.2f} {f.h - 2:.2f} re W n BT /HeiGo {size:.2f} Tf 0 g"]
            for i, line in enumerate(lines):
                hexed = line.encode("utf-16-be").hex().upper()
                ops.append(f"1 0 0 1 2 {first - i * lead:.2f} Tm <{hexed}> Tj")
            ops.append("ET Q EMC")
            d.AP = Dictionary(N=appearance(f.w, f.h, "\n".join(ops), "/HeiGo"))
        ref = pdf.make_indirect(d)
        annots.append(ref)
        all_fields.append(ref)
    pdf.Root.AcroForm = Dictionary(
        Fields=all_fields, DA=String("/HeiGo 0 Tf 0 g"),
        DR=Dictionary(Font=Dictionary(HeiGo=hei, ZaDb=zadb)),
    )


def _encrypt(plain: bytes, encryption: str | None, password: str) -> bytes:
    if encryption is None:
        return plain
    import pikepdf

    owner = OWNER_PASSWORD if password != OWNER_PASSWORD else OWNER_PASSWORD + "-2"
    enc = {
        "aes256": pikepdf.Encryption(user=password, owner=owner, R=6),
        "aes128": pikepdf.Encryption(user=password, owner=owner, R=4, aes=True),
        "rc4": pikepdf.Encryption(user=password, owner=owner, R=3, aes=False, metadata=False),
    }[encryption]
    with pikepdf.open(io.BytesIO(plain)) as pdf:
        out = io.BytesIO()
        # qpdf refuses a content-derived ID when encrypting; its static second ID element keeps
        # RC4 output byte-for-byte stable (AES still draws random salts and IVs)
        pdf.save(out, encryption=enc, static_id=True)
        return out.getvalue()

