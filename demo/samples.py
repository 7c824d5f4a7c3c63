"""Realistic sample mails: a morning in the usen_spot mailbox, for the embedded default and tests.

    sample_mails(now, application_pdf=None, termination_pdf=None) -> [(name, raw bytes)]
    seed_maildir(mailbox, now, ...)                                   -> appends them to INBOX

The mails are written as Japanese branches really send them: Outlook 16 on Windows in
ISO-2022-JP (multipart/alternative plain 7bit + HTML quoted-printable, RFC 2047 B-encoded
headers), some in Shift_JIS (labelled Shift_JIS, bytes in CP932 as Windows writes them), some
in UTF-8 base64 (Outlook for Mac, iPhone, Gmail); greetings, signatures, quoted and forwarded
text around the body items.  Each one arrives through the company MX (Return-Path,
Delivered-To, Received, Authentication-Results on top).

Everything is a function of `now` (the mails are spread over the preceding ~3.5 hours), except
the bytes of the attached forms: pikepdf's AES-256 (R=6) encryption draws random salts and IVs,
so those are built once per process and cached (same bytes for every call in a process).

The forms come from `demo.forms`, with the values each mail's body states (customer
code, shop name, Plus, 親1台、子2台 in 備考) and a different layout and producer per mail (see
`_FORMS`), all AES-256 with user password `uspot`.  Pass `application_pdf` / `termination_pdf`
(customer code → PDF bytes) to attach something else.

`SAMPLES` describes each mail (decoded subject, the kind it claims, the code in its subject),
`BRANCHES` the branches and people appearing in them (for a matching branch directory).
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import html
import io
import quopri
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import SMTP, compat32
from email.utils import format_datetime
from typing import TYPE_CHECKING, ClassVar

from mailbot.model import Kind

if TYPE_CHECKING:
    from mailbot.mailbox.maildir import MaildirMailbox

__all__ = [
    "BRANCHES",
    "OFFICE_ADDR",
    "PDF_PASSWORD",
    "SAMPLES",
    "encoded_words",
    "sample_directory",
    "sample_extract",
    "Branch",
    "Person",
    "SampleInfo",
    "sample_mails",
    "seed_maildir",
]

JST = timezone(timedelta(hours=9), "JST")
OFFICE_ADDR = "usen_spot@usen.co.jp"
OFFICE_NAME = "USEN SPOT 事務センター"
PDF_PASSWORD = "uspot"  # the agreed user password of forms sent to the office center
PDF_OWNER_PASSWORD = "usen-spot-owner"
MX = "mx01.usen.co.jp"

PdfMaker = Callable[[str], bytes]


# ---- people ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str  # "鈴木 一郎"
    addr: str
    branch: str  # "渋谷支店"
    dept: str  # "営業課"
    tel: str

    @property
    def family(self) -> str:
        return self.name.split()[0]


@dataclass(frozen=True)
class Branch:
    name: str
    manager: Person
    members: tuple[Person, ...]
    corporate: bool = False


def _p(name: str, addr: str, branch: str, dept: str, tel: str) -> Person:
    return Person(name, addr + "@usen.co.jp", branch, dept, tel)


SUZUKI = _p("鈴木 一郎", "i-suzuki", "渋谷支店", "営業課", "03-5458-2101")
OKADA = _p("岡田 由美", "y-okada", "渋谷支店", "総務課", "03-5458-2100")
TANAKA = _p("田中 誠", "m-tanaka", "渋谷支店", "支店長", "03-5458-2100")
UCHIDA = _p("内田 美穂", "m-uchida", "青山支店", "営業課", "03-5771-3302")
TAKAHASHI = _p("高橋 健一", "k-takahashi", "青山支店", "支店長", "03-5771-3300")
SATO = _p("佐藤 花子", "h-sato", "新宿支店", "総務課", "03-5909-4400")
WATANABE = _p("渡辺 健太", "k-watanabe", "新宿支店", "営業課", "03-5909-4412")
ITO = _p("伊藤 浩二", "k-ito", "新宿支店", "支店長", "03-5909-4400")
OGAWA = _p("小川 大輔", "d-ogawa", "池袋支店", "総務課", "03-5952-5500")
SHIMIZU_R = _p("清水 亮", "r-shimizu", "池袋支店", "営業課", "03-5952-5521")
MORI = _p("森 和也", "k-mori", "池袋支店", "支店長", "03-5952-5500")
ISHII = _p("石井 健", "k-ishii", "吉祥寺支店", "営業課", "0422-21-6603")
MAEDA = _p("前田 浩", "h-maeda", "吉祥寺支店", "支店長", "0422-21-6600")
YAMAMOTO = _p("山本 翔太", "s-yamamoto", "横浜支店", "営業課", "045-441-7705")
KONDO = _p("近藤 誠也", "s-kondo", "横浜支店", "技術課", "045-441-7730")
NAKAMURA = _p("中村 聡", "s-nakamura", "横浜支店", "支店長", "045-441-7700")
KOBAYASHI = _p("小林 直樹", "n-kobayashi", "梅田支店", "営業課", "06-6375-8801")
KATO = _p("加藤 隆", "t-kato", "梅田支店", "支店長", "06-6375-8800")
HAYASHI = _p("林 恵", "m-hayashi", "難波支店", "技術課", "06-6641-8850")
SHIMIZU_H = _p("清水 博", "h-shimizu", "難波支店", "支店長", "06-6641-8800")
YOSHIDA = _p("吉田 真由美", "m-yoshida", "福岡支店", "営業課", "092-471-9902")
MATSUMOTO = _p("松本 剛", "t-matsumoto", "福岡支店", "支店長", "092-471-9900")
INOUE = _p("井上 拓也", "t-inoue", "名古屋支店", "営業課", "052-581-1106")
KIMURA = _p("木村 修", "o-kimura", "名古屋支店", "支店長", "052-581-1100")
SAITO = _p("斎藤 さくら", "s-saito", "札幌支店", "総務課", "011-221-1201")
YAMAGUCHI = _p("山口 修一", "s-yamaguchi", "札幌支店", "支店長", "011-221-1200")
KUDO = _p("工藤 隼人", "h-kudo", "法人営業部", "法人営業課", "03-6823-1010")
NISHIDA = _p("西田 亜希", "a-nishida", "法人営業部", "部長", "03-6823-1000")

BRANCHES: tuple[Branch, ...] = (
    Branch("渋谷支店", TANAKA, (SUZUKI, OKADA)),
    Branch("青山支店", TAKAHASHI, (UCHIDA,)),
    Branch("新宿支店", ITO, (SATO, WATANABE)),
    Branch("池袋支店", MORI, (OGAWA, SHIMIZU_R)),
    Branch("吉祥寺支店", MAEDA, (ISHII,)),
    Branch("横浜支店", NAKAMURA, (YAMAMOTO, KONDO)),
    Branch("梅田支店", KATO, (KOBAYASHI,)),
    Branch("難波支店", SHIMIZU_H, (HAYASHI,)),
    Branch("福岡支店", MATSUMOTO, (YOSHIDA,)),
    Branch("名古屋支店", KIMURA, (INOUE,)),
    Branch("札幌支店", YAMAGUCHI, (SAITO,)),
    Branch("法人営業部", NISHIDA, (KUDO,), corporate=True),
)


@dataclass(frozen=True)
class SampleInfo:
    subject: str  # decoded Subject
    kind: Kind | None  # the kind the mail claims to be; None for machine mails (OOO, bounce)
    code: str | None  # the code after the kind word (Classification.code), None when absent
    note: str


SAMPLES: dict[str, SampleInfo] = {
    "auto_reply": SampleInfo(
        "自動応答: 【受付】USEN SPOT 器材発注依頼_912345678", None, None,
        "Exchange out-of-office from a branch manager (Auto-Submitted: auto-replied)"),
    "bounce": SampleInfo(
        "Undelivered Mail Returned to Sender", None, None,
        "Postfix DSN (multipart/report, Return-Path: <>) for a reply to a departed employee"),
    "order_shibuya": SampleInfo(
        "USEN SPOT 器材発注依頼_988776654", Kind.EQUIPMENT_ORDER, "988776654",
        "a complete equipment order, Outlook ISO-2022-JP, encrypted form attached"),
    "cancellation": SampleInfo(
        "USEN SPOT キャンセル申請_921098765", Kind.CANCELLATION, "921098765",
        "cancellation, Outlook in Shift_JIS (CP932 ㈱ in the signature)"),
    "order_fullwidth": SampleInfo(
        "ＵＳＥＮ　ＳＰＯＴ　器材発注依頼＿９８８１２３４５６", Kind.EQUIPMENT_ORDER, "988123456",
        "full-width subject, Shift_JIS, body items separated by full-width spaces"),
    "contract_change": SampleInfo(
        "USEN SPOT 契約変更_932104567", Kind.CONTRACT_CHANGE, "932104567",
        "contract change (変更内容: shop name), Outlook for Mac UTF-8 base64"),
    "order_forwarded": SampleInfo(
        "FW: USEN SPOT 器材発注依頼_965432107", Kind.EQUIPMENT_ORDER, "965432107",
        "general affairs forwards a sales rep's order; items inside the forwarded text"),
    "outside_gmail": SampleInfo(
        "USEN SPOT キャンセル申請_944556677", Kind.CANCELLATION, "944556677",
        "a sales rep writing from a private @gmail.com address (sender not allowed)"),
    "order_multi_units": SampleInfo(
        "USEN SPOT 器材発注依頼_987650123", Kind.EQUIPMENT_ORDER, "987650123",
        "hotel, SPOT Plus, 備考 親1台、子2台"),
    "termination": SampleInfo(
        "USEN SPOT 解約申請_910987654", Kind.TERMINATION, "910987654",
        "termination with the encrypted termination form"),
    "order_no_code": SampleInfo(
        "USEN SPOT 器材発注依頼", Kind.EQUIPMENT_ORDER, None,
        "equipment order without a customer code in the subject (remand)"),
    "router_not_removed": SampleInfo(
        "USEN SPOT ルーター未撤去_909876543", Kind.ROUTER_NOT_REMOVED, "909876543",
        "router not collected, with 理由"),
    "order_resubmission": SampleInfo(
        "RE: 【差戻】USEN SPOT 器材発注依頼_976543210", Kind.EQUIPMENT_ORDER, "976543210",
        "the branch's answer to yesterday's remand, quoting it with '>'"),
    "relocation": SampleInfo(
        "USEN SPOT 移設依頼_998765432", Kind.RELOCATION, "998765432",
        "relocation (移設先, 移設先回線種別) from an iPhone, UTF-8 base64"),
    "order_8digit": SampleInfo(
        "USEN SPOT 器材発注依頼_98877665", Kind.EQUIPMENT_ORDER, "98877665",
        "customer code of 8 digits (remand)"),
    "registration_notice": SampleInfo(
        "USEN SPOT 登録通知書再発送依頼_955443322", Kind.REGISTRATION_NOTICE, "955443322",
        "the shop asked for the registration notice again (no kind word; its code anywhere in the subject)"),
    "termination_withdrawal": SampleInfo(
        "USEN SPOT 解約キャンセル依頼_945612378", Kind.TERMINATION_WITHDRAWAL, "945612378",
        "withdrawal of a termination"),
    "order_no_pdf": SampleInfo(
        "USEN SPOT 器材発注依頼_943215678", Kind.EQUIPMENT_ORDER, "943215678",
        "equipment order that says the form is attached, but it is not (remand)"),
    "unknown_subject": SampleInfo(
        "USEN SPOT ルーターの設置場所について（ご相談）", Kind.UNKNOWN, None,
        "a question from a branch: no kind matches (held)"),
}


# ---- low-level helpers -------------------------------------------------------------------------


def _h(*parts: object) -> bytes:
    return hashlib.sha512("|".join(map(str, parts)).encode()).digest()  # 64 bytes


def encoded_words(text: str, charset: str, codec: str | None = None, maxraw: int = 36) -> str:
    """RFC 2047 B-encoded words for `text`, each word self-contained (≤ maxraw bytes of text)."""
    codec = codec or charset
    chunks: list[str] = []
    chunk = ""
    for ch in text:
        if chunk and len((chunk + ch).encode(codec)) > maxraw:
            chunks.append(chunk)
            chunk = ch
        else:
            chunk += ch
    chunks.append(chunk)
    return " ".join(
        f"=?{charset}?B?{base64.b64encode(c.encode(codec)).decode('ascii')}?=" for c in chunks
    )


def _addr(person_or_pair: Person | tuple[str, str], charset: str, codec: str | None = None) -> str:
    if isinstance(person_or_pair, Person):
        name, addr = person_or_pair.name, person_or_pair.addr
    else:
        name, addr = person_or_pair
    return f"{encoded_words(name, charset, codec)} <{addr}>" if name else f"<{addr}>"


def _month_end(d: date, months_ahead: int) -> date:
    y, m = divmod(d.month - 1 + months_ahead, 12)
    year, month = d.year + y, m + 1
    return date(year, month, calendar.monthrange(year, month)[1])


def _jdate(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _outlook_msgid(key: bytes) -> str:
    return f"<000001dc{key[0:2].hex()}${key[2:6].hex()}${key[6:10].hex()}$@usen.co.jp>"


def _uuid_like(key: bytes) -> str:
    x = key[:16].hex().upper()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


def _signature(p: Person, style: int = 0) -> str:
    company = "㈱USEN" if style == 2 else "株式会社USEN"
    rule = {0: "━" * 24, 1: "-" * 40, 2: "*" * 36}[style]
    return "\n".join([
        rule,
        f"{company} {p.branch} {p.dept}",
        p.name,
        f"TEL：{p.tel}",
        f"Mail：{p.addr}",
        rule,
    ])


def _items(pairs: Sequence[tuple[str, str]], sep: str = "：") -> str:
    return "\n".join(f"{k}{sep}{v}" for k, v in pairs)


# ---- PDFs --------------------------------------------------------------------------------------


# The application form attached to each order: (layout, producer, the form's values beyond
# sample_application's defaults), consistent with the mail's body.
_FORMS: dict[str, tuple[str, str, dict[str, object]]] = {
    "988776654": ("excel_grid", "reportlab", dict(
        contractor_kana="カブシキガイシャ ソレイユ", contractor_name="株式会社ソレイユ",
        contractor_address="150-0043 東京都渋谷区道玄坂1丁目12番1号 渋谷マークシティウエスト22F",
        contractor_phone="03-6416-2201",
        shop_kana="カフェ ド ソレイユ シブヤテン", shop_name="カフェ・ド・ソレイユ 渋谷店",
        shop_address="150-0042 東京都渋谷区宇田川町33番6号 渋谷宇田川町ビル1F", shop_phone="03-6416-2205",
        line_kind="フレッツ光ネクスト", line_type="マンション", opening_check="開通通知書",
        mail_addresses=("soleil-shibuya@uspot.jp",), contact_name="日向 陽子", plus=False,
        ssid="Soleil_Free_Wi-Fi", tourist=False)),
    "988123456": ("word_stacked", "fpdf2", dict(
        contractor_kana="カブシキガイシャ ルミエール", contractor_name="株式会社ルミエール",
        contractor_address="107-0062 東京都港区南青山5丁目6番24号 南青山ステアーズ4F",
        contractor_phone="03-5778-6610",
        shop_kana="ビヨウシツ ルミエール オモテサンドウテン", shop_name="美容室 ルミエール 表参道店",
        shop_address="150-0001 東京都渋谷区神宮前4丁目12番10号 表参道ヒルズ同潤館2F",
        shop_phone="03-5778-6611",
        line_kind="Bフレッツ", line_type="マンション", opening_check="116へ確認",
        mail_addresses=("lumiere-omotesando@uspot.jp", "lumiere-yoyaku@uspot.jp"),
        contact_name="白石 真理", plus=False, ssid="LUMIERE_GUEST", tourist=False)),
    "965432107": ("browser_chosen_only", "fpdf2", dict(
        contractor_kana="イチバンボシ カブシキガイシャ", contractor_name="一番星株式会社",
        contractor_address="170-0013 東京都豊島区東池袋1丁目25番8号 タカセビル6F",
        contractor_phone="03-5953-1180",
        shop_kana="ラーメン イチバンボシ イケブクロヒガシグチテン", shop_name="ラーメン 一番星 池袋東口店",
        shop_address="170-0013 東京都豊島区東池袋1丁目12番5号 第一宮池ビル1F", shop_phone="03-5953-1181",
        line_kind="フレッツ光ネクスト", line_type="ファミリー", opening_check="NTT請求書(裏面)",
        mail_addresses=("ichibanboshi-ikebukuro@uspot.jp",), contact_name="星野 拓海", plus=False,
        ssid="ICHIBANBOSHI_FREE", tourist=True)),
    "987650123": ("acroform", "reportlab", dict(
        contractor_kana="カブシキガイシャ ベイサイドホテルズ", contractor_name="株式会社ベイサイドホテルズ",
        contractor_address="220-0012 神奈川県横浜市西区みなとみらい2丁目3番1号 クイーンズタワーA 18F",
        contractor_phone="045-682-3300",
        shop_kana="ホテル ベイサイド ヨコハマ", shop_name="ホテル ベイサイド横浜",
        shop_address="231-0023 神奈川県横浜市中区山下町25番地 ベイサイドホテル本館",
        shop_phone="045-682-3311",
        line_kind="Bフレッツ", line_type="ファミリー", opening_check="開通通知書",
        mail_addresses=("bayside-yokohama@uspot.jp", "bayside-front@uspot.jp", "bayside-guest@uspot.jp"),
        contact_name="港 健司", plus=True, ssid="BAYSIDE_YOKOHAMA_GUEST", tourist=True,
        remarks="親1台、子2台（2F・3F客室フロアに子機設置）")),
    "954320018": ("label_below", "reportlab", dict(
        contractor_kana="タイヨウショクヒン カブシキガイシャ", contractor_name="たいよう食品株式会社",
        contractor_address="530-0001 大阪府大阪市北区梅田1丁目3番1号 大阪駅前第1ビル9F",
        contractor_phone="06-6341-2280",
        shop_kana="ヤキニク タイヨウ ウメダテン", shop_name="焼肉 たいよう 梅田店",
        shop_address="530-0027 大阪府大阪市北区堂山町5番9号 扇会館ビル1F", shop_phone="06-6341-2281",
        line_kind="フレッツ光ネクスト", line_type=None, opening_check="116へ確認",
        mail_addresses=("taiyou-umeda@uspot.jp", "taiyou-yoyaku@uspot.jp"), contact_name="大洋 一樹",
        plus=False, ssid="TAIYOU_UMEDA", tourist=False)),
    "976543210": ("acroform_split", "fpdf2", dict(
        contractor_kana="ハナマル ユウゲンガイシャ", contractor_name="はなまる有限会社",
        contractor_address="160-0022 東京都新宿区新宿3丁目1番24号 京王新宿三丁目ビル7F",
        contractor_phone="03-3354-8870",
        shop_kana="イザカヤ ハナマル シンジュクサンチョウメテン", shop_name="居酒屋 はなまる 新宿三丁目店",
        shop_address="160-0022 東京都新宿区新宿3丁目11番10号 新宿ミラザビルB1F", shop_phone="03-3354-8871",
        line_kind="Bフレッツ", line_type="マンション", opening_check="NTT請求書(裏面)",  # fixed after the remand
        mail_addresses=("hanamaru-shinjuku@uspot.jp",), contact_name="花田 誠", plus=False,
        ssid="hanamaru_wifi", tourist=False)),
    "98877665": ("excel_grid", "fpdf2", dict(
        contractor_kana="ミツモリ ミズキ", contractor_name="三森 瑞希",
        contractor_address="810-0041 福岡県福岡市中央区大名2丁目1番35号 大名ガーデンシティ・レジデンス1204",
        contractor_phone="090-4512-7789",
        shop_kana="ネイルサロン ミモザ テンジンテン", shop_name="ネイルサロン ミモザ 天神店",
        shop_address="810-0001 福岡県福岡市中央区天神2丁目5番28号 天神西通りビル3F", shop_phone="092-713-4456",
        line_kind="フレッツ光ネクスト", line_type="マンション", opening_check="開通通知書",
        mail_addresses=("mimosa-tenjin@uspot.jp",), contact_name="三森 瑞希", plus=False,
        ssid="Mimosa_Nail_WiFi", tourist=False)),
}

# The termination form attached to each termination: (layout, producer, shop name, reason)
_TERMINATIONS: dict[str, tuple[str, str, str, str]] = {
    "910987654": ("table", "reportlab", "スポーツバー ゴール 渋谷店", "閉店のため"),
}


@functools.lru_cache(maxsize=64)
def _application_form(code: str) -> bytes:
    """The sample's application form for `code` (cached: AES draws random salts)."""
    from demo.forms import application_pdf, sample_application

    layout, producer, values = _FORMS.get(code, ("excel_grid", "reportlab", {}))
    return application_pdf(sample_application(code, **values), layout=layout, producer=producer,
                           encryption="aes256", password=PDF_PASSWORD)


