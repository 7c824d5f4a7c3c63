"""Attachment checks that need no PDF contents: the required form is there and is a PDF."""

from __future__ import annotations

from mailbot.checks.base import CheckContext
from mailbot.extract import request_rules
from mailbot.model import Attachment, Finding, Request

_PDF_TYPES = {"application/pdf", "application/x-pdf", "application/acrobat"}
# Containers a mail client wraps around everything: not a form sent in the wrong format.
_NOT_A_DOCUMENT = {"text/plain", "text/html", "message/rfc822", "application/ms-tnef"}
_SIGNATURE_IMAGE_BYTES = 20_000


def is_pdf(attachment: Attachment) -> bool:
    if attachment.data.lstrip()[:5] == b"%PDF-":
        return True
    return attachment.content_type in _PDF_TYPES or attachment.filename.lower().endswith(".pdf")


def documents(request: Request) -> list[Attachment]:
    """Attachments that could be the form (not inline logos or forwarded mails)."""
    return [a for a in request.mail.attachments
            if a.data and a.content_type not in _NOT_A_DOCUMENT and not _is_signature_image(a)]


def _is_signature_image(attachment: Attachment) -> bool:
    # Outlook attaches signature logos as small inline images; a photographed form is larger.
    return attachment.content_type.startswith("image/") and len(attachment.data) < _SIGNATURE_IMAGE_BYTES


def required_attachment(request: Request, ctx: CheckContext) -> list[Finding]:
    kind = request.classification.kind.value
    if request_rules(ctx.rules_dir).attachment.get(kind) != "required":
        return []
    docs = documents(request)
    if any(is_pdf(a) for a in docs):
        return []
    if docs:
        names = ", ".join(a.filename or a.content_type for a in docs)
        return [Finding("ATTACHMENT_NOT_PDF", names)]
    return [Finding("ATTACHMENT_MISSING")]
