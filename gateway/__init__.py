"""vigie: a mail and file screening gateway for small French health practices."""

__version__ = "0.1.0"
