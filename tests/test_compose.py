"""The bot writes its replies and notes byte by byte (mailbot.message.compose): every field reads
back as what was written, in any mail client's parser, and no line passes the limits."""

from email import message_from_bytes
from email.policy import default

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.message.addresses import address_list
from mailbot.message.compose import address_field, base64_text, header_field

# Text as a branch's names and subjects have it: Japanese, full-width and ASCII, with specials.
TEXT = st.text(alphabet=st.sampled_from(list("USEN SPOT 株式会社福岡支店営業課「」（）・ー－〜①ｱｲｳ\"\\,.;:<>@()[]abc123")),
               min_size=1, max_size=120).map(lambda s: " ".join(s.split()))


def read_back(head: bytes) -> object:
    return message_from_bytes(head + b"\r\n", policy=default)


def lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_a_field_reads_back_as_written(value):
    data = header_field("Subject", value)
    assert read_back(data)["Subject"] == value
    assert data.isascii()
    # Only an ASCII word longer than a line cannot be folded.
    assert all(len(line) <= 78 for line in lines(data)) or max(len(w) for w in value.split(" ")) > 60


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TEXT | st.just(""), st.sampled_from(["a.tanaka@usen.co.jp", "fukuoka@usen.co.jp",
                                                                "o'brien+x@branch.usen.co.jp"])),
                min_size=1, max_size=6))
def test_an_address_list_reads_back_as_written(pairs):
    data = address_field("To", pairs)
    # The bot's own reader (it reads its replies back when a branch answers one) …
    assert [(a.name, a.addr) for a in address_list([data.decode()[4:]])] == pairs
    # … and the stdlib's, which keeps a space between adjacent encoded words of a display name
    # (RFC 2047 6.2 says to drop it; mail clients do).
    got = read_back(data)["To"].addresses
    assert [(a.display_name.replace(" ", ""), a.addr_spec) for a in got] == [(d.replace(" ", ""), a) for d, a in pairs]
    assert data.isascii() and all(len(line) <= 998 for line in lines(data))


def test_long_ascii_fields_fold_at_spaces():
    refs = " ".join(f"<{i:04d}.reference.message.id@branch-mail.usen.co.jp>" for i in range(10))
    data = header_field("References", refs)
    assert data.count(b"\r\n ") == 9 and max(len(line) for line in lines(data)) <= 78
    assert str(read_back(data)["References"]) == refs


def test_japanese_sender_name_in_words_of_at_most_75_characters():
    name = "USEN SPOT 事務センター 福岡支店営業第二課 担当 山田太郎（代理：佐藤花子）" * 2
    data = address_field("From", [(name, "spot-office@usen.co.jp")])
    words = [w for w in data.decode().replace("\r\n", " ").split() if w.startswith("=?")]
    assert len(words) > 1 and all(len(w) <= 75 for w in words)
    assert address_list([data.decode()[6:]])[0].name == name


def test_base64_text_is_crlf_lines_of_76():
    text = "お世話になっております。\n" * 40
    data = base64_text(text)
    assert all(len(line) <= 76 for line in lines(data)) and data.endswith(b"\r\n")
    import base64
    assert base64.b64decode(data).decode("utf-8") == text
