"""What goes out: replies rendered from templates (`render`), held notes for staff (`note`), and
the transports that send them (`send`: SMTP, or a local outbox Maildir)."""
