"""The sample form generator (demo.forms): every layout × producer × encryption."""

from __future__ import annotations

import email
import io
import re
import time
import unicodedata
import warnings
from datetime import date, datetime, timedelta, timezone

import pdfplumber
import pikepdf
import pytest
from pikepdf.models.encryption import EncryptionMethod

from demo import forms as generate
from demo.forms import (
    ENCRYPTIONS,
    LAYOUTS,
    OWNER_PASSWORD,
    PRODUCERS,
    TERMINATION_LAYOUTS,
    application_pdf,
    marks,
    sample_application,
    scanned_pdf,
    termination_pdf,
)
from mailbot.forms.model import ApplicationForm, TerminationForm

PASSWORD = "uspot"
ACROFORMS = ("acroform", "acroform_split")
MARKED = ("excel_grid", "word_stacked", "label_below")  # every option printed with a mark

FULL = sample_application(
    "988776654", line_kind="Bフレッツ", line_type="マンション", opening_check="NTT請求書(裏面)",
    plus=True, tourist=True, shop_name="カフェ・ド・ソレイユ 渋谷店",
    shop_address="150-0042 東京都渋谷区宇田川町33番6号 渋谷宇田川町ビル1F",
    mail_addresses=("soleil-shibuya@uspot.jp", "soleil-info@uspot.jp", "soleil-staff@uspot.jp"),
    remarks="親1台、子2台（2F・3F客室フロアに子機設置）",
)
# a form lacking what can be left out
SPARSE = ApplicationForm(shop_name="焼肉 たいよう 梅田店", line_kind="Bフレッツ", contact_name="大洋 一樹")

TEXT_FIELDS = ("customer_code", "contractor_kana", "contractor_name", "contractor_address",
               "contractor_phone", "shop_kana", "shop_name", "shop_address", "shop_phone",
               "contact_name", "ssid", "initial_fee", "monthly_fee", "remarks")
EXPECTED_ENCRYPTION = {"aes256": (6, 5, 256), "aes128": (4, 4, 128), "rc4": (3, 2, 128)}
CREATORS = {
    "acroform": "Adobe Acrobat Pro", "acroform_split": "Adobe Acrobat Pro",
    "excel_grid": "Microsoft® Excel®", "word_stacked": "Microsoft® Word", "table": "Microsoft® Excel®",
    "plain": "Microsoft® Word", "browser_chosen_only": "Skia/PDF m120", "label_below": "LibreOffice",
}


