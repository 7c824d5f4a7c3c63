"""Reading the forms back: generate.py's application and termination forms in every layout,
producer and encryption, through the sandbox, give back the form they were made from; plus
hand-made layouts the generator does not draw (marks after options, options listed below the
label, `local @ uspot.jp` as separate words, labels with colons)."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import date

import pytest

pytest.importorskip("reportlab", reason="the sample forms are drawn with reportlab (generate.py)")

from helpers import RULES

from demo import forms as g
from mailbot.forms.application import application_form
from mailbot.forms.model import ApplicationForm, PdfReading, PdfStatus, TerminationForm
from mailbot.forms.pdf import password_candidates
from mailbot.forms.read import read_form
from mailbot.forms.sandbox import PdfLimits, _exit_reason, read_pdf, read_pdfs
from mailbot.forms.termination import parse_date, termination_form
from mailbot.text import same_text

LIMITS = PdfLimits(timeout_s=20.0, memory_mb=1024)
CODE = "900000003"


def expected(form: ApplicationForm, layout: str) -> ApplicationForm:
    """What a page can say: an unticked 外国人対応SSIDオプション (printed for None and False
    alike) reads False; so does the fillable form's unticked Plus check box."""
    form = dataclasses.replace(form, tourist=bool(form.tourist))
    if layout.startswith("acroform"):
        form = dataclasses.replace(form, plus=bool(form.plus))
    return form


def differences(want: ApplicationForm, got: ApplicationForm) -> list[tuple[str, object, object]]:
    """Fields that differ after NFKC and with spaces removed."""
    out = []
    for name in ApplicationForm.__dataclass_fields__:
        a, b = getattr(want, name), getattr(got, name)
        if isinstance(a, tuple):
            ok = isinstance(b, tuple) and len(a) == len(b) and all(same_text(x, y) for x, y in zip(a, b, strict=True))
        elif isinstance(a, bool) or a is None or isinstance(b, bool) or b is None:
            ok = a == b
        else:
            ok = same_text(a, b)
        if not ok:
            out.append((name, a, b))
    return out


# ---------------------------------------------------------------- every layout × producer × encryption

CASES = [(layout, producer, enc) for layout in g.LAYOUTS for producer in g.PRODUCERS for enc in g.ENCRYPTIONS]
CODES = ["900000001", "900000002", "900000003", "900000004", "900000005", "900000006"]


@pytest.fixture(scope="module")
def round_trip() -> dict[tuple[str, str, str | None], tuple[ApplicationForm, PdfReading]]:
    forms = {}
    jobs = []
    for i, (layout, producer, enc) in enumerate(CASES):
        form = g.sample_application(CODES[i % len(CODES)])  # every customer in every layout
        forms[(layout, producer, enc)] = form
        jobs.append((g.application_pdf(form, layout=layout, producer=producer, encryption=enc), "application"))
    readings = read_pdfs(jobs, password="uspot", limits=LIMITS, rules_dir=RULES, workers=2)
    return {case: (forms[case], r) for case, r in zip(CASES, readings, strict=True)}


@pytest.mark.parametrize(("layout", "producer", "encryption"), CASES)
def test_every_layout_reads_back(round_trip, layout: str, producer: str, encryption: str | None) -> None:
    form, reading = round_trip[(layout, producer, encryption)]
    want_status = PdfStatus.NOT_ENCRYPTED if encryption is None else PdfStatus.READ
    assert reading.status is want_status, reading
    assert reading.shape == ("acroform" if layout.startswith("acroform") else "layout")
    assert differences(expected(form, layout), application_form(reading)) == []
    json.dumps(reading.fields, ensure_ascii=False)  # `mailbot check --json` prints them
    assert reading.text and len(reading.text) <= 20_000
    assert reading.pages == 1


# ---------------------------------------------------------------- forms that lack something

