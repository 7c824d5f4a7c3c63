"""The Maildir mailbox (mailbot.mailbox.maildir) and the sample mails (demo.samples)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from pathlib import Path

import pikepdf
import pytest

from demo.samples import BRANCHES, SAMPLES, sample_mails, seed_maildir
from mailbot.mailbox import MailboxError
from mailbot.mailbox.maildir import UIDLIST, MaildirMailbox
from mailbot.model import Kind, MailRef

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 8, 18, 11, 30, tzinfo=JST)


def mail(n: int, subject: str = "test") -> bytes:
    return f"From: a@usen.co.jp\r\nSubject: {subject} {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def box(tmp_path: Path) -> MaildirMailbox:
    return MaildirMailbox(tmp_path / "Maildir")


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder / "new")) + sorted(os.listdir(folder / "cur"))


# ---- folders -----------------------------------------------------------------------------------


def test_ensure_folders_creates_maildirpp_with_japanese_names(box: MaildirMailbox) -> None:
    box.ensure_folders(["INBOX", "処理済", "保留/受付", "送信済"])
    root = box.root
    for sub in ("cur", "new", "tmp"):
        assert (root / sub).is_dir()
        assert (root / ".処理済" / sub).is_dir()
        assert (root / ".保留.受付" / sub).is_dir()
    assert (root / ".処理済" / "maildirfolder").is_file()
    # stored as UTF-8 bytes on disk (what Dovecot with UTF-8 names and mail clients read)
    assert ".処理済".encode() in os.listdir(os.fsencode(root))
    assert ".保留.受付".encode() in os.listdir(os.fsencode(root))
    assert box.folders() == ["INBOX", "保留/受付", "処理済", "送信済"]
    validity = box.uidvalidity("保留/受付")
    box.ensure_folders(["保留/受付"])  # idempotent: nothing is reset
    assert box.uidvalidity("保留/受付") == validity
    assert box.list_uids("処理済") == []


@pytest.mark.parametrize("name", ["", "a.b", "a//b", "/a", "a/", "..", "x\ny"])
def test_invalid_folder_names_are_refused(box: MaildirMailbox, name: str) -> None:
    with pytest.raises(MailboxError):
        box.ensure_folders([name])


def test_missing_folder_raises(box: MaildirMailbox) -> None:
    with pytest.raises(MailboxError):
        box.list_uids("処理済")
    with pytest.raises(MailboxError):
        box.append("処理済", mail(1))
    with pytest.raises(MailboxError):
        list(box.fetch("処理済", [1]))
    with pytest.raises(MailboxError):
        MaildirMailbox(box.root.parent / "elsewhere", create=False)


# ---- append / list / fetch ---------------------------------------------------------------------


def test_append_list_fetch_roundtrip(box: MaildirMailbox) -> None:
    when = datetime(2026, 8, 18, 9, 12, 34, 567000, tzinfo=JST)
    data = mail(1) + "本文\r\n".encode("iso-2022-jp") + b"\x00\xff\r\n.\r\n"
    box.append("INBOX", data, internaldate=when)
    before = time.time()
    box.append("inbox", mail(2))
    assert box.list_uids("INBOX") == [1, 2]
    got = list(box.fetch("INBOX", [2, 1, 1, 99]))  # duplicates and unknown UIDs are fine
    assert [r.ref.uid for r in got] == [1, 2]
    assert got[0].data == data
    assert got[0].internaldate == when
    assert got[0].internaldate.tzinfo is not None
    assert got[0].ref == MailRef("INBOX", box.uidvalidity("INBOX"), 1)
    assert abs(got[1].internaldate.timestamp() - before) < 5
    assert got[1].data == mail(2)
    # delivered by Maildir rules: into new/, names time.MusecPpidQseq.host, tmp/ left empty
    assert len(os.listdir(box.root / "new")) == 2
    assert os.listdir(box.root / "tmp") == []
    for name in os.listdir(box.root / "new"):
        assert f"P{os.getpid()}Q" in name and ":" not in name


def test_fetch_never_changes_flags_or_location(box: MaildirMailbox) -> None:
    for n in range(3):
        box.append("INBOX", mail(n))
    names = files_in(box.root)
    mtimes = {n: os.stat(box.root / "new" / n).st_mtime_ns for n in names}
    list(box.fetch("INBOX", box.list_uids("INBOX")))
    assert files_in(box.root) == names
    assert {n: os.stat(box.root / "new" / n).st_mtime_ns for n in names} == mtimes


def test_append_refuses_naive_internaldate(box: MaildirMailbox) -> None:
    with pytest.raises(ValueError):
        box.append("INBOX", mail(1), internaldate=datetime(2026, 8, 18, 9, 0))


def test_uids_are_stable_across_reopening_and_ascend(box: MaildirMailbox) -> None:
    box.ensure_folders(["処理済"])
    for n in range(3):
        box.append("処理済", mail(n))
    first = {r.ref.uid: r.data for r in box.fetch("処理済", box.list_uids("処理済"))}
    validity = box.uidvalidity("処理済")
    box.close()

    again = MaildirMailbox(box.root)
    assert again.uidvalidity("処理済") == validity
    assert {r.ref.uid: r.data for r in again.fetch("処理済", again.list_uids("処理済"))} == first
    for n in range(3, 6):
        again.append("処理済", mail(n))
    uids = again.list_uids("処理済")
    assert uids == [1, 2, 3, 4, 5, 6]
    assert [r.data for r in again.fetch("処理済", uids)] == [mail(n) for n in range(6)]

    # a mail client marks one read: new/X → cur/X:2,S keeps the UID
    folder = again.folder_path("処理済")
    name = sorted(os.listdir(folder / "new"))[0]
    os.rename(folder / "new" / name, folder / "cur" / (name + ":2,S"))
    assert MaildirMailbox(box.root).list_uids("処理済") == uids
    assert next(again.fetch("処理済", [1])).data == mail(0)

    # an expunged mail's UID is never handed out again
    os.unlink(folder / "cur" / (name + ":2,S"))
    again.append("処理済", mail(6))
    assert again.list_uids("処理済") == [2, 3, 4, 5, 6, 7]


def test_files_delivered_by_others_get_uids_in_name_order(box: MaildirMailbox) -> None:
    names = ["1755475000.M12P9Q3.host", "1755475000.M5P9Q2.host", "1755474000.M1P1Q1.host"]
    for n, name in enumerate(names):
        (box.root / "new" / name).write_bytes(mail(n))
    (box.root / "cur" / "1755476000.M1P1Q1.host:2,S").write_bytes(mail(3))
    (box.root / "new" / ".hidden").write_bytes(b"x")  # dot files are not mails
    got = [r.data for r in box.fetch("INBOX", box.list_uids("INBOX"))]
    assert got == [mail(2), mail(1), mail(0), mail(3)]
    text = (box.root / UIDLIST).read_text()
    assert text.splitlines()[0] == f"1 V{box.uidvalidity('INBOX')} N5"
    assert text.splitlines()[1] == "1 1755474000.M1P1Q1.host"


# ---- move --------------------------------------------------------------------------------------


def test_move_is_atomic_and_idempotent(box: MaildirMailbox) -> None:
    box.ensure_folders(["処理済", "保留/受付"])
    for n in range(3):
        box.append("INBOX", mail(n))
    refs = {r.data: r.ref for r in box.fetch("INBOX", box.list_uids("INBOX"))}
    ref = refs[mail(1)]

    box.move(ref, "処理済")
    assert box.list_uids("INBOX") == [1, 3]
    dest = box.folder_path("処理済")
    assert os.listdir(dest / "new") == []
    [moved] = os.listdir(dest / "cur")
    assert moved.endswith(":2,")  # from new/: no flags, still unread
    assert [r.data for r in box.fetch("処理済", box.list_uids("処理済"))] == [mail(1)]
    assert box.list_uids("処理済") == [1]

    box.move(ref, "処理済")  # a repeat after a crash: nothing happens
    box.move(ref, "保留/受付")  # the mail is gone from INBOX: no-op too
    assert box.list_uids("処理済") == [1]
    assert box.list_uids("保留/受付") == []
    base = moved.split(":")[0]
    everywhere = [p for p in box.root.rglob("*") if p.name.split(":")[0] == base]
    assert len(everywhere) == 1  # never two copies

    # flags survive a move out of cur/
    ref3 = refs[mail(2)]
    name = next(n for n in os.listdir(box.root / "new") if (box.root / "new" / n).read_bytes() == mail(2))
    os.rename(box.root / "new" / name, box.root / "cur" / (name + ":2,FS"))
    box.move(ref3, "保留/受付")
    assert os.listdir(box.folder_path("保留/受付") / "cur") == [name + ":2,FS"]
    assert [r.data for r in box.fetch("保留/受付", box.list_uids("保留/受付"))] == [mail(2)]


def test_move_after_crash_between_rename_and_uidlist_update(box: MaildirMailbox) -> None:
    box.ensure_folders(["処理済"])
    box.append("INBOX", mail(1))
    [raw] = box.fetch("INBOX", box.list_uids("INBOX"))
    [name] = os.listdir(box.root / "new")
    # the process died right after the rename: the INBOX uidlist still names the mail
    os.rename(box.root / "new" / name, box.folder_path("処理済") / "cur" / (name + ":2,"))
    box.move(raw.ref, "処理済")
    assert box.list_uids("INBOX") == []
    assert [r.data for r in box.fetch("処理済", box.list_uids("処理済"))] == [mail(1)]


def test_move_with_stale_uidvalidity_raises(box: MaildirMailbox) -> None:
    box.ensure_folders(["処理済"])
    box.append("INBOX", mail(1))
    [raw] = box.fetch("INBOX", [1])
    with pytest.raises(MailboxError):
        box.move(MailRef("INBOX", raw.ref.uidvalidity + 1, 1), "処理済")
    # a broken uidlist is rebuilt with a new UIDVALIDITY: old references are stale
    with open(box.root / UIDLIST, "a") as f:
        f.write("garbage\n")
    assert box.uidvalidity("INBOX") > raw.ref.uidvalidity
    with pytest.raises(MailboxError):
        box.move(raw.ref, "処理済")
    assert box.list_uids("INBOX") == [1]
    assert os.listdir(box.folder_path("処理済") / "cur") == []


def test_move_to_missing_folder_raises(box: MaildirMailbox) -> None:
    box.append("INBOX", mail(1))
    [raw] = box.fetch("INBOX", [1])
    with pytest.raises(MailboxError):
        box.move(raw.ref, "どこにもない")
    assert box.list_uids("INBOX") == [1]


# ---- concurrency -------------------------------------------------------------------------------


def test_two_objects_on_one_root_never_share_a_uid(tmp_path: Path) -> None:
    a = MaildirMailbox(tmp_path / "md")
    b = MaildirMailbox(tmp_path / "md")
    seen: dict[int, bytes] = {}
    for n in range(20):
        (a if n % 2 else b).append("INBOX", mail(n))
        for box in (b, a) if n % 3 else (a, b):
            for r in box.fetch("INBOX", box.list_uids("INBOX")):
                assert seen.setdefault(r.ref.uid, r.data) == r.data
    assert sorted(seen) == list(range(1, 21))
    assert sorted(seen.values()) == sorted(mail(n) for n in range(20))


WORKER = textwrap.dedent("""
    import hashlib, json, sys
    from mailbot.mailbox.maildir import MaildirMailbox
    root, wid, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    box = MaildirMailbox(root)
    seen = {}
    for n in range(count):
        box.append("INBOX", f"Subject: w{wid} n{n}\\r\\n\\r\\nx\\r\\n".encode())
        if n % 3 == 0:
            box.ensure_folders(["処理済"])
        for r in box.fetch("INBOX", box.list_uids("INBOX")):
            h = hashlib.sha256(r.data).hexdigest()
            if seen.setdefault(r.ref.uid, h) != h:
                sys.exit(f"uid {r.ref.uid} changed its mail")
    print(json.dumps(seen))
