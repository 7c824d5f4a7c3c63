"""The forms as data: what the generator writes and what the reader gives back."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class ApplicationForm:
    """USEN SPOT ご加入申込書 (DOMAIN.md §3).  None / empty means "not filled in / not chosen"."""

    customer_code: str | None = None  # 顧客CD, where the form carries one
    contractor_kana: str | None = None  # 契約者 フリガナ
    contractor_name: str | None = None  # 契約者 名称
    contractor_address: str | None = None  # 契約者 住所 〒
    contractor_phone: str | None = None  # 契約者 電話番号
    shop_kana: str | None = None  # 店舗 フリガナ
    shop_name: str | None = None  # 店舗/施設名
    shop_address: str | None = None  # 店舗 住所
    shop_phone: str | None = None  # 店舗 電話番号
    line_kind: str | None = None  # ご利用回線種別: "フレッツ光ネクスト" | "Bフレッツ"
    line_type: str | None = None  # ご利用回線タイプ: "ファミリー" | "マンション"
    opening_check: str | None = None  # 確認方法: "開通通知書" | "NTT請求書(裏面)" | "116へ確認"
    mail_addresses: tuple[str, ...] = ()  # ご希望のメールアドレス, as written (1–3)
    contact_name: str | None = None  # ご担当者名
    plus: bool | None = None  # USEN SPOT Plus chosen
    ssid: str | None = None  # SSID (Original SSID)
    tourist: bool | None = None  # 外国人対応SSIDオプション chosen
    initial_fee: str | None = None  # 基本工事費
    monthly_fee: str | None = None  # 月額利用料
    remarks: str | None = None  # 備考 (e.g. 親1台、子2台)


@dataclass(frozen=True)
class TerminationForm:
    """解約申請書: at least 顧客CD and 解約日."""

    customer_code: str | None = None
    termination_date: date | None = None  # 解約日
    shop_name: str | None = None
    reason: str | None = None  # 解約事由


class PdfStatus(str, enum.Enum):
    READ = "read"  # opened with the agreed password and read
    NOT_ENCRYPTED = "not_encrypted"  # opened and read, but carried no password
    WRONG_PASSWORD = "wrong_password"  # encrypted, and the agreed password does not open it
    UNREADABLE = "unreadable"  # broken, too big, too many pages, too slow, or a scan with no text


@dataclass(frozen=True)
class PdfReading:
    """What reading one attached PDF gave."""

    status: PdfStatus
    detail: str = ""  # why (for staff): "timed out after 20 s", "no text layer", …
    shape: str = ""  # "acroform" | "layout" | "scan" | ""
    # the form's fields by their dataclass names → plain values as read (str, bool, list of str
    # for mail_addresses, ISO text for dates); None / empty left out; JSON-printable
    fields: dict[str, object] = field(default_factory=dict)
    text: str = ""  # the page text, for the audit trail and for unit counts in 備考
    pages: int = 0  # pages in the file, where it could be opened