@functools.lru_cache(maxsize=64)
def _termination_form(code: str, end: date) -> bytes:
    """The sample's termination form for `code`, 解約日 `end` (cached like the applications)."""
    from demo.forms import termination_pdf
    from mailbot.forms.model import TerminationForm

    layout, producer, shop, reason = _TERMINATIONS.get(code, ("table", "reportlab", "", ""))
    form = TerminationForm(customer_code=code, termination_date=end, shop_name=shop or None,
                           reason=reason or None)
    return termination_pdf(form, layout=layout, producer=producer, encryption="aes256",
                           password=PDF_PASSWORD)


# ---- message builders --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Att:
    filename: str
    data: bytes
    maintype: str = "application"
    subtype: str = "pdf"


def _text_part(subtype: str, text: str, label: str, codec: str, cte: str) -> Message:
    part = MIMENonMultipart("text", subtype, charset=label)
    del part["MIME-Version"]
    if cte == "quoted-printable":
        payload = quopri.encodestring(text.encode(codec)).decode("ascii")
    elif cte == "base64":
        payload = base64.encodebytes(text.replace("\n", "\r\n").encode(codec)).decode("ascii")
    else:  # 7bit: ISO-2022-JP is 7-bit by construction
        payload = text.encode(codec).decode("ascii")
    part.set_payload(payload)
    part["Content-Transfer-Encoding"] = cte
    return part