""")


def test_processes_never_hand_out_one_uid_twice(tmp_path: Path) -> None:
    root = tmp_path / "md"
    MaildirMailbox(root)
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(w), "15"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append({int(k): v for k, v in json.loads(out).items()})
    box = MaildirMailbox(root)
    final = {r.ref.uid: hashlib.sha256(r.data).hexdigest() for r in box.fetch("INBOX", box.list_uids("INBOX"))}
    assert sorted(final) == list(range(1, 61))
    assert len(set(final.values())) == 60
    for seen in results:
        for uid, h in seen.items():
            assert final[uid] == h


# ---- the sample mails --------------------------------------------------------------------------

EXPECTED_SUBJECTS = {
    "order_shibuya": "USEN SPOT 器材発注依頼_988776654",
    "order_multi_units": "USEN SPOT 器材発注依頼_987650123",
    "order_fullwidth": "ＵＳＥＮ　ＳＰＯＴ　器材発注依頼＿９８８１２３４５６",
    "order_resubmission": "RE: 【差戻】USEN SPOT 器材発注依頼_976543210",
    "order_forwarded": "FW: USEN SPOT 器材発注依頼_965432107",
    "order_no_code": "USEN SPOT 器材発注依頼",
    "order_8digit": "USEN SPOT 器材発注依頼_98877665",
    "order_no_pdf": "USEN SPOT 器材発注依頼_943215678",
    "contract_change": "USEN SPOT 契約変更_932104567",
    "cancellation": "USEN SPOT キャンセル申請_921098765",
    "termination": "USEN SPOT 解約申請_910987654",
    "router_not_removed": "USEN SPOT ルーター未撤去_909876543",
    "relocation": "USEN SPOT 移設依頼_998765432",
    "termination_withdrawal": "USEN SPOT 解約キャンセル依頼_945612378",
    "registration_notice": "USEN SPOT 登録通知書再発送依頼_955443322",
    "auto_reply": "自動応答: 【受付】USEN SPOT 器材発注依頼_912345678",
    "bounce": "Undelivered Mail Returned to Sender",
    "outside_gmail": "USEN SPOT キャンセル申請_944556677",
    "unknown_subject": "USEN SPOT ルーターの設置場所について（ご相談）",
}

WITH_APPLICATION = {"order_shibuya", "order_multi_units", "order_fullwidth", "order_resubmission",
                    "order_forwarded", "order_no_code", "order_8digit"}


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    return dict(sample_mails(NOW))


def decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


def plain_text(msg: email.message.Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            charset = part.get_content_charset() or "us-ascii"
            codec = "cp932" if charset == "shift_jis" else charset
            return part.get_payload(decode=True).decode(codec)
    raise AssertionError("no text/plain part")


def pdfs(msg: email.message.Message) -> list[tuple[str, bytes]]:
    return [(part.get_filename(), part.get_payload(decode=True))
            for part in msg.walk() if part.get_content_type() == "application/pdf"]


def test_seed_maildir(tmp_path: Path) -> None:
    box = MaildirMailbox(tmp_path / "md")
    names = seed_maildir(box, NOW)
    assert names == [n for n, _ in sample_mails(NOW)]
    assert sorted(names) == sorted(EXPECTED_SUBJECTS) == sorted(SAMPLES)
    uids = box.list_uids("INBOX")
    assert uids == list(range(1, len(names) + 1))
    got = list(box.fetch("INBOX", uids))
    stamps = [r.internaldate for r in got]
    assert stamps == sorted(stamps)  # delivered oldest first
    assert NOW - timedelta(hours=4) < stamps[0] and stamps[-1] < NOW
    for name, raw in zip(names, got):
        msg = email.message_from_bytes(raw.data)
        assert decoded(msg["Subject"]) == EXPECTED_SUBJECTS[name]
        top = email.utils.parsedate_to_datetime(msg["Received"].rsplit(";", 1)[1].split("(")[0])
        assert top == raw.internaldate  # the MX's stamp is the delivery time


def test_every_sample_parses_and_has_the_expected_subject(samples: dict[str, bytes]) -> None:
    assert list(samples) == list(SAMPLES)
    for name, data in samples.items():
        assert b"\n" not in data.replace(b"\r\n", b""), name  # CRLF throughout
        assert max(len(line) for line in data.split(b"\r\n")) <= 998, name
        msg = email.message_from_bytes(data)
        assert not [p.defects for p in msg.walk() if p.defects], name
        assert decoded(msg["Subject"]) == EXPECTED_SUBJECTS[name] == SAMPLES[name].subject
        modern = email.message_from_bytes(data, policy=email.policy.default)
        assert modern["Subject"] == EXPECTED_SUBJECTS[name]
        assert msg["Message-ID"] and msg["Date"]
        assert email.utils.parsedate_to_datetime(msg["Date"]) < NOW


def test_samples_are_deterministic(samples: dict[str, bytes]) -> None:
    assert dict(sample_mails(NOW)) == samples
    later = dict(sample_mails(NOW + timedelta(days=1)))
    assert later["order_shibuya"] != samples["order_shibuya"]
    naive = dict(sample_mails(NOW.replace(tzinfo=None)))  # naive = Asia/Tokyo
    assert naive == samples


def test_senders_recipients_and_machine_mails(samples: dict[str, bytes]) -> None:
    managers = {b.name: b.manager.addr for b in BRANCHES}
    for name, data in samples.items():
        msg = email.message_from_bytes(data, policy=email.policy.default)
        sender = msg["From"].addresses[0]
        if name == "bounce":
            assert msg["Return-Path"] == "<>"
            assert sender.username == "MAILER-DAEMON"
            assert msg.get_content_type() == "multipart/report"
            assert msg.get_param("report-type") == "delivery-status"
            continue
        assert [a.addr_spec for a in msg["To"].addresses] == ["usen_spot@usen.co.jp"]
        if name == "outside_gmail":
            assert sender.domain == "gmail.com"
        else:
            assert sender.domain == "usen.co.jp"
        if name == "auto_reply":
            assert msg["Auto-Submitted"] == "auto-replied"
            assert msg["Subject"].startswith("自動応答: ")
            continue
        assert "Auto-Submitted" not in msg
        cc = [a.addr_spec for a in msg["Cc"].addresses]
        text = plain_text(email.message_from_bytes(data))
        assert text.startswith("事務センター") and "お疲れ様です。" in text
        branch = next(b.name for b in BRANCHES if b.name in text.split("お疲れ様です。", 1)[1][:40])
        assert cc == [managers[branch]], name


def test_charsets_as_branches_send_them(samples: dict[str, bytes]) -> None:
    seen = set()
    for data in samples.values():
        msg = email.message_from_bytes(data)
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                seen.add((part.get_content_charset(), part["Content-Transfer-Encoding"]))
    assert ("iso-2022-jp", "7bit") in seen
    assert ("iso-2022-jp", "quoted-printable") in seen
    assert ("shift_jis", "base64") in seen
    assert ("utf-8", "base64") in seen
    outlook = email.message_from_bytes(samples["order_shibuya"])
    assert outlook["X-Mailer"] == "Microsoft Outlook 16.0"
    assert outlook.get_content_type() == "multipart/mixed"
    assert outlook.get_payload(0).get_content_type() == "multipart/alternative"
    assert b"=?iso-2022-jp?B?" in samples["order_shibuya"]
    assert b"=?Shift_JIS?B?" in samples["cancellation"]
    # Windows writes CP932 under the Shift_JIS label: ㈱ is not in Shift_JIS proper
    assert "㈱USEN 吉祥寺支店" in plain_text(email.message_from_bytes(samples["cancellation"]))


def test_body_items(samples: dict[str, bytes]) -> None:
    def text(name: str) -> str:
        return plain_text(email.message_from_bytes(samples[name]))

    shibuya = text("order_shibuya")
    for line in ["顧客CD：988776654", "店舗名：カフェ・ド・ソレイユ 渋谷店", "リンク品使用：無",
                 "SPOT Plus該当：無", "送付支店名：渋谷支店", "担当者名：鈴木 一郎"]:
        assert line in shibuya.splitlines()
    assert "備考 : 親1台、子2台（2F・3F客室フロアに子機設置）" in text("order_multi_units")
    assert "SPOT Plus該当 : 有" in text("order_multi_units")
    assert "顧客CD　988123456" in text("order_fullwidth").splitlines()
    assert "変更内容：店舗名変更" in text("contract_change")
    assert "理由：閉店後" in text("router_not_removed")
    relocation = text("relocation")
    assert "移設先：神奈川県" in relocation and "移設先回線種別：フレッツ光ネクスト" in relocation
    assert "解約日：" in text("termination") and "解約日：" in text("termination_withdrawal")
    assert "登録通知書" in text("registration_notice")
    resub = text("order_resubmission")
    assert "> 件名：USEN SPOT 器材発注依頼_976543210" in resub
    assert "顧客CD：976543210" in resub.splitlines()
    forwarded = text("order_forwarded")
    assert "件名: USEN SPOT 器材発注依頼_965432107" in forwarded
    assert "顧客CD：965432107" in forwarded.splitlines()
    assert "顧客CD：98877665" in text("order_8digit").splitlines()
    assert "顧客CD：954320018" in text("order_no_code").splitlines()
    msg = email.message_from_bytes(samples["order_resubmission"])
    assert msg["In-Reply-To"] and msg["In-Reply-To"] in msg["References"]


def test_pdf_attachments_open_only_with_the_password(samples: dict[str, bytes]) -> None:
    found = {}
    for name, data in samples.items():
        for filename, pdf in pdfs(email.message_from_bytes(data)):
            found[name] = filename
            with pytest.raises(pikepdf.PasswordError):
                pikepdf.open(io.BytesIO(pdf))
            with pytest.raises(pikepdf.PasswordError):
                pikepdf.open(io.BytesIO(pdf), password="wrong")
            with pikepdf.open(io.BytesIO(pdf), password="uspot") as doc:
                assert doc.is_encrypted
                assert doc.encryption.R == 6
                assert len(doc.pages) == 1
    assert set(found) == WITH_APPLICATION | {"termination"}
    assert found["order_shibuya"] == "申込書_988776654.pdf"
    assert found["order_8digit"] == "申込書_98877665.pdf"
    assert found["termination"] == "解約申請書_910987654.pdf"
    raw = samples["order_shibuya"]
    assert b"filename*=utf-8''%E7%94%B3%E8%BE%BC%E6%9B%B8_988776654.pdf" in raw  # RFC 2231


def test_pdf_makers_are_used_when_given() -> None:
    asked: list[tuple[str, str]] = []

    def application(code: str) -> bytes:
        asked.append(("application", code))
        return b"%PDF-1.7 application " + code.encode()

    def termination(code: str) -> bytes:
        asked.append(("termination", code))
        return b"%PDF-1.7 termination " + code.encode()

    mails = dict(sample_mails(NOW, application_pdf=application, termination_pdf=termination))
    assert ("termination", "910987654") in asked
    assert ("application", "954320018") in asked  # no code in the subject: the body's code
    assert len(asked) == len(WITH_APPLICATION) + 1
    [(filename, pdf)] = pdfs(email.message_from_bytes(mails["order_shibuya"]))
    assert pdf == b"%PDF-1.7 application 988776654"
    assert not pdfs(email.message_from_bytes(mails["order_no_pdf"]))


def test_sample_catalog_is_consistent() -> None:
    kinds = {info.kind for info in SAMPLES.values()}
    assert set(Kind) <= kinds  # every kind appears at least once
    for name, info in SAMPLES.items():
        if info.code is not None:
            assert info.code in info.subject.translate(str.maketrans("０１２３４５６７８９", "0123456789"))


def test_samples_classify_as_they_claim(samples: dict[str, bytes]) -> None:
    from mailbot.classify import classify
    from mailbot.message import parse_mail

    rules = Path(__file__).resolve().parent.parent / "rules"
    for name, data in samples.items():
        info = SAMPLES[name]
        parsed = parse_mail(data)
        assert parsed.subject == info.subject, name
        if info.kind is None:  # machine mails: recognised by their headers, not the subject
            continue
        got = classify(parsed.subject, rules)
        assert (got.kind, got.code) == (info.kind, info.code), name
        assert got.resubmission == (name == "order_resubmission"), name
