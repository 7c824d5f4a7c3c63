"""demo/: the sample morning the embedded default, the tests and the benchmarks use.  Its mails
are made by one small producer per sample; the bytes they make are pinned here (with fixed
stand-ins for the forms, whose AES encryption draws random salts), so a regrouping of the
producers cannot change the demo or the tests' mails unnoticed."""

from __future__ import annotations

import hashlib

from demo import samples
from demo.samples import SAMPLES, sample_directory, sample_extract, sample_mails
from test_loop import NOW

# sha256 over every (name, bytes) of sample_mails(NOW), then the extract and the directory.
PINNED = "fb7176e894345e015d876ab1283b73bf9c20381026e1857e245801a788144dd4"


def test_the_sample_morning_is_byte_for_byte_what_it_was():
    h = hashlib.sha256()
    mails = sample_mails(NOW, application_pdf=lambda code: b"%PDF-app " + code.encode(),
                         termination_pdf=lambda code: b"%PDF-term " + code.encode())
    for name, data in mails:
        h.update(name.encode() + b"\0" + data)
    h.update(sample_extract(NOW))
    h.update(sample_directory())
    assert h.hexdigest() == PINNED


def test_one_producer_per_sample_in_the_order_of_the_morning():
    names = [p.__name__.removeprefix("_sample_") for p in samples._PRODUCERS]
    assert names == list(SAMPLES)
    assert [name for name, _ in sample_mails(NOW)] == names