def _outlook_html(text: str, label: str) -> str:
    paras = []
    for line in text.split("\n"):
        body = html.escape(line).replace("  ", " &nbsp;") if line else "<o:p>&nbsp;</o:p>"
        paras.append(f"<p class=MsoNormal>{body}<o:p></o:p></p>")
    return (
        '<html xmlns:v="urn:schemas-microsoft-com:vml" '
        'xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:w="urn:schemas-microsoft-com:office:word" '
        'xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" '
        'xmlns="http://www.w3.org/TR/REC-html40">'
        f'<head><meta http-equiv=Content-Type content="text/html; charset={label}">'
        '<meta name=Generator content="Microsoft Word 15 (filtered medium)">'
        "<style><!--\n/* Font Definitions */\n"
        '@font-face\n\t{font-family:"ＭＳ ゴシック";}\n'
        "p.MsoNormal, li.MsoNormal, div.MsoNormal\n"
        '\t{margin:0mm;\n\ttext-align:justify;\n\ttext-justify:inter-ideograph;\n'
        '\tfont-size:10.5pt;\n\tfont-family:"游ゴシック",sans-serif;}\n'
        "--></style></head>\n"
        '<body lang=JA link="#0563C1" vlink="#954F72" '
        "style='word-wrap:break-word;text-justify-trim:punctuation'>"
        "<div class=WordSection1>\n" + "\n".join(paras) + "\n</div></body></html>\n"
    )


def _attachment_part(att: _Att, header_charset: str, header_codec: str) -> Message:
    # Outlook writes the name RFC 2047-encoded in Content-Type (non-standard but universal)
    # and, here, the filename RFC 2231-encoded in Content-Disposition.
    part = MIMEBase(att.maintype, att.subtype, name=encoded_words(att.filename, header_charset, header_codec))
    del part["MIME-Version"]
    part.set_payload(base64.encodebytes(att.data).decode("ascii"))
    part["Content-Transfer-Encoding"] = "base64"
    part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", att.filename))
    return part


def _reorder(msg: Message, headers: Sequence[tuple[str, str]]) -> None:
    """Put the MIME headers where Outlook writes them: after the envelope headers."""
    ctype = msg["Content-Type"]
    cte = msg["Content-Transfer-Encoding"]
    for name in ("Content-Type", "MIME-Version", "Content-Transfer-Encoding"):
        del msg[name]
    for name, value in headers:
        if name == "MIME-Version":
            msg["MIME-Version"] = "1.0"
            msg["Content-Type"] = ctype
            if cte:
                msg["Content-Transfer-Encoding"] = cte
        else:
            msg[name] = value


