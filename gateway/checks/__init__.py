"""Checks: glue and I/O around the pure detectors; each returns findings only."""

from __future__ import annotations

from gateway.checks.hygiene import HygieneCheck
from gateway.config import Config
from gateway.pipeline import Check


def default_checks(cfg: Config) -> list[Check]:
    """The checks a gateway built from this config runs on every message."""
    return [HygieneCheck(max_header_size=cfg.limits.header_size)]


__all__ = ["HygieneCheck", "default_checks"]
