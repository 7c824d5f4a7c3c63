"""Prometheus metrics of a running bot (`[metrics] listen = "HOST:PORT"`; off unless configured).

    metrics = Metrics()                        # its own registry
    metrics.serve("127.0.0.1", 9464)           # GET /metrics
    metrics.cycle(report, seconds, store, reference)   # after each poll
    metrics.unreachable()                      # the mailbox could not be reached

Series (all `mailbot_…`; counters count since the process started):

    mailbot_mails_total{kind,decision}               mails decided
    mailbot_reasons_total{reason}                    reason codes found on decided mails
    mailbot_replies_total{outcome="sent"|"failed"}   reply send attempts
    mailbot_polls_total{result="ok"|"failed"}        poll cycles
    mailbot_poll_duration_seconds                    histogram of successful poll cycles
    mailbot_last_successful_poll_timestamp_seconds   Unix time of the last successful poll
    mailbot_held_open                                held items staff have not decided
    mailbot_unis_extract_age_seconds                 age of the UNIS extract in use (its 抽出日時)
    mailbot_mailbox_reachable                        1 after a successful poll, 0 after a failed one
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from mailbot.pipeline import CycleReport
from mailbot.record.store import Store
from mailbot.reference.data import ReferenceData


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.mails = Counter("mailbot_mails", "Mails decided", ["kind", "decision"], registry=r)
        self.reasons = Counter("mailbot_reasons", "Reason codes found on decided mails", ["reason"], registry=r)
        self.replies = Counter("mailbot_replies", "Reply send attempts", ["outcome"], registry=r)
        self.polls = Counter("mailbot_polls", "Poll cycles", ["result"], registry=r)
        self.poll_seconds = Histogram("mailbot_poll_duration_seconds", "Duration of successful poll cycles",
                                      buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.last_poll = Gauge("mailbot_last_successful_poll_timestamp_seconds",
                               "Unix time of the last successful poll", registry=r)
        self.held_open = Gauge("mailbot_held_open", "Held items staff have not decided", registry=r)
        self.unis_age = Gauge("mailbot_unis_extract_age_seconds", "Age of the UNIS extract in use", registry=r)
        self.reachable = Gauge("mailbot_mailbox_reachable", "1 after a successful poll, 0 after a failed one",
                               registry=r)
        self.server = None

    def serve(self, host: str, port: int) -> None:
        self.server, _thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def cycle(self, report: CycleReport, seconds: float, store: Store, reference: ReferenceData | None) -> None:
        for _subject, evaluation, _folder in report.handled:
            if evaluation is None:
                continue
            self.mails.labels(evaluation.classification.kind.value, evaluation.decision.action.value).inc()
            for code in dict.fromkeys(evaluation.decision.reasons):
                self.reasons.labels(code).inc()
        self.replies.labels("sent").inc(report.sent)
        self.replies.labels("failed").inc(report.send_failures)
        self.polls.labels("ok").inc()
        self.poll_seconds.observe(seconds)
        self.last_poll.set(time.time())
        self.reachable.set(1)
        self.held_open.set(store.open_held_count())
        extract = reference.extract if reference is not None else None
        info = extract.info if extract is not None else None
        if info is not None and info.extracted_at is not None:
            self.unis_age.set(max(0.0, time.time() - info.extracted_at.timestamp()))

    def unreachable(self) -> None:
        self.polls.labels("failed").inc()
        self.reachable.set(0)