def _outlook(
    key: bytes,
    *,
    sender: Person,
    to: Sequence[Person | tuple[str, str]],
    cc: Sequence[Person | tuple[str, str]] = (),
    subject: str,
    text: str,
    sent: datetime,
    charset: str = "iso-2022-jp",
    attachments: Sequence[_Att] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    extra: Sequence[tuple[str, str]] = (),
    html_part: bool = True,
    mailer: str = "Microsoft Outlook 16.0",
) -> bytes:
    """A mail as Outlook 16 for Windows writes it (via SMTP), in ISO-2022-JP or Shift_JIS."""
    if charset == "iso-2022-jp":
        codec, plain_cte, html_cte = "iso-2022-jp", "7bit", "quoted-printable"
    else:  # Outlook set to Shift_JIS: CP932 bytes, base64
        codec, plain_cte, html_cte = "cp932", "base64", "base64"
    label = charset
    stamp = key[10:12].hex().upper() + "." + key[12:16].hex().upper()
    plain = _text_part("plain", text, label, codec, plain_cte)
    if html_part:
        alt = MIMEMultipart("alternative", boundary=f"----=_NextPart_001_0002_01DC{stamp}")
        del alt["MIME-Version"]
        alt.attach(plain)
        alt.attach(_text_part("html", _outlook_html(text, label), label, codec, html_cte))
        body: Message = alt
    else:
        body = plain
    if attachments:
        top: Message = MIMEMultipart("mixed", boundary=f"----=_NextPart_000_0001_01DC{stamp}")
        top.attach(body)
        for att in attachments:
            top.attach(_attachment_part(att, charset, codec))
    else:
        top = body
    if top.is_multipart():
        top.preamble = "This is a multipart message in MIME format."
    headers: list[tuple[str, str]] = [
        ("From", _addr(sender, charset, codec)),
        ("To", ", ".join(_addr(a, charset, codec) for a in to)),
    ]
    if cc:
        headers.append(("Cc", ", ".join(_addr(a, charset, codec) for a in cc)))
    headers += [
        ("References", " ".join(references)) if references else ("", ""),
        ("In-Reply-To", in_reply_to) if in_reply_to else ("", ""),
        ("Subject", encoded_words(subject, charset, codec)),
        ("Date", format_datetime(sent)),
        ("Message-ID", _outlook_msgid(key)),
        ("MIME-Version", "1.0"),
        ("X-Mailer", mailer),
        ("Thread-Index", base64.b64encode(b"\x01\xdc" + key[16:36]).decode("ascii")),
        *extra,
        ("Content-Language", "ja"),
    ]
    _reorder(top, [(n, v) for n, v in headers if n])
    return top.as_bytes(policy=compat32.clone(linesep="\r\n"))


def _fix_boundaries(msg: EmailMessage, key: bytes, fmt: Callable[[bytes, int], str]) -> None:
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(fmt(key, i))


def _utf8_mail(
    key: bytes,
    *,
    sender: tuple[str, str],
    to: Sequence[tuple[str, str]],
    cc: Sequence[tuple[str, str]] = (),
    subject: str,
    text: str,
    html_text: str | None,
    sent: datetime,
    message_id: str,
    headers: Sequence[tuple[str, str]] = (),
    html_cte: str = "base64",
    boundary: Callable[[bytes, int], str],
) -> bytes:
    """A UTF-8 mail (Outlook for Mac, iPhone, Gmail) built with EmailMessage + policy SMTP."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(sender[0], addr_spec=sender[1])
    msg["To"] = [Address(n, addr_spec=a) for n, a in to]
    if cc:
        msg["Cc"] = [Address(n, addr_spec=a) for n, a in cc]
    msg["Subject"] = subject
    msg["Date"] = sent
    msg["Message-ID"] = message_id
    for name, value in headers:
        msg[name] = value
    msg.set_content(text, charset="utf-8", cte="base64")
    if html_text is not None:
        msg.add_alternative(html_text, subtype="html", charset="utf-8", cte=html_cte)
    _fix_boundaries(msg, key, boundary)
    return msg.as_bytes()


def _trace(*, envelope_from: str, received: datetime, key: bytes, relay: str | None,
           auth: str | None) -> bytes:
    """What the company MX and the delivery agent put on top of every incoming mail."""
    queue_id = base64.b32encode(key[40:50]).decode("ascii").rstrip("=")[:15]
    lines = [f"Return-Path: <{envelope_from}>", f"Delivered-To: {OFFICE_ADDR}"]
    stamp = format_datetime(received) + " (JST)"
    if relay:
        lines.append(
            f"Received: from {relay}\r\n\tby {MX} (Postfix) with ESMTPS id {queue_id}\r\n"
            f"\tfor <{OFFICE_ADDR}>; {stamp}"
        )
    else:
        lines.append(f"Received: by {MX} (Postfix)\r\n\tid {queue_id}; {stamp}")
    if auth:
        lines.append(f"Authentication-Results: {MX};\r\n\t{auth}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _internal_trace(sender: Person, received: datetime, key: bytes) -> bytes:
    return _trace(
        envelope_from=sender.addr, received=received, key=key,
        relay="mail02.usen.co.jp (mail02.usen.co.jp [10.20.1.12])",
        auth="spf=pass smtp.mailfrom=usen.co.jp;\r\n\tdkim=pass header.d=usen.co.jp",
    )


# ---- the samples -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Built:
    name: str
    data: bytes
    received: datetime


OPENING = "事務センター\nご担当者様\n\nお疲れ様です。\n"


def _order_items(code: str, shop: str, link: str, plus: str, branch: str, person: str,
                 sep: str = "：", remarks: str | None = None) -> str:
    pairs = [
        ("顧客CD", code), ("店舗名", shop), ("リンク品使用", link), ("SPOT Plus該当", plus),
        ("送付支店名", branch), ("担当者名", person),
    ]
    if remarks:
        pairs.append(("備考", remarks))
    return _items(pairs, sep)


@dataclass(frozen=True)
class _Morning:
    """What every sample mail of one morning is made from."""

    now: datetime
    application_pdf: PdfMaker
    termination_pdf: PdfMaker

    OFFICE: ClassVar[tuple[str, str]] = (OFFICE_NAME, OFFICE_ADDR)
    OFFICE_BARE: ClassVar[tuple[str, str]] = ("", OFFICE_ADDR)

    @property
    def today(self) -> date:
        return self.now.date()

    def when(self, minutes: int, name: str) -> tuple[datetime, datetime, bytes]:
        """(sent, received, the mail's random-looking but fixed key), `minutes` before now."""
        key = _h("mailbot-sample", name, self.now.isoformat())
        sent = (self.now - timedelta(minutes=minutes, seconds=key[0] % 50 + 5)).replace(microsecond=0)
        return sent, sent + timedelta(seconds=2 + key[1] % 9), key

    def app(self, code: str) -> _Att:
        return _Att(f"申込書_{code}.pdf", self.application_pdf(code))


def _sample_auto_reply(m: _Morning) -> _Built:
    """Out-of-office from a branch manager, answering yesterday's acceptance reply."""
    sent, rcvd, key = m.when(215, "auto_reply")
    bot_reply = f"<mailbot.{(m.today - timedelta(days=1)).strftime('%Y%m%d')}.{key[20:26].hex()}@usen.co.jp>"
    until = m.today + timedelta(days=2)
    text = (
        "お疲れ様です。渋谷支店の田中です。\n\n"
        f"誠に勝手ながら、{_jdate(m.today)}から{_jdate(until)}まで休暇のため不在にしております。\n"
        "期間中はメールを確認できませんので、お急ぎの場合は渋谷支店（03-5458-2100）まで\n"
        "ご連絡ください。\n\n"
        "よろしくお願いいたします。\n"
    )
    data = _outlook(
        key, sender=TANAKA, to=[m.OFFICE], subject=SAMPLES["auto_reply"].subject, text=text,
        sent=sent, in_reply_to=bot_reply, references=[bot_reply], html_part=False,
        extra=[("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")],
    )
    return _Built("auto_reply", _internal_trace(TANAKA, rcvd, key) + data, rcvd)


def _sample_bounce(m: _Morning) -> _Built:
    """Bounce of a reply to someone who left."""
    sent, rcvd, key = m.when(212, "bounce")
    return _Built("bounce", _bounce(key, sent, rcvd), rcvd)


def _sample_order_shibuya(m: _Morning) -> _Built:
    """A complete equipment order."""
    sent, rcvd, key = m.when(198, "order_shibuya")
    code = "988776654"
    text = (
        OPENING + "渋谷支店の鈴木です。\n\n"
        "下記店舗のUSEN SPOT申込書を送付いたします。\n"
        "器材の発注をお願いいたします。\n\n"
        + _order_items(code, "カフェ・ド・ソレイユ 渋谷店", "無", "無", "渋谷支店", "鈴木 一郎")
        + "\n\n※申込書PDFには所定のパスワードを設定しております。\n\n"
        "以上、よろしくお願いいたします。\n\n" + _signature(SUZUKI) + "\n"
    )
    data = _outlook(key, sender=SUZUKI, to=[m.OFFICE_BARE], cc=[TANAKA],
                    subject=SAMPLES["order_shibuya"].subject, text=text, sent=sent,
                    attachments=[m.app(code)])
    return _Built("order_shibuya", _internal_trace(SUZUKI, rcvd, key) + data, rcvd)


def _sample_cancellation(m: _Morning) -> _Built:
    """Cancellation, Outlook set to Shift_JIS."""
    sent, rcvd, key = m.when(185, "cancellation")
    code = "921098765"
    text = (
        OPENING + "吉祥寺支店の石井です。\n\n"
        "先日器材発注をお願いした下記店舗ですが、お客様のご都合（開店延期）により\n"
        "申込がキャンセルとなりました。\n"
        "お手数ですが、キャンセルのお手続きをお願いいたします。\n\n"
        + _items([("顧客CD", code), ("店舗名", "珈琲館 ひだまり 吉祥寺店"),
                  ("キャンセル理由", "開店延期のため")])
        + "\n\nよろしくお願いいたします。\n\n" + _signature(ISHII, style=2) + "\n"
    )
    data = _outlook(key, sender=ISHII, to=[m.OFFICE], cc=[MAEDA],
                    subject=SAMPLES["cancellation"].subject, text=text, sent=sent,
                    charset="Shift_JIS")
    return _Built("cancellation", _internal_trace(ISHII, rcvd, key) + data, rcvd)


def _sample_order_fullwidth(m: _Morning) -> _Built:
    """Full-width subject, Shift_JIS, items separated by full-width spaces."""
    sent, rcvd, key = m.when(171, "order_fullwidth")
    code = "988123456"
    text = (
        "事務センター　ご担当者様\n\nお疲れ様です。\n青山支店　内田です。\n\n"
        "下記の器材発注をお願いいたします。\n申込書を添付いたします。\n\n"
        + _order_items(code, "美容室 ルミエール 表参道店", "有", "無", "青山支店", "内田", sep="　")
        + "\n\nよろしくお願いいたします。\n\n" + _signature(UCHIDA, style=1) + "\n"
    )
    data = _outlook(key, sender=UCHIDA, to=[m.OFFICE], cc=[TAKAHASHI],
                    subject=SAMPLES["order_fullwidth"].subject, text=text, sent=sent,
                    charset="Shift_JIS", attachments=[m.app(code)])
    return _Built("order_fullwidth", _internal_trace(UCHIDA, rcvd, key) + data, rcvd)


def _sample_contract_change(m: _Morning) -> _Built:
    """Contract change from Outlook for Mac (UTF-8 base64)."""
    sent, rcvd, key = m.when(160, "contract_change")
    code = "932104567"
    change_day = _month_end(m.today, 0) + timedelta(days=1)
    text = (
        OPENING + "新宿支店総務の佐藤です。\n\n"
        "下記のとおりお客様の契約内容に変更がありましたので、ご連絡いたします。\n\n"
        + _items([
            ("顧客CD", code),
            ("店舗名", "和食処 さくら 新宿東口店"),
            ("変更内容", "店舗名変更（旧：居酒屋 さくら 新宿東口店 → 新：和食処 さくら 新宿東口店）"),
            ("変更日", _jdate(change_day)),
        ])
        + "\n\nUNISの店舗名は変更済みです。\nよろしくお願いいたします。\n\n"
        + _signature(SATO) + "\n"
    )
    html_text = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
        '<body><div style="font-family:Aptos,sans-serif;font-size:12pt">'
        + "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in text.split("\n"))
        + "</div></body></html>"
    )
    data = _utf8_mail(
        key, sender=(SATO.name, SATO.addr), to=[m.OFFICE], cc=[(ITO.name, ITO.addr)],
        subject=SAMPLES["contract_change"].subject, text=text, html_text=html_text, sent=sent,
        message_id=f"<{_uuid_like(key)}@usen.co.jp>",
        headers=[
            ("Thread-Topic", SAMPLES["contract_change"].subject),
            ("Thread-Index", base64.b64encode(b"\x01\xdc" + key[16:36]).decode("ascii")),
            ("User-Agent", "Microsoft-MacOutlook/16.88.24081116"),
            ("Content-Language", "ja-JP"),
        ],
        html_cte="quoted-printable",
        boundary=lambda k, i: f"B_{int.from_bytes(k[20 + i:24 + i], 'big')}_{k[30:34].hex()}",
    )
    return _Built("contract_change", _internal_trace(SATO, rcvd, key) + data, rcvd)