VARIANTS: dict[str, dict[str, object]] = {
    "no_line_type": dict(line_kind="Bフレッツ", line_type=None),
    "no_opening_check": dict(opening_check=None),
    "no_mail": dict(mail_addresses=()),
    "empty_ssid": dict(ssid=None),
    "fullwidth_ssid": dict(ssid="ｋｉｔｓｕｎｅ＿Ｗｉ－Ｆｉ"),
    "three_mails": dict(mail_addresses=("aoyama@uspot.jp", "cafe-aoyama@uspot.jp", "c-aoya@uspot.jp")),
    "invalid_mails": dict(mail_addresses=("あおやま@uspot.jp", "taro@gmail.com")),
    "remarks_plus_tourist": dict(remarks="親1台、子2台。設置は来月中旬を予定しています。親機はレジ横、子機は2階客席と厨房に設置予定です。",
                                 plus=True, tourist=True),
    "nothing_chosen": dict(plus=None, tourist=None, line_kind=None, line_type=None, opening_check=None),
    "long_values": dict(shop_name="スープカレー 北光 札幌駅前店 ～北海道の恵みとスパイスの店～ 本館", contact_name=None),
    "no_kana_no_phone": dict(contractor_kana=None, shop_kana=None, contractor_phone=None, customer_code=None),
}
VARIANT_CASES = [(layout, producer, v) for layout in g.LAYOUTS for producer in g.PRODUCERS for v in VARIANTS]


@pytest.fixture(scope="module")
def variants() -> dict[tuple[str, str, str], tuple[ApplicationForm, PdfReading]]:
    forms = {c: g.sample_application(CODE, **VARIANTS[c[2]]) for c in VARIANT_CASES}
    jobs = [(g.application_pdf(forms[c], layout=c[0], producer=c[1], encryption="aes128"), "application")
            for c in VARIANT_CASES]
    readings = read_pdfs(jobs, password="uspot", limits=LIMITS, rules_dir=RULES, workers=2)
    return {c: (forms[c], r) for c, r in zip(VARIANT_CASES, readings, strict=True)}


@pytest.mark.parametrize(("layout", "producer", "variant"), VARIANT_CASES)
def test_variants_read_as_written(variants, layout: str, producer: str, variant: str) -> None:
    form, reading = variants[(layout, producer, variant)]
    assert reading.status is PdfStatus.READ, reading
    got = application_form(reading)
    assert differences(expected(form, layout), got) == []
    if variant == "no_line_type":
        assert got.line_kind == "Bフレッツ" and got.line_type is None
    elif variant == "no_opening_check":
        assert got.opening_check is None
    elif variant == "no_mail":
        assert got.mail_addresses == () and "mail_addresses" not in reading.fields
    elif variant == "empty_ssid":
        assert got.ssid is None and "ssid" not in reading.fields
    elif variant == "fullwidth_ssid":
        assert not got.ssid.isascii()  # kept full-width, for SSID_NOT_HALFWIDTH
        assert got.ssid.startswith("ｋｉｔｓｕｎｅ＿Ｗｉ")
    elif variant == "three_mails":
        assert got.mail_addresses == ("aoyama@uspot.jp", "cafe-aoyama@uspot.jp", "c-aoya@uspot.jp")
    elif variant == "invalid_mails":
        assert got.mail_addresses == ("あおやま@uspot.jp", "taro@gmail.com")  # as written, for the checks
    elif variant == "remarks_plus_tourist":
        assert got.plus is True and got.tourist is True and "親1台、子2台" in got.remarks.replace(" ", "")
    elif variant == "nothing_chosen":
        assert got.line_kind is None and got.opening_check is None and not got.tourist


# ---------------------------------------------------------------- passwords and shapes


@pytest.mark.parametrize("encryption", ["aes256", "aes128", "rc4"])
def test_wrong_password(encryption: str) -> None:
    data = g.application_pdf(g.sample_application(CODE), layout="excel_grid", encryption=encryption,
                             password="other-pw")
    r = read_pdf(data, "application", password="uspot", limits=LIMITS, rules_dir=RULES)
    assert r.status is PdfStatus.WRONG_PASSWORD and r.fields == {}


def test_unencrypted_form_is_read_with_its_fields() -> None:
    form = g.sample_application(CODE)
    r = read_pdf(g.application_pdf(form, layout="word_stacked", encryption=None), "application",
                 rules_dir=RULES)
    assert r.status is PdfStatus.NOT_ENCRYPTED and r.detail == "no password"
    assert r.fields["customer_code"] == CODE and r.fields["shop_name"]


