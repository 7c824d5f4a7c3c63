"""Japanese text helpers, each written once, and the one time zone the office works in."""

from __future__ import annotations

from zoneinfo import ZoneInfo

# Every time a person reads (received times, business days, digests, logs) is Japan time.
TOKYO = ZoneInfo("Asia/Tokyo")