def _sample_order_forwarded(m: _Morning) -> _Built:
    """Forwarded order: general affairs forwards the sales rep's mail."""
    sent, rcvd, key = m.when(149, "order_forwarded")
    code = "965432107"
    orig_sent = sent - timedelta(minutes=38)
    text = (
        OPENING + "池袋支店 総務の小川です。\n\n"
        "営業の清水より下記の依頼がありましたので転送いたします。\n"
        "申込書は添付のとおりです。\n"
        "よろしくお願いいたします。\n\n" + _signature(OGAWA) + "\n\n"
        f"差出人: {SHIMIZU_R.name} <{SHIMIZU_R.addr}> \n"
        f"送信日時: {orig_sent.year}年{orig_sent.month}月{orig_sent.day}日 "
        f"{orig_sent.hour}:{orig_sent.minute:02d}\n"
        f"宛先: {OGAWA.name} <{OGAWA.addr}>\n"
        f"件名: USEN SPOT 器材発注依頼_{code}\n\n"
        "小川さん\n\nお疲れ様です。清水です。\n"
        "下記の件、事務センターへの発注依頼をお願いできますでしょうか。\n\n"
        + _order_items(code, "ラーメン 一番星 池袋東口店", "有", "無", "池袋支店", "清水 亮")
        + "\n\nよろしくお願いします。\n\n" + _signature(SHIMIZU_R) + "\n"
    )
    data = _outlook(key, sender=OGAWA, to=[m.OFFICE], cc=[MORI],
                    subject=SAMPLES["order_forwarded"].subject, text=text, sent=sent,
                    attachments=[m.app(code)])
    return _Built("order_forwarded", _internal_trace(OGAWA, rcvd, key) + data, rcvd)


def _sample_outside_gmail(m: _Morning) -> _Built:
    """A sales rep writing from his private Gmail."""
    sent, rcvd, key = m.when(137, "outside_gmail")
    code = "944556677"
    gmail = ("石井 健", "ken.ishii.0815@gmail.com")
    text = (
        "事務センター ご担当者様\n\nお疲れ様です。吉祥寺支店の石井です。\n"
        "外出先のため、個人のアドレスから失礼いたします。\n\n"
        "下記店舗のキャンセルをお願いいたします。\n\n"
        + _items([("顧客CD", code), ("店舗名", "ダイニングバー ルナ 三鷹店")])
        + "\n\n帰社後に改めて会社のアドレスからもご連絡いたします。\n"
        "よろしくお願いいたします。\n\n石井\n"
    )
    gm_html = '<div dir="ltr">' + "".join(
        (html.escape(line) + "<br>") if line else "<div><br></div>" for line in text.split("\n")
    ) + "</div>\n"
    gm_id = base64.b64encode(key[20:50]).decode("ascii").replace("/", "_").replace("+", "-")
    gm_data = _utf8_mail(
        key, sender=gmail, to=[m.OFFICE_BARE], cc=[(MAEDA.name, MAEDA.addr)],
        subject=SAMPLES["outside_gmail"].subject, text=text, html_text=gm_html, sent=sent,
        message_id=f"<CA+{gm_id}@mail.gmail.com>",
        boundary=lambda k, i: f"0000000000{k[50 + i:56 + i].hex()}",
    )
    trace = _trace(
        envelope_from=gmail[1], received=rcvd, key=key,
        relay="mail-pj1-f47.google.com (mail-pj1-f47.google.com [209.85.216.47])",
        auth="spf=pass smtp.mailfrom=gmail.com;\r\n\tdkim=pass header.d=gmail.com",
    )
    return _Built("outside_gmail", trace + gm_data, rcvd)