def test_owner_password_only_counts_as_not_encrypted() -> None:
    """Encrypted for permissions, but anyone can open it: the manual's パスワード必須 is not met."""
    import pikepdf

    plain = g.application_pdf(g.sample_application(CODE), layout="acroform", encryption=None)
    with pikepdf.open(io.BytesIO(plain)) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, encryption=pikepdf.Encryption(user="", owner="uspot", R=6))
    r = read_pdf(buf.getvalue(), "application", rules_dir=RULES)
    assert r.status is PdfStatus.NOT_ENCRYPTED and "empty user password" in r.detail
    assert r.fields["customer_code"] == CODE


@pytest.mark.parametrize("user, owner, revision, fast", [
    ("uspot", "usen-spot-owner", 6, True),  # the agreed password, as branches' forms come
    ("uspot", "usen-spot-owner", 5, True),  # Adobe's extension level 3 (Acrobat 9)
    ("other", "uspot", 6, False),  # the agreed password is the owner's
    ("", "uspot", 6, False),  # opens for anyone
    ("uspot", "usen-spot-owner", 4, False),  # AES-128: qpdf's own key derivation is cheap there
])
@pytest.mark.filterwarnings("ignore:Encryption R=5 is deprecated")
def test_aes256_key_derived_here_opens_the_file_as_qpdf_does(user, owner, revision, fast) -> None:
    """The AES-256 file key is derived with OpenSSL (issue 19: qpdf's own derivation was half a
    form's reading time), and only for the agreed user password; the file then opens exactly as
    qpdf opens it with the password, and every other case takes qpdf's own path."""
    import pikepdf

    from mailbot.forms.pdf import _open_with_aes256_user_key, unlock

    plain = g.application_pdf(g.sample_application(CODE), layout="excel_grid", encryption=None)
    with pikepdf.open(io.BytesIO(plain)) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, encryption=pikepdf.Encryption(user=user, owner=owner, R=revision), static_id=True)
    data = buf.getvalue()
    opened = _open_with_aes256_user_key(data, "uspot")
    assert (opened is not None) is fast
    if opened is None:
        return
    assert opened.status is PdfStatus.READ
    with opened.pdf, pikepdf.open(io.BytesIO(data), password="uspot") as reference:
        ours, theirs = io.BytesIO(), io.BytesIO()
        opened.pdf.save(ours, encryption=False, static_id=True)
        reference.save(theirs, encryption=False, static_id=True)
    assert ours.getvalue() == theirs.getvalue()
    assert _open_with_aes256_user_key(data, "uspot2") is None  # a wrong password is qpdf's to report
    assert unlock(data, "uspot").status is PdfStatus.READ


def _aes256_file(user: str = "uspot", owner: str = "x") -> bytes:
    import pikepdf

    plain = g.application_pdf(g.sample_application(CODE), layout="excel_grid", encryption=None)
    with pikepdf.open(io.BytesIO(plain)) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, encryption=pikepdf.Encryption(user=user, owner=owner, R=6), static_id=True)
    return buf.getvalue()


@pytest.mark.parametrize("perms", ["as written", "broken"])
def test_aes256_agreed_password_costs_one_key_derivation_and_a_broken_perms_still_opens(monkeypatch, perms) -> None:
    """The file key derived from the agreed password is checked against /Perms (one derivation);
    a writer's wrong /Perms costs the second derivation (/U, as ISO 32000-2 checks a password), no
    more; a wrong password takes qpdf's path."""
    import re

    from mailbot.forms import pdf as pdf_module

    data = _aes256_file()
    if perms == "broken":
        data = re.sub(rb"/Perms <[0-9a-f]{32}>", b"/Perms <" + b"0" * 32 + b">", data)
    calls = []
    derive = pdf_module._aes256_hash
    monkeypatch.setattr(pdf_module, "_aes256_hash", lambda *a: calls.append(a) or derive(*a))
    opened = pdf_module._open_with_aes256_user_key(data, "uspot")
    assert opened is not None and opened.status is PdfStatus.READ
    opened.pdf.close()
    assert len(calls) == (1 if perms == "as written" else 2)
    assert pdf_module._open_with_aes256_user_key(data, "uspot2") is None
    r = read_pdf(data, "application", password="uspot", rules_dir=RULES)
    assert r.status is PdfStatus.READ and application_form(r).customer_code == CODE


