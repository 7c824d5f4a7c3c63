"""Attachment checks that need no PDF contents: the required form is there and is a PDF."""

from __future__ import annotations

from mailbot.checks.base import CheckContext
from mailbot.extract import documents, is_pdf
from mailbot.model import Finding, Request
from mailbot.rules import load_rules


def parts_readable(request: Request, ctx: CheckContext) -> list[Finding]:
    """A broken MIME structure lost an attachment: the request cannot be judged without it."""
    lost = request.mail.lost_parts
    return [Finding("MAIL_UNREADABLE", "; ".join(lost), stop=True)] if lost else []


# How a branch would call a file that came without a name, by its type.
_FILE_KINDS = (("image/", "画像"), ("application/zip", "ZIP圧縮ファイル"), ("application/x-zip", "ZIP圧縮ファイル"),
               ("application/vnd.ms-excel", "Excelファイル"), ("application/vnd.openxmlformats-officedocument.spreadsheetml",
                                                            "Excelファイル"),
               ("application/msword", "Wordファイル"), ("application/vnd.openxmlformats-officedocument.wordprocessingml",
                                                      "Wordファイル"))


def _described(content_type: str) -> str:
    return next((name for prefix, name in _FILE_KINDS if content_type.startswith(prefix)), "名前のないファイル")


def required_attachment(request: Request, ctx: CheckContext) -> list[Finding]:
    kind = request.classification.kind.value
    if request.child_unit_order:
        return []  # the customer exists: a child unit comes without a new application form
    if load_rules(ctx.rules_dir).requests.attachment.get(kind) != "required":
        return []
    docs = documents(request)
    if any(is_pdf(a) for a in docs):
        return []
    if docs:
        names = "、".join(a.filename or _described(a.content_type) for a in docs)
        return [Finding("ATTACHMENT_NOT_PDF", names)]
    return [Finding("ATTACHMENT_MISSING")]