def _sample_order_multi_units(m: _Morning) -> _Built:
    """Several routers: 親1台、子2台 in the remarks."""
    sent, rcvd, key = m.when(124, "order_multi_units")
    code = "987650123"
    text = (
        OPENING + "横浜支店の山本です。\n\n"
        "USEN SPOT Plusの申込書を送付します。\n"
        "客室フロアにも設置するため、複数台での発注となります。\n\n"
        + _order_items(code, "ホテル ベイサイド横浜", "無", "有", "横浜支店", "山本",
                       sep=" : ", remarks="親1台、子2台（2F・3F客室フロアに子機設置）")
        + "\n\nご確認のほど、よろしくお願いいたします。\n\n" + _signature(YAMAMOTO) + "\n"
    )
    data = _outlook(key, sender=YAMAMOTO, to=[m.OFFICE], cc=[NAKAMURA],
                    subject=SAMPLES["order_multi_units"].subject, text=text, sent=sent,
                    attachments=[m.app(code)])
    return _Built("order_multi_units", _internal_trace(YAMAMOTO, rcvd, key) + data, rcvd)


def _sample_termination(m: _Morning) -> _Built:
    """Termination with the termination form."""
    sent, rcvd, key = m.when(112, "termination")
    code = "910987654"
    end = _month_end(m.today, 1)
    text = (
        OPENING + "渋谷支店総務の岡田です。\n\n"
        "下記店舗のUSEN SPOT解約申請をお送りいたします。\n"
        "業務店受付センターより発行された解約申請書を添付いたします。\n\n"
        + _items([("顧客CD", code), ("店舗名", "スポーツバー ゴール 渋谷店"),
                  ("解約日", _jdate(end)), ("解約理由", "閉店のため")])
        + "\n\nUNISの解約予定登録は済んでおります。\nよろしくお願いいたします。\n\n"
        + _signature(OKADA) + "\n"
    )
    data = _outlook(key, sender=OKADA, to=[m.OFFICE], cc=[TANAKA],
                    subject=SAMPLES["termination"].subject, text=text, sent=sent,
                    attachments=[_Att(f"解約申請書_{code}.pdf", m.termination_pdf(code))])
    return _Built("termination", _internal_trace(OKADA, rcvd, key) + data, rcvd)


def _sample_order_no_code(m: _Morning) -> _Built:
    """Equipment order without the code in the subject."""
    sent, rcvd, key = m.when(101, "order_no_code")
    code = "954320018"
    text = (
        OPENING + "梅田支店の小林です。\n\n器材発注をお願いいたします。\n申込書を添付いたします。\n\n"
        + _order_items(code, "焼肉 たいよう 梅田店", "無", "無", "梅田支店", "小林 直樹")
        + "\n\nよろしくお願いいたします。\n\n" + _signature(KOBAYASHI) + "\n"
    )
    data = _outlook(key, sender=KOBAYASHI, to=[m.OFFICE], cc=[KATO],
                    subject=SAMPLES["order_no_code"].subject, text=text, sent=sent,
                    attachments=[m.app(code)])
    return _Built("order_no_code", _internal_trace(KOBAYASHI, rcvd, key) + data, rcvd)


def _sample_router_not_removed(m: _Morning) -> _Built:
    """Router not removed, with the reason."""
    sent, rcvd, key = m.when(90, "router_not_removed")
    code = "909876543"
    text = (
        OPENING + "難波支店 技術課の林です。\n\n"
        "解約済みの下記店舗について、Wi-Fiルーターが未撤去となっておりますのでご報告いたします。\n\n"
        + _items([
            ("顧客CD", code),
            ("店舗名", "居酒屋 まるや 難波店"),
            ("理由", "閉店後にオーナー様と連絡が取れず、店舗が施錠されたままのため撤去できておりません。"),
        ])
        + "\n\n引き続きオーナー様へ連絡を試み、回収でき次第ご連絡いたします。\n"
        "よろしくお願いいたします。\n\n" + _signature(HAYASHI, style=1) + "\n"
    )
    data = _outlook(key, sender=HAYASHI, to=[m.OFFICE], cc=[SHIMIZU_H],
                    subject=SAMPLES["router_not_removed"].subject, text=text, sent=sent)
    return _Built("router_not_removed", _internal_trace(HAYASHI, rcvd, key) + data, rcvd)


def _sample_order_resubmission(m: _Morning) -> _Built:
    """Resubmission after yesterday's remand, quoting it."""
    sent, rcvd, key = m.when(78, "order_resubmission")
    code = "976543210"
    y = m.now - timedelta(days=1)
    remand_id = f"<mailbot.{y.strftime('%Y%m%d')}.{key[20:26].hex()}@usen.co.jp>"
    orig_id = _outlook_msgid(_h("mailbot-sample", "order_resubmission-orig", m.now.isoformat()))
    quoted = "\n".join("> " + line if line else ">" for line in [
        f"{WATANABE.branch} {WATANABE.name} 様",
        "",
        "USEN SPOT 事務センターです。",
        "下記のご依頼に不備がありましたので差し戻します。",
        "修正のうえ、このメールに返信してください。",
        "",
        f"件名：USEN SPOT 器材発注依頼_{code}",
        "",
        "・申込書の「確認方法」が選択されていません。",
        "  開通通知書／NTT請求書(裏面)／116へ確認 のいずれかを選択してください。",
        "",
        "USEN SPOT 事務センター",
    ])
    text = (
        OPENING + "新宿支店の渡辺です。\n\n"
        "ご指摘ありがとうございます。\n"
        "申込書の確認方法に記入のうえ、再作成しましたので再送いたします。\n"
        "ご確認のほど、よろしくお願いいたします。\n\n"
        + _order_items(code, "居酒屋 はなまる 新宿三丁目店", "無", "無", "新宿支店", "渡辺 健太")
        + "\n\n" + _signature(WATANABE) + "\n\n"
        f"差出人: {OFFICE_NAME} <{OFFICE_ADDR}> \n"
        f"送信日時: {y.year}年{y.month}月{y.day}日 16:05\n"
        f"宛先: {WATANABE.name} <{WATANABE.addr}>\n"
        f"CC: {ITO.name} <{ITO.addr}>\n"
        f"件名: 【差戻】USEN SPOT 器材発注依頼_{code}\n\n" + quoted + "\n"
    )
    data = _outlook(key, sender=WATANABE, to=[m.OFFICE], cc=[ITO],
                    subject=SAMPLES["order_resubmission"].subject, text=text, sent=sent,
                    attachments=[m.app(code)], in_reply_to=remand_id,
                    references=[orig_id, remand_id])
    return _Built("order_resubmission", _internal_trace(WATANABE, rcvd, key) + data, rcvd)


def _sample_relocation(m: _Morning) -> _Built:
    """Relocation from an iPhone (UTF-8 base64, plain text only)."""
    sent, rcvd, key = m.when(66, "relocation")
    code = "998765432"
    move_day = _month_end(m.today, 0) + timedelta(days=10)
    text = (
        "事務センター ご担当者様\n\nお疲れ様です。横浜支店 技術課の近藤です。\n"
        "下記店舗の移設について連絡いたします。\n\n"
        + _items([
            ("顧客CD", code),
            ("店舗名", "カラオケ スター 川崎駅前店"),
            ("移設元", "神奈川県川崎市川崎区駅前本町11-2 川崎フロンティアビル3F"),
            ("移設先", "神奈川県川崎市川崎区砂子1-4-10 砂子ビル2F"),
            ("移設先回線種別", "フレッツ光ネクスト"),
            ("移設予定日", _jdate(move_day)),
        ])
        + "\n\n移設先の回線はお客様にて開通済みです。\nよろしくお願いいたします。\n\n"
        "近藤\n\niPhoneから送信\n"
    )
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(KONDO.name, addr_spec=KONDO.addr)
    msg["To"] = Address(OFFICE_NAME, addr_spec=OFFICE_ADDR)
    msg["Cc"] = Address(NAKAMURA.name, addr_spec=NAKAMURA.addr)
    msg["Subject"] = SAMPLES["relocation"].subject
    msg["Date"] = sent
    msg["Message-ID"] = f"<{_uuid_like(key)}@usen.co.jp>"
    msg["X-Mailer"] = "iPhone Mail (22G86)"
    msg.set_content(text, charset="utf-8", cte="base64")
    return _Built("relocation", _internal_trace(KONDO, rcvd, key) + msg.as_bytes(), rcvd)


