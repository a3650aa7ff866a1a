"""Checks: glue and I/O around the pure detectors; each returns findings only."""

from __future__ import annotations

from gateway.checks.attachments import AttachmentCheck
from gateway.checks.hygiene import HygieneCheck
from gateway.checks.impersonation import ImpersonationCheck
from gateway.checks.patient_data import PatientDataCheck
from gateway.checks.sender_auth import SenderAuthCheck
from gateway.config import Config
from gateway.dns import DnsPythonResolver, Resolver
from gateway.pipeline import Check


def default_checks(cfg: Config, *, resolver: Resolver | None = None) -> list[Check]:
    """The checks a gateway built from this config runs on every message (each says
    which directions it looks at; the pipeline runs only those)."""
    checks: list[Check] = [HygieneCheck(max_header_size=cfg.limits.header_size)]
    if cfg.patient_data.enabled:
        checks.append(PatientDataCheck.from_config(cfg))
    if cfg.scan.enabled:
        checks.append(AttachmentCheck.from_config(cfg))
    resolver = resolver if resolver is not None else DnsPythonResolver(cfg.dns)
    checks.append(SenderAuthCheck(cfg, resolver))
    checks.append(ImpersonationCheck.from_config(cfg, resolver))
    return checks


__all__ = ["AttachmentCheck", "HygieneCheck", "ImpersonationCheck", "PatientDataCheck",
           "SenderAuthCheck", "default_checks"]
