"""Held mail: durable local storage (encryption and the digest come with the quarantine)."""