def squash(text: str) -> str:
    """NFKC, without any whitespace: producers split and space words differently."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def contains(text: str, value: str) -> bool:
    """`value` is in `text` (both squashed), or, where a cell wrapped it and a neighbouring cell
    (a vertically centred label or 〒 cell) came between its lines, in at most 4 pieces."""
    text, rest = squash(text), squash(value)
    if rest in text:
        return True
    for _ in range(4):
        n = next((k for k in range(len(rest), 1, -1) if rest[:k] in text), 0)
        if not n:
            return False
        rest = rest[n:]
        if not rest:
            return True
    return False


def page_text(data: bytes, password: str = "") -> tuple[str, list]:
    with pdfplumber.open(io.BytesIO(data), password=password) as pdf:
        assert len(pdf.pages) == 1
        page = pdf.pages[0]
        assert (round(page.width), round(page.height)) == (595, 842)  # A4
        return page.extract_text() or "", list(page.chars)


def acro_fields(data: bytes, password: str = "") -> dict[str, object]:
    with pikepdf.open(io.BytesIO(data), password=password) as pdf:
        out: dict[str, object] = {}
        for f in pdf.Root.AcroForm.Fields:
            assert "/AP" in f and "/N" in f.AP, f"{f.T}: no appearance"
            v = f.get("/V")
            out[str(f.T)] = None if v is None else (str(v) if not isinstance(v, pikepdf.Name) else v == "/Yes")
        return out


def assert_encryption(data: bytes, encryption: str | None) -> None:
    if encryption is None:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            assert not pdf.is_encrypted
        return
    for wrong in ("", "wrong"):
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(io.BytesIO(data), password=wrong)
    with pikepdf.open(io.BytesIO(data), password=PASSWORD) as pdf:
        assert pdf.is_encrypted
        e = pdf.encryption
        assert (e.R, e.V, e.bits) == EXPECTED_ENCRYPTION[encryption]
        if encryption == "aes256":
            assert e.stream_method == EncryptionMethod.aesv3
        elif encryption == "aes128":
            assert e.stream_method == EncryptionMethod.aes
        assert e.user_password == PASSWORD.encode()
    with pikepdf.open(io.BytesIO(data), password=OWNER_PASSWORD) as pdf:  # the owner's too
        assert pdf.is_encrypted


# ---- the application form --------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ENCRYPTIONS)
@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_application_form(layout: str, producer: str, encryption: str | None) -> None:
    data = application_pdf(FULL, layout=layout, producer=producer, encryption=encryption)
    assert data.startswith(b"%PDF-")
    assert_encryption(data, encryption)
    password = PASSWORD if encryption else ""
    text, _ = page_text(data, password)
    flat = squash(text)
    assert "USENSPOTご加入申込書" in flat

    if layout in ACROFORMS:
        fields = acro_fields(data, password)
        for name in TEXT_FIELDS:
            assert fields[name] == getattr(FULL, name), name
        assert fields["line_kind"] == "Bフレッツ"
        assert fields["line_type"] == "マンション"
        assert fields["opening_check"] == "NTT請求書(裏面)"
        assert fields["plus"] is True and fields["tourist"] is True
        if layout == "acroform":
            assert "mail_address_1" not in fields
            assert str(fields["mail_addresses"]).split("\n") == list(FULL.mail_addresses)
        else:
            assert "mail_addresses" not in fields
            assert [fields[f"mail_address_{i}"] for i in (1, 2, 3)] == list(FULL.mail_addresses)
        # the page itself has the labels and no values
        assert "ご利用回線種別" in flat and "確認方法" in flat and FULL.shop_name not in text
        return

    for name in TEXT_FIELDS:
        assert contains(text, getattr(FULL, name)), f"{name} not in {layout}/{producer}:\n{text}"
    for addr in FULL.mail_addresses:
        assert contains(text, addr), addr
    on, off = marks(layout, producer)
    if layout == "browser_chosen_only":
        assert on == "✓"
        for item in ("ご利用回線種別:Bフレッツ", "ご利用回線タイプ:マンション",
                     "確認方法:NTT請求書(裏面)", "ご利用サービス:USENSPOTPlus",
                     "外国人対応SSIDオプション:✓"):
            assert item in flat, item
        for unchosen in ("フレッツ光ネクスト", "ファミリー", "開通通知書", "116へ確認"):
            assert unchosen not in flat, unchosen
    else:
        for chosen in ("Bフレッツ", "マンション", "NTT請求書(裏面)", "USENSPOTPlus",
                       "外国人対応SSIDオプション"):
            assert on + chosen in flat, chosen
        for unchosen in ("フレッツ光ネクスト", "ファミリー", "開通通知書", "116へ確認", "USENSPOT"):
            assert off + unchosen in flat, unchosen
        assert flat.count(on) == 5


@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_values_are_not_printed_nor_marked(layout: str, producer: str) -> None:
    data = application_pdf(SPARSE, layout=layout, producer=producer, encryption=None)
    text, _ = page_text(data)
    flat = squash(text)
    assert SPARSE.shop_name and squash(SPARSE.shop_name) in flat or layout in ACROFORMS
    if layout in ACROFORMS:
        fields = acro_fields(data)
        assert fields["shop_name"] == SPARSE.shop_name and fields["line_kind"] == "Bフレッツ"
        for name in ("line_type", "opening_check", "ssid", "remarks", "customer_code"):
            assert fields[name] is None, name
        assert fields["plus"] is False and fields["tourist"] is False
        mail = ["mail_addresses"] if layout == "acroform" else [f"mail_address_{i}" for i in (1, 2, 3)]
        assert all(fields[m] is None for m in mail)
        return
    on, off = marks(layout, producer)
    if layout == "browser_chosen_only":
        assert "ご利用回線種別:Bフレッツ" in flat
        assert "ご利用回線タイプ:確認方法:ご希望のメールアドレス" in flat  # nothing after the labels
        assert "ご利用サービス:SSID" in flat and "外国人対応SSIDオプション:基本工事費" in flat
        assert "✓" not in flat
        return
    assert flat.count(on) == 1 and on + "Bフレッツ" in flat  # only the line kind is chosen
    for unchosen in ("ファミリー", "マンション", "開通通知書", "NTT請求書(裏面)", "116へ確認",
                     "USENSPOT", "USENSPOTPlus", "外国人対応SSIDオプション"):
        assert off + unchosen in flat, unchosen


def test_a_value_that_is_no_option_is_printed_as_chosen() -> None:
    form = sample_application("911111111", line_kind="光ネクスト", line_type="ファミリー")
    flat = squash(page_text(application_pdf(form, encryption=None))[0])
    on, off = marks("excel_grid", "reportlab")
    assert on + "光ネクスト" in flat and off + "フレッツ光ネクスト" in flat and off + "Bフレッツ" in flat


@pytest.mark.parametrize("producer", PRODUCERS)
def test_layout_specifics(producer: str) -> None:
    # excel_grid: the long addresses wrap inside their cells (no text line holds them whole)
    text, _ = page_text(application_pdf(FULL, layout="excel_grid", producer=producer, encryption=None))
    rest = squash(FULL.contractor_address.split(" ", 1)[1])
    assert contains(text, FULL.contractor_address)
    assert not any(rest in squash(line) for line in text.splitlines())
    # word_stacked: the value on the line below its label; labels spaced out by hand
    text, _ = page_text(application_pdf(FULL, layout="word_stacked", producer=producer, encryption=None))
    lines = text.splitlines()
    assert "店 舗 名" in lines and "ご 担 当 者 名" in lines
    assert lines[lines.index("店 舗 名") + 1] == FULL.shop_name
    assert lines[lines.index("ご 担 当 者 名") + 1] == FULL.contact_name
    # browser: label：value on one line, and Chrome's header and footer
    text, _ = page_text(application_pdf(FULL, layout="browser_chosen_only", producer=producer,
                                        encryption=None))
    assert f"店舗/施設名：{FULL.shop_name}" in text.splitlines()
    assert "https://apply.usen.co.jp/spot/entry/confirm 1/1" in text
    # label_below: each label below its value (the wrapped address: two lines, then the label)
    text, _ = page_text(application_pdf(FULL, layout="label_below", producer=producer, encryption=None))
    lines = [squash(line) for line in text.splitlines()]
    assert lines.index("ご担当者名") == lines.index(squash(FULL.contact_name)) + 1
    shop = lines.index(squash(FULL.shop_name))
    assert lines[shop + 1] == "店舗/施設名"
    after = lines[shop + 2:]
    addr_label = after.index("住所〒")
    assert 2 <= addr_label and "".join(after[:addr_label]).endswith(squash(FULL.shop_address)[-6:])


@pytest.mark.parametrize("producer", PRODUCERS)
def test_full_width_values_keep_their_width(producer: str) -> None:
    """The reader must see a full-width SSID as full-width (SSID_NOT_HALFWIDTH)."""
    form = sample_application("922222222", ssid="ＵＳＥＮ＿ＷｉＦｉ")
    for layout in ("excel_grid", "browser_chosen_only"):
        text, _ = page_text(application_pdf(form, layout=layout, producer=producer, encryption=None))
        assert "ＵＳＥＮ＿ＷｉＦｉ" in text
    fields = acro_fields(application_pdf(form, layout="acroform", producer=producer, encryption=None))
    assert fields["ssid"] == "ＵＳＥＮ＿ＷｉＦｉ"


def test_producers_really_differ() -> None:
    if generate._producer("fpdf2") != "fpdf2":
        pytest.skip("fpdf2 or the IPA Gothic font is not installed: fpdf2 falls back to reportlab")

    def fonts(data: bytes) -> dict[str, bool]:  # BaseFont → embedded
        with pikepdf.open(io.BytesIO(data)) as pdf:
            out = {}
            for _, font in pdf.pages[0].Resources.Font.items():
                desc = font.DescendantFonts[0].FontDescriptor if "/DescendantFonts" in font else font.get("/FontDescriptor")
                out[str(font.BaseFont)] = desc is not None and any(
                    k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))
            return out

    rl = fonts(application_pdf(FULL, producer="reportlab", encryption=None))
    fp = fonts(application_pdf(FULL, producer="fpdf2", encryption=None))
    assert "/HeiseiKakuGo-W5" in rl and not any(rl.values())  # named, never embedded
    assert fp and all(fp.values()) and any(re.fullmatch(r"/[A-Z]{6}\+IPAGothic", f) for f in fp)


def test_metadata_as_the_real_tools_write_it() -> None:
    for layout in LAYOUTS:
        for producer in PRODUCERS:
            with pikepdf.open(io.BytesIO(application_pdf(FULL, layout=layout, producer=producer,
                                                         encryption=None))) as pdf:
                info = {k: str(v) for k, v in pdf.docinfo.items()}
                assert CREATORS[layout] in info["/Producer"], (layout, info)
                assert "reportlab" not in str(info).lower() and "fpdf" not in str(info).lower()
                assert info["/CreationDate"].startswith("D:2026")
    with pikepdf.open(io.BytesIO(application_pdf(FULL, layout="browser_chosen_only", encryption=None))) as pdf:
        assert str(pdf.docinfo["/Creator"]).startswith("Mozilla/5.0")
    with pikepdf.open(io.BytesIO(scanned_pdf(encryption=None))) as pdf:
        assert "RICOH" in str(pdf.docinfo["/Producer"])


def test_deterministic_except_aes_salts() -> None:
    def fresh(**kw: object) -> bytes:
        generate._application_plain.cache_clear()
        return application_pdf(FULL, **kw)  # type: ignore[arg-type]

    for producer in PRODUCERS:
        for layout in ("excel_grid", "acroform"):
            assert fresh(layout=layout, producer=producer, encryption=None) == \
                fresh(layout=layout, producer=producer, encryption=None)
            assert fresh(layout=layout, producer=producer, encryption="rc4") == \
                fresh(layout=layout, producer=producer, encryption="rc4")
    assert fresh(encryption="aes256") != fresh(encryption="aes256")  # random salts
    assert fresh(encryption=None, password="x") == fresh(encryption=None)


def test_password_is_the_one_asked_for() -> None:
    data = application_pdf(FULL, encryption="aes128", password="himitsu")
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(io.BytesIO(data), password=PASSWORD)
    with pikepdf.open(io.BytesIO(data), password="himitsu") as pdf:
        assert pdf.encryption.R == 4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        application_pdf(FULL, layout="excel")
    with pytest.raises(ValueError):
        application_pdf(FULL, producer="word")
    with pytest.raises(ValueError):
        application_pdf(FULL, encryption="des")
    with pytest.raises(ValueError):
        termination_pdf(TerminationForm(), layout="excel_grid")


def test_fpdf2_falls_back_to_reportlab_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "_fpdf2_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = application_pdf(FULL, layout="excel_grid", producer="fpdf2", encryption=None)
        assert marks("excel_grid", "fpdf2") == ("■", "□")
    text, _ = page_text(data)
    assert "■Bフレッツ" in squash(text)


def test_marks_per_layout_and_producer() -> None:
    assert marks("excel_grid", "reportlab") == ("■", "□")  # no ballot box in Adobe-Japan1
    if generate._producer("fpdf2") == "fpdf2" and generate._font_file("symbol"):
        assert marks("excel_grid", "fpdf2") == ("☑", "☐")  # from DejaVu Sans
    for producer in PRODUCERS:
        assert marks("word_stacked", producer) == ("●", "○")
        assert marks("label_below", producer) == ("■", "□")
        assert marks("browser_chosen_only", producer) == ("✓", "")
        assert marks("acroform", producer) == ("", "")


def test_generation_is_fast() -> None:
    """A new form (no cache) per producer and layout; the ms per form go into the message."""
    timings = {}
    for producer in PRODUCERS:
        for i, layout in enumerate(LAYOUTS):
            form = sample_application(f"93000000{i}")
            start = time.perf_counter()
            application_pdf(form, layout=layout, producer=producer, encryption="aes256")
            timings[(producer, layout)] = (time.perf_counter() - start) * 1000
    per_producer = {p: sum(v for (q, _), v in timings.items() if q == p) / len(LAYOUTS) for p in PRODUCERS}
    assert max(timings.values()) < 2000, timings
    assert per_producer["reportlab"] < 300, per_producer


# ---- termination form and scan ---------------------------------------------------------------


TERMINATION = TerminationForm(customer_code="910987654", termination_date=date(2026, 11, 27),
                              shop_name="スポーツバー ゴール 渋谷店", reason="閉店のため")


@pytest.mark.parametrize("encryption", ENCRYPTIONS)
@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("layout", TERMINATION_LAYOUTS)
def test_termination_form(layout: str, producer: str, encryption: str | None) -> None:
    data = termination_pdf(TERMINATION, layout=layout, producer=producer, encryption=encryption)
    assert_encryption(data, encryption)
    text, _ = page_text(data, PASSWORD if encryption else "")
    flat = squash(text)
    assert "解約申請書" in flat
    assert "顧客CD910987654" in flat or "顧客CD:910987654" in flat
    assert ("解約日2026年11月27日" if layout == "table" else "解約日:2026/11/27") in flat
    assert "スポーツバーゴール渋谷店" in flat and "閉店のため" in flat
    with pikepdf.open(io.BytesIO(data), password=PASSWORD if encryption else "") as pdf:
        assert CREATORS[layout] in str(pdf.docinfo["/Producer"])


def test_termination_form_without_date() -> None:
    text, _ = page_text(termination_pdf(TerminationForm(customer_code="910987654"), encryption=None))
    assert "年" not in text and "解約日" in text


@pytest.mark.parametrize("encryption", ENCRYPTIONS)
def test_scan_has_no_text_layer(encryption: str | None) -> None:
    data = scanned_pdf(encryption=encryption)
    assert_encryption(data, encryption)
    with pdfplumber.open(io.BytesIO(data), password=PASSWORD if encryption else "") as pdf:
        [page] = pdf.pages
        assert (page.extract_text() or "") == "" and page.chars == []
        [image] = page.images
        assert image["srcsize"][0] > 1000


# ---- sample_application and the sample mails ---------------------------------------------------


def test_sample_application_is_complete_valid_and_deterministic() -> None:
    for code in ("988776654", "921098765", "900000001", "987650123", "912345678", "954320018"):
        form = sample_application(code)
        assert form == sample_application(code)
        assert form.customer_code == code
        for name in TEXT_FIELDS + ("line_kind", "opening_check", "plus", "tourist"):
            if name != "remarks":
                assert getattr(form, name) is not None, (code, name)
        assert form.line_kind in generate.LINE_KINDS and form.opening_check in generate.OPENING_CHECKS
        assert form.line_kind != "Bフレッツ" or form.line_type in generate.LINE_TYPES
        assert 1 <= len(form.mail_addresses) <= 3
        assert all(a.endswith("@uspot.jp") and a.isascii() for a in form.mail_addresses)
        assert form.ssid and form.ssid.isascii() and len(form.ssid.encode()) <= 32
        assert form.monthly_fee == ("4,320" if form.plus else "2,160")
    forms = {sample_application(str(900000000 + i)) for i in range(12)}
    assert len({f.shop_name for f in forms}) > 2 and len({f.line_kind for f in forms}) == 2
    o = sample_application("988776654", plus=True, line_type=None, mail_addresses=(), remarks="x")
    assert (o.plus, o.line_type, o.mail_addresses, o.remarks, o.monthly_fee) == (True, None, (), "x", "4,320")
    assert sample_application("988776654", plus=True, monthly_fee=None).monthly_fee is None


def test_sample_mails_attach_generated_forms_matching_their_bodies() -> None:
    from demo.samples import _FORMS, sample_mails

    now = datetime(2026, 11, 20, 10, 30, tzinfo=timezone(timedelta(hours=9)))
    mails = dict(sample_mails(now))

    def pdf_of(name: str) -> bytes:
        msg = email.message_from_bytes(mails[name])
        [data] = [p.get_payload(decode=True) for p in msg.walk() if p.get_content_type() == "application/pdf"]
        return data

    creators = set()
    for name, code, shop, plus in [
        ("order_shibuya", "988776654", "カフェ・ド・ソレイユ 渋谷店", False),
        ("order_fullwidth", "988123456", "美容室 ルミエール 表参道店", False),
        ("order_forwarded", "965432107", "ラーメン 一番星 池袋東口店", False),
        ("order_multi_units", "987650123", "ホテル ベイサイド横浜", True),
        ("order_no_code", "954320018", "焼肉 たいよう 梅田店", False),
        ("order_resubmission", "976543210", "居酒屋 はなまる 新宿三丁目店", False),
        ("order_8digit", "98877665", "ネイルサロン ミモザ 天神店", False),
    ]:
        data = pdf_of(name)
        with pikepdf.open(io.BytesIO(data), password=PASSWORD) as pdf:
            assert pdf.encryption.R == 6
            creators.add(str(pdf.docinfo["/Producer"]))
            acro = "/AcroForm" in pdf.Root
        if acro:
            fields = acro_fields(data, PASSWORD)
            assert (fields["customer_code"], fields["shop_name"], fields["plus"]) == (code, shop, plus)
            text = str(fields.get("remarks") or "")
            assert fields["opening_check"], name
        else:
            text, _ = page_text(data, PASSWORD)
            assert contains(text, code) and contains(text, shop), name
            layout, producer, _ = _FORMS[code]
            on, _ = marks(layout, producer)
            chosen = "ご利用サービス:" if layout == "browser_chosen_only" else on
            assert (chosen + "USENSPOTPlus" in squash(text)) == plus, name
        if name == "order_multi_units":
            assert "親1台、子2台" in text
    assert len(creators) >= 4  # Excel, Word, Chrome, Acrobat, LibreOffice
    text, _ = page_text(pdf_of("termination"), PASSWORD)
    assert "解約日2026年12月31日" in squash(text) and "910987654" in text
