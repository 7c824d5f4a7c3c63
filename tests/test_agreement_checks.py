"""PLUS_MISMATCH, LINE_MISMATCH, SHOP_MISMATCH, UNIT_COUNT_MISSING (request vs itself and UNIS),
DUPLICATE_REQUEST and CANCEL_AFTER_ORDER (request vs what was decided before): DOMAIN.md §4, §5."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from helpers import RULES, TOKYO, mail
from test_unis import line, write

from mailbot.checks import CheckContext, agreement, history, run_checks
from mailbot.classify import classify
from mailbot.decide import decide
from mailbot.forms.model import ApplicationForm, PdfReading, PdfStatus
from mailbot.model import Action, Kind, Request
from mailbot.record.history import MemoryHistory, PastRequest
from mailbot.reference.unis import UnisData
from mailbot.text import fold

RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO)  # a Friday
ORDER = "USEN SPOT 器材発注依頼_{}"
CHECKS = [agreement.plus_agrees, agreement.line_agrees, agreement.shop_agrees, agreement.unit_count_given,
          history.not_duplicate, history.cancellation_by_case]

LINES = [
    # one plain router, 光ネクスト
    line("900000001", shop="居酒屋さくら　渋谷店", item="9603023", kind="フレッツ光ネクスト", ltype="マンション"),
    # SPOT Plus: parent and two children, Bフレッツ ファミリー
    line("900000002", shop="ホテル ベイサイド横浜", item="9603030", kind="Bフレッツ", ltype="ファミリー"),
    line("900000002", shop="ホテル ベイサイド横浜", item="9603040", kind="Bフレッツ", ltype="ファミリー"),
    line("900000002", shop="ホテル ベイサイド横浜", item="9603040", kind="Bフレッツ", ltype="ファミリー"),
    # half-width kana and Latin letters in UNIS
    line("900000003", shop="ｶﾌｪ SOLEIL 渋谷店", item="9603023", kind="光ネクスト"),
    # ordered on a Saturday, cancelled in UNIS already
    line("900000004", item="9603023", status="キャンセル", ordered="2026/11/14"),
    line("900000005", item="9603023", ordered="2026/11/19"),
]


@pytest.fixture(scope="module")
def unis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unis")
    data = UnisData.open(write(tmp / "orders.csv", LINES, extracted="2026/11/20 06:00:00"), tmp / "u.sqlite3", RULES)
    yield data
    data.close()


def application(**values) -> tuple[PdfReading, ApplicationForm]:
    return PdfReading(PdfStatus.READ, shape="layout"), ApplicationForm(**values)


def check(subject: str, unis=None, *, items: dict[str, str] | None = None, form: dict | None = None,
          body: str = "", received: datetime = RECEIVED, past: list[PastRequest] | None = None):
    reading, parsed = application(**form) if form is not None else (None, None)
    request = Request(mail=mail(subject, body=body), classification=classify(subject, RULES), received=received,
                      body_items=items or {}, form_reading=reading, form=parsed)
    memory = None
    if past is not None:
        memory = MemoryHistory()
        for p in past:
            memory.add(p)
    ctx = CheckContext(rules_dir=RULES, internal_domains=("usen.co.jp",), own_addresses=(), now=received,
                       unis=unis, history=memory)
    found = run_checks(request, ctx, CHECKS)
    return {f.code for f in found}, decide(found, RULES), found


# ------------------------------------------------------------------ PLUS_MISMATCH


@pytest.mark.parametrize("code, body_plus, form_plus, expected", [
    ("900000001", "無", False, set()),
    ("900000002", "有", True, set()),
    ("900000002", "あり", True, set()),         # spellings of yes
    ("900000001", "有", None, {"PLUS_MISMATCH"}),  # body says Plus, UNIS has no Plus item
    ("900000002", "無", True, {"PLUS_MISMATCH"}),  # body and form disagree (and UNIS)
    ("900000001", "無", True, {"PLUS_MISMATCH"}),  # the form alone says Plus
    ("900000001", "要確認", False, set()),         # an answer in no list is not compared
    ("999999999", "有", True, set()),             # not in UNIS: body and form agree
    ("999999999", "有", False, {"PLUS_MISMATCH"}),  # not in UNIS: body and form disagree
])
def test_plus(unis, code, body_plus, form_plus, expected):
    form = {"plus": form_plus, "remarks": "親1台、子2台"} if form_plus is not None else None
    codes, decision, _ = check(ORDER.format(code), unis, items={"plus": body_plus}, form=form)
    assert codes == expected
    assert decision.action is (Action.HOLD if expected else Action.ACCEPT)


def test_plus_mismatch_says_who_said_what(unis):
    _, _, found = check(ORDER.format("900000001"), unis, items={"plus": "有"}, form={"plus": False})
    assert found[0].detail == "本文 有、申込書 無、UNIS 無"


# ------------------------------------------------------------------ LINE_MISMATCH


@pytest.mark.parametrize("code, kind, ltype, expected", [
    ("900000001", "フレッツ光ネクスト", "マンション", set()),
    ("900000001", "フレッツ光ネクスト", "ファミリー", set()),  # 光ネクスト: family vs mansion is no mismatch
    ("900000001", "フレッツ光ネクスト", None, set()),
    ("900000003", "フレッツ光ネクスト", None, set()),          # UNIS writes 光ネクスト
    ("900000001", "Bフレッツ", "マンション", {"LINE_MISMATCH"}),
    ("900000002", "Bフレッツ", "ファミリー", set()),
    ("900000002", "Ｂフレッツ", "ファミリータイプ", set()),     # width and spelling
    ("900000002", "Bフレッツ", "マンション", {"LINE_MISMATCH"}),
    ("900000002", "フレッツ光ネクスト", None, {"LINE_MISMATCH"}),
    ("900000002", None, None, set()),                         # not chosen: LINE_KIND_MISSING's business
])
def test_line(unis, code, kind, ltype, expected):
    form = {"line_kind": kind, "line_type": ltype, "plus": code == "900000002", "remarks": "親1台、子2台"}
    codes, decision, _ = check(ORDER.format(code), unis, form=form)
    assert codes == expected


# ------------------------------------------------------------------ SHOP_MISMATCH


@pytest.mark.parametrize("code, shop, expected", [
    ("900000001", "居酒屋さくら 渋谷店", set()),       # full-width vs half-width space
    ("900000001", "居酒屋 さくら 渋谷店", set()),      # spaces ignored
    ("900000001", "居酒屋サクラ渋谷店", set()),        # hiragana vs katakana
    ("900000001", "居酒屋さくら 新宿店", {"SHOP_MISMATCH"}),
    ("900000003", "カフェ soleil 渋谷店", set()),      # half-width kana, case
    ("900000003", "ｶﾌｪ ｿﾚｲﾕ 渋谷店", {"SHOP_MISMATCH"}),
    ("900000001", None, set()),                       # no shop name on the form
    ("999999999", "どこかの店", set()),               # not in UNIS: UNIS_ORDER_NOT_FOUND's business
])
def test_shop(unis, code, shop, expected):
    codes, decision, found = check(ORDER.format(code), unis, form={"shop_name": shop, "plus": False})
    assert codes == expected
    if expected:
        assert decision.action is Action.HOLD and "UNIS" in found[0].detail


def test_fold_is_the_normalisation_the_domain_asks_for():
    assert fold("ＣＡＦÉ　ｿﾚｲﾕ") == fold("café ソレイユ") == "caféソレイユ"
    assert fold("〜") == fold("～")


# ------------------------------------------------------------------ UNIT_COUNT_MISSING


@pytest.mark.parametrize("code, items, remarks, body, expected", [
    ("900000002", {}, None, "", {"UNIT_COUNT_MISSING"}),            # UNIS: three lines
    ("900000002", {}, "親1台、子2台", "", set()),                    # in the form's 備考
    ("900000002", {}, None, "備考：親1台 子2台\n", set()),           # in the body
    ("900000002", {}, None, "親機1台、子機2台でお願いします。", set()),
    ("900000001", {}, None, "", set()),                             # one line
    ("900000001", {"unit_count": "3台"}, None, "", {"UNIT_COUNT_MISSING"}),  # the body's 台数 says several
    ("900000001", {"unit_count": "1台"}, None, "", set()),
    ("999999999", {}, "子機を2F・3Fに設置", "", {"UNIT_COUNT_MISSING"}),   # the form's 備考 says several
    ("999999999", {}, "親1台、子2台（2F・3F客室フロアに子機設置）", "", set()),
])
def test_unit_count(unis, code, items, remarks, body, expected):
    form = {"remarks": remarks, "plus": code == "900000002"}
    codes, decision, _ = check(ORDER.format(code), unis, items={"plus": "有" if code == "900000002" else "無",
                                                                 **items}, form=form, body=body)
    assert codes == expected
    if expected:
        assert decision.action is Action.REMAND


def test_unit_count_not_taken_from_the_bots_own_remand_quoted_below():
    # The remand's fix text says 「親〇台、子〇台」: no digits, so it gives no count.
    body = "再送します。\n\n> 本文または申込書備考に「親〇台、子〇台」と記載して再送してください。\n"
    codes, _, _ = check(ORDER.format("999999999"), None, items={"unit_count": "複数台"}, body=body)
    assert codes == {"UNIT_COUNT_MISSING"}


# ------------------------------------------------------------------ DUPLICATE_REQUEST


def past(kind: Kind, code: str, action: Action, when: datetime) -> PastRequest:
    return PastRequest(kind, code, action, when)


EARLIER = datetime(2026, 11, 18, 11, 0, tzinfo=TOKYO)


@pytest.mark.parametrize("subject, history_, expected", [
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT, EARLIER)],
     {"DUPLICATE_REQUEST"}),
    # a remanded or held one is no acceptance: the resubmission is expected
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.REMAND, EARLIER)], set()),
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.HOLD, EARLIER)], set()),
    # another code, another kind
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000009", Action.ACCEPT, EARLIER)], set()),
    ("USEN SPOT 契約変更_900000001", [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT, EARLIER)], set()),
    # closed by a cancellation accepted after it
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT, EARLIER),
                                 past(Kind.CANCELLATION, "900000001", Action.ACCEPT, EARLIER.replace(hour=15))],
     set()),
    # a termination withdrawn, then terminated again: the second termination is new
    ("USEN SPOT 解約申請_900000001", [past(Kind.TERMINATION, "900000001", Action.ACCEPT, EARLIER),
                                     past(Kind.TERMINATION_WITHDRAWAL, "900000001", Action.ACCEPT,
                                          EARLIER.replace(hour=15))], set()),
    ("USEN SPOT 解約申請_900000001", [past(Kind.TERMINATION, "900000001", Action.ACCEPT, EARLIER)],
     {"DUPLICATE_REQUEST"}),
    # open for 10 business days: 2026-11-05 → 11-20 is 10 (11-23 is a holiday), 11-04 → 11 is over
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT,
                                      datetime(2026, 11, 6, 9, 0, tzinfo=TOKYO))], {"DUPLICATE_REQUEST"}),
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT,
                                      datetime(2026, 11, 5, 9, 0, tzinfo=TOKYO))], set()),
    # one received later (a backlog decided out of order) is not "before"
    (ORDER.format("900000001"), [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT,
                                      RECEIVED.replace(hour=11))], set()),
])
def test_duplicate(subject, history_, expected):
    codes, decision, found = check(subject, None, items={"plus": "無"}, past=history_)
    assert codes == expected
    if expected:
        assert decision.action is Action.HOLD and "受付済み" in found[0].detail


# ------------------------------------------------------------------ CANCEL_AFTER_ORDER

CANCEL = "USEN SPOT キャンセル申請_{}"


@pytest.mark.parametrize("code, history_, received, expected", [
    # the bot accepted the order this morning: cancelling the same day is free
    ("900000001", [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT, RECEIVED.replace(hour=9))],
     RECEIVED.replace(hour=16, minute=59), set()),
    # … but after 17:00 the cancellation counts from the next business day
    ("900000001", [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT, RECEIVED.replace(hour=9))],
     RECEIVED.replace(hour=17), {"CANCEL_AFTER_ORDER"}),
    # an order received after 17:00 on Thursday is day N Friday: Friday's cancellation is free
    ("900000001", [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT,
                        datetime(2026, 11, 19, 18, 30, tzinfo=TOKYO))], RECEIVED, set()),
    ("900000001", [past(Kind.EQUIPMENT_ORDER, "900000001", Action.ACCEPT, EARLIER)], RECEIVED,
     {"CANCEL_AFTER_ORDER"}),
    # no record of the bot: the UNIS 受注日 (2026-11-19) counts
    ("900000005", [], RECEIVED, {"CANCEL_AFTER_ORDER"}),
    ("900000005", [], datetime(2026, 11, 19, 12, 0, tzinfo=TOKYO), set()),
    # 受注日 a Saturday (2026-11-14, already キャンセル in UNIS): day N is Monday 11-16
    ("900000004", [], datetime(2026, 11, 16, 10, 0, tzinfo=TOKYO), set()),
    ("900000004", [], datetime(2026, 11, 17, 10, 0, tzinfo=TOKYO), {"CANCEL_AFTER_ORDER"}),
    # no order anywhere (not accepted here, nothing in UNIS): nothing to cancel (DOMAIN.md §5)
    ("999999999", [], RECEIVED, {"NO_OPEN_ORDER"}),
])
def test_cancel_after_order(unis, code, history_, received, expected):
    codes, decision, found = check(CANCEL.format(code), unis, past=history_, received=received)
    assert codes == expected
    # accepted either way, and flagged; held when there is nothing to cancel
    assert decision.action is (Action.HOLD if "NO_OPEN_ORDER" in expected else Action.ACCEPT)
    if expected:
        assert decision.findings[0].code == next(iter(expected))


def test_the_bots_own_order_day_wins_over_unis(unis):
    # UNIS says 受注日 11-19, but the bot accepted the order on 11-20: a cancellation on 11-20 is free.
    assert unis.latest_order_date("900000005") == date(2026, 11, 19)
    history_ = [past(Kind.EQUIPMENT_ORDER, "900000005", Action.ACCEPT, RECEIVED.replace(hour=9))]
    codes, _, _ = check(CANCEL.format("900000005"), unis, past=history_, received=RECEIVED.replace(hour=12))
    assert codes == set()
