"""An HTML body as readable text: script and style dropped, a line per <br> and per block."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")
_SKIPPED_TAGS = frozenset({"script", "style", "title", "template"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "tr", "li", "ul", "ol", "dl", "dt", "dd", "table", "blockquote", "pre",
        "hr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
        "address", "form", "fieldset", "center", "body",
    }
)


class _HtmlText(HTMLParser):
    """Readable text of an HTML body: script/style dropped, a line per <br>, and block elements
    (<p>, <div>, <tr> …) on lines of their own. <p> gets no blank line: Outlook writes every
    line as a <p class=MsoNormal>, and an empty one (&nbsp;) already is a blank line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip = 0
        self._pre = 0
        self._line_start = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip += 1
        elif tag == "br":
            self._write("\n")
        elif tag in _BLOCK_TAGS:
            self._end_line()
        elif tag in ("td", "th"):
            self._write(" ")
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self._end_line()
        if tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre:
            data = _HTML_SPACE.sub(" ", data)
            if self._line_start and data == " ":  # indentation between tags (not &nbsp;)
                return
        self._write(data)

    def _write(self, text: str) -> None:
        if text:
            self._out.append(text)
            self._line_start = text.endswith("\n")

    def _end_line(self) -> None:
        if not self._line_start:
            self._write("\n")

    def text(self) -> str:
        return _tidy_lines("".join(self._out))


def html_to_text(html: str, notes: list[str]) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser's reaction to some malformed <![ ... ]> sections
        notes.append("HTML could not be parsed; tags stripped instead")
        return _tidy_lines(unescape(_TAG.sub("\n", html)))
    return parser.text()


def _tidy_lines(text: str) -> str:
    lines = (line.strip(" \t") for line in text.replace("\xa0", " ").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
