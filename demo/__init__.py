"""Sample mails, forms and reference data for the embedded default (`mailbot poll` without a
configuration), the tests and the benchmarks.  The product never imports this package; only the
embedded default's first poll (mailbot.cli) seeds its local mailbox from it."""
