"""Checks: glue and I/O around the pure detectors; each returns findings only."""

from __future__ import annotations

from gateway.checks.attachments import AttachmentCheck
from gateway.checks.hygiene import HygieneCheck
from gateway.checks.patient_data import PatientDataCheck
from gateway.config import Config
from gateway.pipeline import Check


def default_checks(cfg: Config) -> list[Check]:
    """The checks a gateway built from this config runs on every message."""
    checks: list[Check] = [HygieneCheck(max_header_size=cfg.limits.header_size)]
    if cfg.patient_data.enabled:
        checks.append(PatientDataCheck.from_config(cfg))
    if cfg.scan.enabled:
        checks.append(AttachmentCheck.from_config(cfg))
    return checks


__all__ = ["AttachmentCheck", "HygieneCheck", "PatientDataCheck", "default_checks"]