def test_fullwidth_password_opens_via_nfkc() -> None:
    form = g.sample_application(CODE)
    # the branch typed ｕｓｐｏｔ with the IME in full-width mode
    typed_wide = g.application_pdf(form, layout="excel_grid", encryption="aes256", password="ｕｓｐｏｔ")
    r = read_pdf(typed_wide, "application", password="uspot", rules_dir=RULES)
    assert r.status is PdfStatus.READ and "full-width" in r.detail
    assert differences(expected(form, "excel_grid"), application_form(r)) == []
    # the agreed password configured full-width opens a form protected with "uspot"
    plain_pw = g.application_pdf(form, layout="excel_grid", encryption="aes256", password="uspot")
    assert read_pdf(plain_pw, "application", password="ｕｓｐｏｔ", rules_dir=RULES).status is PdfStatus.READ
    assert password_candidates("uspot") == ["uspot", "ｕｓｐｏｔ"]


def test_scan_has_no_text_layer() -> None:
    r = read_pdf(g.scanned_pdf(), "application", rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "no text layer" in r.detail and r.shape == "scan"


def test_damaged_form_is_unreadable_never_not_encrypted() -> None:
    data = g.application_pdf(g.sample_application(CODE), layout="excel_grid", encryption=None)
    at = data.rindex(b"startxref")
    broken = data[:at] + b"startxref\n999\n%%EOF\n"  # opens only after qpdf rebuilds the xref
    r = read_pdf(broken, "application", rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "damaged" in r.detail


def test_limits_name_the_limit() -> None:
    data = g.application_pdf(g.sample_application(CODE), layout="excel_grid")
    r = read_pdf(data, "application", limits=PdfLimits(max_bytes=1000), rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "too big" in r.detail
    r = read_pdf(data, "application", limits=PdfLimits(max_pages=0), rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "too many pages" in r.detail
    r = read_pdf(data, "application", limits=PdfLimits(timeout_s=0.001), rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "time limit" in r.detail
    r = read_pdf(_content_bomb(200), "application", limits=PdfLimits(memory_mb=300), rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "content over 32 MB once inflated" in r.detail
    # 30 MB (under the content cap) of drawing: ~2 million paths take PDFium past the memory limit
    r = read_pdf(_content_bomb(30, b"0 0 m 1 1 l S\n"), "application", limits=PdfLimits(memory_mb=300),
                 rules_dir=RULES)
    assert r.status is PdfStatus.UNREADABLE and "memory limit (300 MB)" in r.detail
    assert read_pdf(b"", "application", rules_dir=RULES).detail == "empty file (0 bytes)"
    assert read_pdfs([], rules_dir=RULES) == []


def _content_bomb(mb: int, pattern: bytes = b" ") -> bytes:
    """A page whose content stream inflates to `mb` MB of `pattern` (compressed in 1 MB steps)."""
    import zlib

    import pikepdf

    z = zlib.compressobj(9)
    chunk = pattern * (2**20 // len(pattern))
    packed = b"".join(z.compress(chunk) for _ in range(mb)) + z.flush()
    pdf = pikepdf.new()
    pdf.add_blank_page()
    content = pikepdf.Stream(pdf, b"")
    content.write(packed, filter=pikepdf.Name.FlateDecode)
    pdf.pages[0].obj.Contents = content
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def test_exit_reasons() -> None:
    assert "crashed (SIGSEGV)" in _exit_reason(-11, LIMITS)
    assert "time limit (20 s)" in _exit_reason(-14, LIMITS)
    assert "exit code 3" in _exit_reason(3, LIMITS)


# ---------------------------------------------------------------- termination forms

TERMINATIONS = [
    TerminationForm("988776654", date(2026, 11, 27), "カフェ AOYAMA",
                    "閉店のため。店舗の営業を2026年11月末で終了し、建物も取り壊しとなるため解約を申請します。"),
    TerminationForm("988776654", date(2027, 1, 5), None, None),
]


@pytest.mark.parametrize("layout", g.TERMINATION_LAYOUTS)
@pytest.mark.parametrize("producer", g.PRODUCERS)
@pytest.mark.parametrize("encryption", g.ENCRYPTIONS)
def test_termination_forms(layout: str, producer: str, encryption: str | None) -> None:
    jobs = [(g.termination_pdf(f, layout=layout, producer=producer, encryption=encryption), "termination")
            for f in TERMINATIONS]
    for form, r in zip(TERMINATIONS, read_pdfs(jobs, limits=LIMITS, rules_dir=RULES), strict=True):
        assert r.status is (PdfStatus.NOT_ENCRYPTED if encryption is None else PdfStatus.READ), r
        got = termination_form(r)
        assert got.customer_code == form.customer_code and got.termination_date == form.termination_date
        assert same_text(got.shop_name, form.shop_name) and same_text(got.reason, form.reason)
        json.dumps(r.fields, ensure_ascii=False)


@pytest.mark.parametrize(("text", "want"), [
    ("2026年11月27日", date(2026, 11, 27)), ("2026/11/27", date(2026, 11, 27)), ("2026-11-27", date(2026, 11, 27)),
    ("令和8年11月27日", date(2026, 11, 27)), ("２０２６年１１月２７日", date(2026, 11, 27)),
    ("令和８年１１月２７日（金）", date(2026, 11, 27)), ("R8.11.27", date(2026, 11, 27)),
    ("令和元年5月1日", date(2019, 5, 1)), ("2026. 11. 27", date(2026, 11, 27)), ("2026年13月1日", None),
    ("", None), ("未定", None),
])
def test_termination_dates(text: str, want: date | None) -> None:
    assert parse_date(text, RULES) == want


# ---------------------------------------------------------------- layouts the generator does not draw


def _draw(lines: list[tuple[float, float, str, float]]) -> bytes:
    """A PDF with text at (x, y-from-top, text, size), in the CID font reportlab needs no file for."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for x, y, text, size in lines:
        c.setFont("HeiseiKakuGo-W5", size)
        c.drawString(x, A4[1] - y, text)
    c.save()
    return buf.getvalue()


def _read(lines: list[tuple[float, float, str, float]]) -> tuple[PdfReading, ApplicationForm]:
    r = read_form(_draw(lines), "application", password="uspot", max_pages=30, rules_dir=RULES)
    return r, application_form(r)


def test_marks_after_the_options_and_options_listed_below() -> None:
    r, got = _read([
        (60, 60, "USEN SPOT ご加入申込書", 14),
        (60, 100, "【契約者】", 10),
        (60, 120, "名称：株式会社テスト", 10),
        (60, 140, "住所：東京都渋谷区1-2-3", 10),
        (60, 170, "【店舗】", 10),
        (60, 190, "店 舗 名：カフェ テスト", 10),
        (60, 210, "住所：東京都港区4-5-6", 10),
        (60, 240, "ご利用回線種別　　フレッツ光ネクスト □　　Bフレッツ ■", 10),
        (60, 260, "ご利用回線タイプ　ファミリー ■　マンション □", 10),
        (60, 280, "確認方法", 10),
        (80, 294, "□ 開通通知書", 10),
        (80, 308, "■ NTT請求書（裏面）", 10),
        (80, 322, "□ 116へ確認", 10),
        (60, 350, "ご希望のメールアドレス　test-shop @ uspot.jp", 10),
        (226, 364, "test-info @ uspot.jp", 10),
        (60, 390, "SSID：ＴＥＳＴ＿ＷＩＦＩ", 10),
        (60, 410, "● USEN SPOT Plus", 10),
    ])
    assert r.status is PdfStatus.NOT_ENCRYPTED and r.shape == "layout"
    assert got.contractor_name == "株式会社テスト" and got.contractor_address == "東京都渋谷区1-2-3"
    assert got.shop_name == "カフェ テスト" and got.shop_address == "東京都港区4-5-6"
    assert (got.line_kind, got.line_type, got.opening_check) == ("Bフレッツ", "ファミリー", "NTT請求書(裏面)")
    assert got.mail_addresses == ("test-shop@uspot.jp", "test-info@uspot.jp")
    assert got.ssid == "ＴＥＳＴ＿ＷＩＦＩ"
    assert got.plus is True  # a marked option counts even without its label


def test_shared_labels_without_headings_go_by_order() -> None:
    _, got = _read([
        (60, 60, "フリガナ　テスト", 10),
        (60, 80, "名称　テスト株式会社", 10),
        (60, 100, "電話番号　03-1111-2222", 10),
        (60, 130, "フリガナ　カフェ", 10),
        (60, 150, "店舗名　カフェ", 10),
        (60, 170, "電話番号　03-3333-4444", 10),
        (60, 200, "外国人対応SSIDオプション　■ 希望する　□ 希望しない", 10),
        (60, 220, "ご利用回線種別：フレッツ光ネクスト", 10),
    ])
    assert (got.contractor_kana, got.shop_kana) == ("テスト", "カフェ")
    assert (got.contractor_phone, got.shop_phone) == ("03-1111-2222", "03-3333-4444")
    assert got.tourist is True and got.line_kind == "フレッツ光ネクスト"


def test_rebuilding_from_plain_fields() -> None:
    reading = PdfReading(PdfStatus.READ, fields={"mail_addresses": ["a@uspot.jp"], "plus": True, "ssid": "X"})
    assert application_form(reading) == ApplicationForm(mail_addresses=("a@uspot.jp",), plus=True, ssid="X")
    t = PdfReading(PdfStatus.READ, fields={"customer_code": "988776654", "termination_date": "2026-11-27"})
    assert termination_form(t) == TerminationForm("988776654", date(2026, 11, 27))


@pytest.mark.parametrize("layout", ["excel_grid", "label_below", "acroform"])
def test_cells_from_intersections_are_pdfplumbers(layout: str) -> None:
    """The faster cell finder gives pdfplumber's cells, in pdfplumber's order."""
    import io

    import pypdfium2
    from pdfplumber.table import (
        edges_to_intersections,
        intersections_to_cells,
        merge_edges,
    )
    from pdfplumber.utils import filter_edges

    from mailbot.forms.pdf import _page_edges, cells_from_intersections, unlock

    opened = unlock(g.application_pdf(g.sample_application(CODE), layout=layout, producer="fpdf2"), "uspot")
    plain = io.BytesIO()
    opened.pdf.save(plain, encryption=False)
    page = pypdfium2.PdfDocument(plain.getvalue())[0]
    edges = [e for e in _page_edges(page, page.get_height()) if (e["height"] if e["orientation"] == "v" else e["width"]) >= 1]
    merged = filter_edges(merge_edges(edges, snap_x_tolerance=3, snap_y_tolerance=3, join_x_tolerance=3,
                                      join_y_tolerance=3), min_length=3)
    intersections = edges_to_intersections(merged, 3, 3)
    assert len(intersections) > 20
    assert cells_from_intersections(intersections) == intersections_to_cells(intersections)


def test_the_readers_forkserver_is_started_ahead_once() -> None:
    """`mailbot poll` and `run` start the forkserver beside their own start-up (it imports the PDF
    libraries): the first form read then waits for a fork only."""
    import os
    from multiprocessing import forkserver

    from mailbot.forms import sandbox

    sandbox.prestart()
    pid = forkserver._forkserver._forkserver_pid  # noqa: SLF001
    assert pid and os.waitpid(pid, os.WNOHANG) == (0, 0)  # running
    sandbox.prestart()
    assert forkserver._forkserver._forkserver_pid == pid  # noqa: SLF001
    form = g.sample_application(CODE)
    r = read_pdf(g.application_pdf(form, layout="excel_grid", encryption="aes256"), "application",
                 password="uspot", rules_dir=RULES)
    assert r.status is PdfStatus.READ and forkserver._forkserver._forkserver_pid == pid  # noqa: SLF001
