"""Subject → kind and code, for every subject variant of DOMAIN.md §2."""

from pathlib import Path

import pytest

from mailbot.classify import classify, code_is_valid
from mailbot.model import Kind

RULES = Path(__file__).resolve().parent.parent / "rules"

KINDS = [
    ("器材発注依頼", Kind.EQUIPMENT_ORDER),
    ("契約変更", Kind.CONTRACT_CHANGE),
    ("キャンセル申請", Kind.CANCELLATION),
    ("解約申請", Kind.TERMINATION),
    ("ルーター未撤去", Kind.ROUTER_NOT_REMOVED),
    ("移設依頼", Kind.RELOCATION),
    ("解約キャンセル依頼", Kind.TERMINATION_WITHDRAWAL),
    # the manual's other words for the same requests (DOMAIN.md §2, rules/kinds.toml)
    ("機材発注依頼", Kind.EQUIPMENT_ORDER),
    ("顧客情報変更", Kind.CONTRACT_CHANGE),
    ("解約撤回", Kind.TERMINATION_WITHDRAWAL),
    ("ルータ未撤去", Kind.ROUTER_NOT_REMOVED),
    ("ルーター未回収", Kind.ROUTER_NOT_REMOVED),
    ("未引上げ", Kind.ROUTER_NOT_REMOVED),
]

VARIANTS = [
    "USEN SPOT {w}_988776654",
    "ＵＳＥＮ　ＳＰＯＴ　{w}＿９８８７７６６５４",
    "USENSPOT {w}_988776654",
    "USEN SPOT{w}_988776654",
    "usen spot {w}_988776654",
    "Re: USEN SPOT {w}_988776654",
    "RE: RE: USEN SPOT {w}_988776654",
    "Fw: USEN SPOT {w}_988776654",
    "FW: 転送: USEN SPOT {w}_988776654",
    "返信: USEN SPOT {w}_988776654",
    "ＲＥ：USEN SPOT {w}_988776654",
    "Re[2]: USEN SPOT {w}_988776654",
    "【至急】Re: USEN SPOT {w}_988776654",
    "RE: 【差戻】USEN SPOT {w}_988776654",
    "USEN SPOT {w}_988776654 カフェ・ド・ソレイユ渋谷店",
    "USEN SPOT {w}_ 988776654",
    "USEN\u200b SPOT {w}_988776654",
    "USEN SPOT {w}\u202e_988776654",
]


@pytest.mark.parametrize("word,kind", KINDS)
@pytest.mark.parametrize("template", VARIANTS)
def test_every_variant_classifies_the_same(word, kind, template):
    c = classify(template.format(w=word), RULES)
    assert c.kind is kind
    assert c.code == "988776654"


def test_longest_kind_word_wins():
    assert classify("USEN SPOT 解約キャンセル依頼_988776654", RULES).kind is Kind.TERMINATION_WITHDRAWAL
    assert classify("USEN SPOT キャンセル申請_988776654", RULES).kind is Kind.CANCELLATION


def test_prefixes_are_stripped_and_bot_prefix_marks_a_resubmission():
    c = classify("RE: 【差戻】USEN SPOT 器材発注依頼_988776654", RULES)
    assert c.subject == "USEN SPOT 器材発注依頼_988776654"
    assert c.resubmission
    assert not classify("Re: USEN SPOT 器材発注依頼_988776654", RULES).resubmission


@pytest.mark.parametrize("subject,code", [
    ("USEN SPOT 器材発注依頼_", None),
    ("USEN SPOT 器材発注依頼", None),
    ("USEN SPOT 器材発注依頼_12345678", "12345678"),
    ("USEN SPOT 器材発注依頼_98877665A", "98877665A"),
])
def test_missing_and_malformed_codes_are_kept_for_the_checks(subject, code):
    c = classify(subject, RULES)
    assert c.kind is Kind.EQUIPMENT_ORDER
    assert c.code == code


def test_code_validity():
    assert code_is_valid("988776654", RULES)
    assert not code_is_valid("98877665", RULES)
    assert not code_is_valid("9887766541", RULES)
    assert not code_is_valid("98877665A", RULES)


@pytest.mark.parametrize("subject", ["登録通知書の再発行について", "Re: 登録通知書 再送のお願い（988776654）"])
def test_registration_notice(subject):
    assert classify(subject, RULES).kind is Kind.REGISTRATION_NOTICE


@pytest.mark.parametrize("subject", ["", "お疲れ様です", "USEN SPOT について", "USEN 器材発注依頼_988776654",
                                     "【申請】見積書の送付について"])
def test_unknown(subject):
    assert classify(subject, RULES).kind is Kind.UNKNOWN
