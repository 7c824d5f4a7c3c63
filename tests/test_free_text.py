"""Free text counts (DOMAIN.md §4): where a kind needs 理由 or 変更内容 and the body has no such label,
the branch's own sentences are the value; greetings, the mail's framing, the self-introduction,
the signature, quoted mail and the subject repeated are not."""

from __future__ import annotations

from helpers import RULES

from mailbot.extract import free_text

BODY = """事務センター
ご担当者様

お疲れ様です。
難波支店 技術課の林です。

下記店舗について、ご報告いたします。
閉店後にオーナー様と連絡が取れず、店舗が施錠されたままのため撤去できておりません。

よろしくお願いいたします。

----------------------------------------
株式会社USEN 難波支店 技術課
林 恵
TEL：06-6641-8850
----------------------------------------

> 件名：USEN SPOT ルーター未撤去_909876543
> 理由：（前回のメールの引用）鍵を預かっていません。
"""


def test_only_the_branchs_own_sentences_count():
    assert free_text(BODY, "USEN SPOT ルーター未撤去_909876543", RULES) == \
        "閉店後にオーナー様と連絡が取れず、店舗が施錠されたままのため撤去できておりません。"


def test_greetings_framing_signature_and_quotes_alone_are_no_value():
    frame = BODY.replace("閉店後にオーナー様と連絡が取れず、店舗が施錠されたままのため撤去できておりません。\n", "")
    assert free_text(frame, "USEN SPOT ルーター未撤去_909876543", RULES) == ""


def test_the_subject_repeated_is_no_value():
    body = "お疲れ様です。\nUSEN SPOT 契約変更_932104567\nよろしくお願いいたします。\n"
    assert free_text(body, "USEN SPOT 契約変更_932104567", RULES) == ""
