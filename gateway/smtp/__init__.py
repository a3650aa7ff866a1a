"""The SMTP front door: listeners, per-command hooks and the relay to the next hop."""