def _sample_order_8digit(m: _Morning) -> _Built:
    """Customer code with 8 digits."""
    sent, rcvd, key = m.when(55, "order_8digit")
    code = "98877665"
    text = (
        OPENING + "福岡支店の吉田です。\n\n器材発注依頼をお送りいたします。\n\n"
        + _order_items(code, "ネイルサロン ミモザ 天神店", "無", "無", "福岡支店", "吉田")
        + "\n\nよろしくお願いいたします。\n\n" + _signature(YOSHIDA) + "\n"
    )
    data = _outlook(key, sender=YOSHIDA, to=[m.OFFICE], cc=[MATSUMOTO],
                    subject=SAMPLES["order_8digit"].subject, text=text, sent=sent,
                    attachments=[m.app(code)])
    return _Built("order_8digit", _internal_trace(YOSHIDA, rcvd, key) + data, rcvd)


def _sample_registration_notice(m: _Morning) -> _Built:
    """Registration notice (登録通知書) re-sending request."""
    sent, rcvd, key = m.when(43, "registration_notice")
    code = "955443322"
    text = (
        OPENING + "札幌支店総務の斎藤です。\n\n"
        "下記店舗の店長様より、登録通知書を紛失したため再発送してほしいとの\n"
        "ご依頼がありました。\n"
        "設置先住所への再発送をお願いできますでしょうか。\n\n"
        + _items([("顧客CD", code), ("店舗名", "カフェ ミルキーウェイ 札幌駅前店"),
                  ("依頼者", "店長 佐々木様"), ("送付先", "設置先住所")])
        + "\n\nよろしくお願いいたします。\n\n" + _signature(SAITO) + "\n"
    )
    data = _outlook(key, sender=SAITO, to=[m.OFFICE], cc=[YAMAGUCHI],
                    subject=SAMPLES["registration_notice"].subject, text=text, sent=sent)
    return _Built("registration_notice", _internal_trace(SAITO, rcvd, key) + data, rcvd)


def _sample_termination_withdrawal(m: _Morning) -> _Built:
    """Termination withdrawal."""
    sent, rcvd, key = m.when(31, "termination_withdrawal")
    code = "945612378"
    end = _month_end(m.today, 1)
    text = (
        OPENING + "梅田支店の小林です。\n\n"
        "先日解約申請をお送りした下記店舗について、お客様より継続利用のご意向を\n"
        "いただきましたので、解約のキャンセルをお願いいたします。\n\n"
        + _items([("顧客CD", code), ("店舗名", "お好み焼き 鉄板屋 梅田店"), ("解約日", _jdate(end))])
        + "\n\nUNISの解約予定は取り消し済みです。\nよろしくお願いいたします。\n\n"
        + _signature(KOBAYASHI) + "\n"
    )
    data = _outlook(key, sender=KOBAYASHI, to=[m.OFFICE], cc=[KATO],
                    subject=SAMPLES["termination_withdrawal"].subject, text=text, sent=sent)
    return _Built("termination_withdrawal", _internal_trace(KOBAYASHI, rcvd, key) + data, rcvd)


def _sample_order_no_pdf(m: _Morning) -> _Built:
    """Equipment order that forgot the attachment."""
    sent, rcvd, key = m.when(19, "order_no_pdf")
    code = "943215678"
    text = (
        OPENING + "名古屋支店の井上です。\n\n申込書を添付いたしますので、器材の発注をお願いいたします。\n\n"
        + _order_items(code, "ベーカリー こむぎ 栄店", "無", "有", "名古屋支店", "井上 拓也")
        + "\n\nよろしくお願いいたします。\n\n" + _signature(INOUE, style=1) + "\n"
    )
    data = _outlook(key, sender=INOUE, to=[m.OFFICE], cc=[KIMURA],
                    subject=SAMPLES["order_no_pdf"].subject, text=text, sent=sent)
    return _Built("order_no_pdf", _internal_trace(INOUE, rcvd, key) + data, rcvd)


def _sample_unknown_subject(m: _Morning) -> _Built:
    """A question no kind matches."""
    sent, rcvd, key = m.when(7, "unknown_subject")
    text = (
        OPENING + "福岡支店の吉田です。\n\n"
        "お客様より、ルーターを厨房の奥に設置したいとのご要望がありました。\n"
        "客席側まで電波が届くか心配されているのですが、子機の追加で対応可能でしょうか。\n"
        "ご教示いただけますと幸いです。\n\n"
        "よろしくお願いいたします。\n\n" + _signature(YOSHIDA) + "\n"
    )
    data = _outlook(key, sender=YOSHIDA, to=[m.OFFICE], cc=[MATSUMOTO],
                    subject=SAMPLES["unknown_subject"].subject, text=text, sent=sent)
    return _Built("unknown_subject", _internal_trace(YOSHIDA, rcvd, key) + data, rcvd)


# The morning's mails, oldest first: one producer per sample.
_PRODUCERS: tuple[Callable[[_Morning], _Built], ...] = (
    _sample_auto_reply,
    _sample_bounce,
    _sample_order_shibuya,
    _sample_cancellation,
    _sample_order_fullwidth,
    _sample_contract_change,
    _sample_order_forwarded,
    _sample_outside_gmail,
    _sample_order_multi_units,
    _sample_termination,
    _sample_order_no_code,
    _sample_router_not_removed,
    _sample_order_resubmission,
    _sample_relocation,
    _sample_order_8digit,
    _sample_registration_notice,
    _sample_termination_withdrawal,
    _sample_order_no_pdf,
    _sample_unknown_subject,
)


def _build(now: datetime, application_pdf: PdfMaker, termination_pdf: PdfMaker) -> list[_Built]:
    morning = _Morning(now, application_pdf, termination_pdf)
    return [produce(morning) for produce in _PRODUCERS]


def _bounce(key: bytes, sent: datetime, received: datetime) -> bytes:
    queue_id = base64.b32encode(key[40:50]).decode("ascii").rstrip("=")[:15]
    boundary = f"{queue_id}.{int(sent.timestamp())}/{MX}"
    rcpt = "t-nishida@usen.co.jp"
    bot_sent = sent - timedelta(seconds=3)
    bot_subject = "【受付】USEN SPOT 器材発注依頼_912345678"
    bot_id = f"<mailbot.{bot_sent.strftime('%Y%m%d')}.{key[20:26].hex()}@usen.co.jp>"
    stamp = format_datetime(sent) + " (JST)"
    folded_subject = encoded_words(bot_subject, "utf-8").replace(" =?", "\r\n =?")
    headers = [
        "Return-Path: <>",
        f"Delivered-To: {OFFICE_ADDR}",
        f"Received: by {MX} (Postfix)\r\n\tid {queue_id}; {format_datetime(received)} (JST)",
        f"Date: {stamp}",
        f"From: MAILER-DAEMON@{MX} (Mail Delivery System)",
        "Subject: Undelivered Mail Returned to Sender",
        f"To: {OFFICE_ADDR}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
        f"Message-Id: <{sent.astimezone(timezone.utc).strftime('%Y%m%d%H%M%S')}.{queue_id}@{MX}>",
    ]
    notice = (
        f"This is the mail system at host {MX}.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n\r\n"
        "For further assistance, please send mail to postmaster.\r\n\r\n"
        "If you do so, please include this problem report. You can\r\n"
        "delete your own text from the attached returned message.\r\n\r\n"
        "                   The mail system\r\n\r\n"
        f"<{rcpt}>: host mbox01.usen.co.jp[10.20.1.21] said: 550 5.1.1\r\n"
        f"    <{rcpt}>: Recipient address rejected: User unknown in local\r\n"
        "    recipient table (in reply to RCPT TO command)\r\n"
    )
    status = (
        f"Reporting-MTA: dns; {MX}\r\n"
        f"X-Postfix-Queue-ID: {queue_id}\r\n"
        f"X-Postfix-Sender: rfc822; {OFFICE_ADDR}\r\n"
        f"Arrival-Date: {format_datetime(bot_sent)} (JST)\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Remote-MTA: dns; mbox01.usen.co.jp\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected:\r\n"
        "    User unknown in local recipient table\r\n"
    )
    original = (
        f"Return-Path: <{OFFICE_ADDR}>\r\n"
        f"Received: from localhost (localhost [127.0.0.1])\r\n\tby {MX} (Postfix) with ESMTP id "
        f"{queue_id}\r\n\tfor <{rcpt}>; {format_datetime(bot_sent)} (JST)\r\n"
        f"From: {encoded_words(OFFICE_NAME, 'utf-8')} <{OFFICE_ADDR}>\r\n"
        f"To: {encoded_words('西田 拓海', 'utf-8')} <{rcpt}>\r\n"
        f"Subject: {folded_subject}\r\n"
        f"Date: {format_datetime(bot_sent)}\r\n"
        f"Message-ID: {bot_id}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
    )
    body = (
        "This is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + notice + "\r\n"
        f"--{boundary}\r\nContent-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n" + status + "\r\n"
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n" + original + "\r\n"
        f"--{boundary}--\r\n"
    )
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")


