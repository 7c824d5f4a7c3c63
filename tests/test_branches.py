"""The branch directory: encodings, name and member lookups, the requesting branch, errors."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from mailbot.reference.branches import Branch, BranchDirectory, BranchError

CSV = """支店名,支店長メール,所属メール,法人営業
渋谷支店,m-tanaka@usen.co.jp,i-suzuki@usen.co.jp;y-okada@usen.co.jp,
新宿支店,k-ito@usen.co.jp,h-sato@usen.co.jp; K-Watanabe@usen.co.jp ,0
横浜支店,s-nakamura@usen.co.jp,s-yamamoto@usen.co.jp;s-kondo@usen.co.jp;k-area@usen.co.jp,
法人営業部,h-houjin@usen.co.jp,c-corp@usen.co.jp;k-area@usen.co.jp,1
ＵＳＥＮ 青山支店,k-takahashi@usen.co.jp,m-uchida@usen.co.jp,
"""


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "branches.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    return path


@pytest.fixture
def directory(tmp_path: Path) -> BranchDirectory:
    return BranchDirectory.load(write(tmp_path, CSV))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_encodings(tmp_path, encoding):
    d = BranchDirectory.load(write(tmp_path, CSV, encoding))
    assert [b.name for b in d] == ["渋谷支店", "新宿支店", "横浜支店", "法人営業部", "ＵＳＥＮ 青山支店"]
    shibuya = d.by_name("渋谷支店")
    assert shibuya == Branch("渋谷支店", "m-tanaka@usen.co.jp", ("i-suzuki@usen.co.jp", "y-okada@usen.co.jp"),
                             False, 2)
    assert d.by_name("法人営業部").corporate and not d.by_name("新宿").corporate


def test_columns_in_any_order_with_extras(tmp_path):
    text = "備考,法人営業,所属メール,支店名,支店長メール\nx,,a@usen.co.jp,梅田支店,b@usen.co.jp\n"
    d = BranchDirectory.load(write(tmp_path, text, "cp932"))
    assert d.by_name("梅田").manager == "b@usen.co.jp" and d.by_member("a@usen.co.jp").name == "梅田支店"


@pytest.mark.parametrize("name", ["渋谷支店", "渋谷", " 渋谷 支店 ", "渋谷　支店", "渋谷支店\u3000"])
def test_by_name_normalised(directory, name):
    assert directory.by_name(name).name == "渋谷支店"


def test_by_name_width_and_case(directory):
    assert directory.by_name("USEN青山").name == "ＵＳＥＮ 青山支店"
    assert directory.by_name("usen 青山支店").name == "ＵＳＥＮ 青山支店"
    assert directory.by_name("渋谷店") is None
    assert directory.by_name("池袋支店") is None
    assert directory.by_name("") is None and directory.by_name(None) is None
    assert directory.by_name("支店") is None


def test_by_member(directory):
    assert directory.by_member("i-suzuki@usen.co.jp").name == "渋谷支店"
    assert directory.by_member("I-Suzuki@USEN.co.jp").name == "渋谷支店"
    assert directory.by_member("鈴木 一郎 <I-SUZUKI@usen.co.jp>").name == "渋谷支店"
    assert directory.by_member("k-watanabe@usen.co.jp").name == "新宿支店"  # padded, mixed case in the file
    assert directory.by_member("m-tanaka@usen.co.jp").name == "渋谷支店"  # the manager belongs too
    assert directory.by_member("k-area@usen.co.jp") is None  # in two branches
    assert [b.name for b in directory.branches_of("k-area@usen.co.jp")] == ["横浜支店", "法人営業部"]
    assert directory.by_member("someone@example.com") is None and directory.by_member("") is None
    assert directory.is_corporate("c-corp@usen.co.jp") and not directory.is_corporate("i-suzuki@usen.co.jp")


def test_requesting_branch(directory):
    rb = directory.requesting_branch
    # 1. the body's 送付支店名 decides, whoever sends and whatever UNIS says
    assert rb("新宿支店", "i-suzuki@usen.co.jp", "横浜支店").name == "新宿支店"
    assert rb("新宿", "nobody@usen.co.jp", None).name == "新宿支店"
    assert rb("池袋支店", "i-suzuki@usen.co.jp", "渋谷支店") is None  # named but unknown: BRANCH_UNKNOWN
    # 2. no body name: the sender's branch
    assert rb(None, "i-suzuki@usen.co.jp", "横浜支店").name == "渋谷支店"
    assert rb("  ", "Y-Okada@usen.co.jp", None).name == "渋谷支店"
    # 3. sender in no branch: UNIS 管轄支店名
    assert rb(None, "outsider@usen.co.jp", "横浜").name == "横浜支店"
    assert rb(None, "outsider@usen.co.jp", None) is None
    assert rb(None, "outsider@usen.co.jp", "札幌支店") is None
    # a sender in two branches: UNIS picks one of them, else UNIS decides
    assert rb(None, "k-area@usen.co.jp", "法人営業部").name == "法人営業部"
    assert rb(None, "k-area@usen.co.jp", "横浜支店").name == "横浜支店"
    assert rb(None, "k-area@usen.co.jp", "新宿支店").name == "新宿支店"
    assert rb(None, "k-area@usen.co.jp", None) is None


BAD = [
    ("missing column", "支店名,支店長メール,法人営業\n渋谷支店,a@usen.co.jp,\n", 1, "所属メール"),
    ("empty name", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,,\n,b@usen.co.jp,,\n", 3, "支店名"),
    ("duplicate name", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,,\n渋谷,b@usen.co.jp,,\n",
     3, "支店名"),
    ("bad manager", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,田中さん,,\n", 2, "支店長メール"),
    ("no manager", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,,a@usen.co.jp,\n", 2, "支店長メール"),
    ("bad member", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,b@usen.co.jp;c@,\n", 2, "所属メール"),
    ("bad flag", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,,はい\n", 2, "法人営業"),
    ("too few columns", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,b@usen.co.jp\n", 2, "法人営業"),
    ("too many columns", "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,,,x\n", 2, "5 (extra)"),
]


@pytest.mark.parametrize("what,text,row,column", BAD, ids=[b[0] for b in BAD])
def test_errors_name_row_and_column(tmp_path, what, text, row, column):
    path = write(tmp_path, text)
    with pytest.raises(BranchError) as e:
        BranchDirectory.load(path)
    assert (e.value.row, e.value.column) == (row, column), str(e.value)
    assert str(e.value).startswith(f"{path}: row {row}, column {column}: ")


def test_encoding_errors(tmp_path):
    path = write(tmp_path, "支店名,支店長メール,所属メール,法人営業\n渋谷支店,a@usen.co.jp,,\n", "cp932")
    path.write_bytes(path.read_bytes().replace("渋谷".encode("cp932"), b"\x85\x40"))
    with pytest.raises(BranchError) as e:
        BranchDirectory.load(path)
    assert (e.value.row, e.value.column) == (2, "支店名") and "CP932" in str(e.value)
    path.write_bytes(codecs.BOM_UTF16_LE + "支店名".encode("utf-16-le"))
    with pytest.raises(BranchError, match="UTF-16 is not supported"):
        BranchDirectory.load(path)
    with pytest.raises(BranchError, match="cannot read"):
        BranchDirectory.load(tmp_path / "absent.csv")
    with pytest.raises(BranchError, match="empty"):
        BranchDirectory.load(write(tmp_path, ""))


def test_blank_lines_are_skipped(tmp_path):
    d = BranchDirectory.load(write(tmp_path, "支店名,支店長メール,所属メール,法人営業\n\n渋谷支店,a@usen.co.jp,,\n,,,\n"))
    assert len(d) == 1 and d.by_name("渋谷").row == 3


def test_from_text_matches_the_samples():
    from demo.samples import BRANCHES
    text = "支店名,支店長メール,所属メール,法人営業\n" + "".join(
        f"{b.name},{b.manager.addr},{';'.join(m.addr for m in b.members)},{int(b.corporate)}\n" for b in BRANCHES)
    d = BranchDirectory.from_text(text)
    for b in BRANCHES:
        for m in b.members:
            assert d.requesting_branch(None, m.addr, None).manager == b.manager.addr
