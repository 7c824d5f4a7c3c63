"""mailbot: the USEN SPOT office center's mailbox automation."""

__version__ = "0.1.0"