def _as_jst(now: datetime) -> datetime:
    return now.replace(tzinfo=JST) if now.utcoffset() is None else now.astimezone(JST)


def _built(now: datetime, application_pdf: PdfMaker | None,
           termination_pdf: PdfMaker | None) -> list[_Built]:
    now = _as_jst(now)
    if termination_pdf is None:
        end = _month_end(now.date(), 1)  # the 解約日 the termination sample's body states

        def termination_pdf(code: str) -> bytes:
            return _termination_form(code, end)

    return _build(now, application_pdf or _application_form, termination_pdf)


def sample_mails(
    now: datetime,
    application_pdf: PdfMaker | None = None,
    termination_pdf: PdfMaker | None = None,
) -> list[tuple[str, bytes]]:
    """(name, raw RFC 5322 bytes with CRLF) for a morning in the mailbox, oldest first.

    `now` may be naive (taken as Asia/Tokyo).  `application_pdf(code)` / `termination_pdf(code)`
    supply the attached forms; by default forms from `demo.forms` matching each body,
    encrypted AES-256 with user password `uspot`.
    """
    return [(b.name, b.data) for b in _built(now, application_pdf, termination_pdf)]


def seed_maildir(
    mailbox: MaildirMailbox,
    now: datetime,
    *,
    folder: str = "INBOX",
    application_pdf: PdfMaker | None = None,
    termination_pdf: PdfMaker | None = None,
) -> list[str]:
    """Append the samples to `folder`, oldest first, with internaldate = their delivery time.
    Returns the sample names in the order appended (so UIDs follow it)."""
    built = _built(now, application_pdf, termination_pdf)
    for b in built:
        mailbox.append(folder, b.data, internaldate=b.received)
    return [b.name for b in built]


# ---- reference data matching the samples -------------------------------------------------------

_EXTRACT_HEADER = ("顧客CD", "顧客名", "店舗名", "管轄支店名", "契約品目CD", "契約状態", "受注日", "解約日",
                   "シリアルNo", "獲得区分", "回線種別", "回線タイプ", "設置先住所", "契約先住所", "請求先住所",
                   "営業担当者", "抽出日時")  # 営業担当者: a column the bot does not use


def _extract_rows(today: date) -> list[tuple[str, ...]]:
    """The USEN SPOT lines of every customer the samples write about, as UNIS would show them
    that morning: shops as the forms name them (spaced as UNIS spaces them), the orders of the
    day 受注, older contracts 確定, the termination and the withdrawal 解約予定."""
    def weekday_before(days: int) -> date:
        d = today - timedelta(days=days)
        while d.weekday() >= 5:
            d -= timedelta(days=1)
        return d

    def form_line(code: str, branch: str, rep: str, items: Sequence[str] = ("9603023",),
                  status: str = "受注", ordered: date = today) -> list[tuple[str, ...]]:
        v = _FORMS[code][2]
        shop = str(v["shop_name"]).replace(" ", "\u3000")  # UNIS pads with full-width spaces
        return [(code, str(v["contractor_name"]), shop, branch, item, status, f"{ordered:%Y/%m/%d}", "", "",
                 "新規", str(v["line_kind"]), str(v["line_type"] or ""), str(v["shop_address"]),
                 str(v["contractor_address"]), str(v["contractor_address"]), rep) for item in items]

    def contract(code: str, name: str, shop: str, branch: str, status: str, ordered: date,
                 ended: date | None = None, serial: str = "", item: str = "9603023", address: str = "",
                 kind: str = "フレッツ光ネクスト", ltype: str = "") -> tuple[str, ...]:
        return (code, name, shop, branch, item, status, f"{ordered:%Y/%m/%d}",
                f"{ended:%Y/%m/%d}" if ended else "", serial, "新規", kind, ltype, address, address, address, "")

    end = _month_end(today, 1)
    return [
        *form_line("988776654", "渋谷支店", "鈴木 一郎"),
        *form_line("988123456", "青山支店", "内田 美穂"),
        *form_line("965432107", "池袋支店", "清水 亮"),
        # SPOT Plus, 親1台 (FGN-1000) and 子2台 (CR-1)
        *form_line("987650123", "横浜支店", "山本 翔太", items=("9603030", "9603040", "9603040")),
        *form_line("954320018", "梅田支店", "小林 直樹"),
        *form_line("976543210", "新宿支店", "渡辺 健太", ordered=weekday_before(1)),
        contract("943215678", "有限会社こむぎ", "ベーカリー　こむぎ　栄店", "名古屋支店", "受注", today,
                 item="9603050", address="愛知県名古屋市中区栄3丁目5番12号"),
        # ordered a few days ago: the cancellation comes after the order's day
        contract("921098765", "株式会社ひだまり", "珈琲館　ひだまり　吉祥寺店", "吉祥寺支店", "受注",
                 weekday_before(4), address="東京都武蔵野市吉祥寺本町1丁目10番7号"),
        contract("932104567", "株式会社さくらダイニング", "和食処　さくら　新宿東口店", "新宿支店", "確定",
                 date(2023, 4, 12), serial="FB05HFH01703", address="東京都新宿区新宿3丁目24番1号"),
        contract("910987654", "有限会社ゴール", "スポーツバー　ゴール　渋谷店", "渋谷支店", "解約予定",
                 date(2021, 9, 1), end, serial="FB03HFH00871", address="東京都渋谷区宇田川町13番8号"),
        contract("909876543", "株式会社まるや", "居酒屋　まるや　難波店", "難波支店", "解約",
                 date(2020, 2, 3), _month_end(today, -2), serial="FB02HFH00315",
                 address="大阪府大阪市中央区難波3丁目2番18号"),
        contract("998765432", "株式会社スターエンタテインメント", "カラオケ　スター　川崎駅前店", "横浜支店",
                 "確定", date(2022, 7, 20), serial="FB06HFH02290",
                 address="神奈川県川崎市川崎区駅前本町11-2 川崎フロンティアビル3F"),
        contract("945612378", "株式会社鉄板屋", "お好み焼き　鉄板屋　梅田店", "梅田支店", "解約予定",
                 date(2022, 11, 1), end, serial="FB07HFH00551", address="大阪府大阪市北区角田町5番1号"),
        contract("955443322", "株式会社北のめぐみ", "海鮮居酒屋　北のめぐみ　すすきの店", "札幌支店", "確定",
                 date(2024, 5, 8), serial="FB08HFH01120", address="北海道札幌市中央区南4条西3丁目1番"),
        contract("944556677", "合同会社ムーン", "バー　ムーン　吉祥寺店", "吉祥寺支店", "確定",
                 date(2025, 1, 15), serial="FB09HFH00077", address="東京都武蔵野市吉祥寺南町1丁目6番3号"),
    ]


def sample_extract(now: datetime) -> bytes:
    """The UNIS extract (CSV, CP932, CRLF, as UNIS writes it) taken before the morning of
    `sample_mails(now)`: every sample order is in it, consistent with its mail and form."""
    import csv

    now = _as_jst(now)
    extracted = (now - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(_EXTRACT_HEADER)
    for row in _extract_rows(now.date()):
        writer.writerow((*row, f"{extracted:%Y/%m/%d %H:%M:%S}"))
    return buf.getvalue().encode("cp932")


def sample_directory() -> bytes:
    """The branch directory (CSV, UTF-8 with BOM as Excel saves it) of `BRANCHES`."""
    lines = ["支店名,支店長メール,所属メール,法人営業"] + [
        f"{b.name},{b.manager.addr},{';'.join(m.addr for m in b.members)},{1 if b.corporate else ''}"
        for b in BRANCHES]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
