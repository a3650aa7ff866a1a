"""The console's pure parts: message preview, settings checks, USB reports, chart."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.smtp.tls import make_self_signed
from gateway.testing import TIMEOUT, FakeResolver, config_for_tests
from gateway.web import health
from gateway.web.chart import bar_chart
from gateway.web.preview import build_preview, html_to_text
from gateway.web.usb import list_reports


def test_html_becomes_text_without_scripts_styles_or_tags() -> None:
    text = html_to_text("<html><head><title>t</title><style>x{}</style></head><body>"
                        "<script>evil()</script><p>Bonjour&nbsp;<b>Mme</b> Durand</p>"
                        "<ul><li>un</li><li>deux</li></ul>"
                        '<a href="https://exemple.fr/x">lien</a><img alt="logo" src="y">'
                        "</body></html>")
    assert "evil" not in text and "x{}" not in text and "<" not in text
    assert "Bonjour\xa0Mme Durand" in text
    assert "un\ndeux" in text
    assert "lien [https://exemple.fr/x]" in text and "[image : logo]" in text


def test_preview_without_content_shows_only_technical_fields_and_types() -> None:
    msg = EmailMessage()
    msg["From"] = "camille@cabinet-kine.fr"
    msg["To"] = "patient@gmail.com"
    msg["Subject"] = "Bilan Mme Durand"
    msg.set_content("lombalgie")
    msg.add_attachment(b"%PDF-1.4\n%\xe2\xe3\n", maintype="application", subtype="pdf",
                       filename="bilan-durand.pdf")
    hidden = build_preview(msg.as_bytes(), content=False)
    shown = dict(hidden.headers)
    assert "Subject" not in shown and "To" not in shown and shown["From"]
    assert hidden.text == ""
    assert [(a.filename, a.true_type) for a in hidden.attachments] == [
        ("(masqué)", "application/pdf")]
    full = build_preview(msg.as_bytes())
    assert dict(full.headers)["Subject"] == "Bilan Mme Durand"
    assert full.text.strip() == "lombalgie"
    assert full.attachments[0].filename == "bilan-durand.pdf"


def test_preview_of_bytes_that_are_no_message_is_not_an_error() -> None:
    preview = build_preview(b"\x00\xff garbage without headers")
    assert not preview.unreadable or preview.headers == []


def test_a_large_text_is_cut() -> None:
    msg = EmailMessage()
    msg.set_content("a" * 50_000)
    preview = build_preview(msg.as_bytes())
    assert preview.truncated and len(preview.text) == 20_000


def test_certificate_check(tmp_path: Path) -> None:
    make_self_signed("vigie.test", tmp_path / "c.pem", tmp_path / "k.pem")
    check = health.check_certificate(tmp_path / "c.pem")
    assert check.status == "warn" and "auto-signé" in check.fr
    assert health.check_certificate(tmp_path / "absent.pem").status == "fail"


def test_upstream_check_says_where_it_failed(tmp_path: Path) -> None:
    cfg = config_for_tests(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg.upstream.host, cfg.upstream.port = "127.0.0.1", port
    check = asyncio.run(health.check_upstream(cfg, wait=2))
    assert check.status == "fail" and f"127.0.0.1:{port} injoignable" in check.fr


def test_dns_check_timeout_is_a_problem_and_nxdomain_an_answer() -> None:
    down = FakeResolver({"mssante.fr": [TIMEOUT]})
    assert asyncio.run(health.check_dns(down)).status == "fail"
    empty = FakeResolver({})
    assert asyncio.run(health.check_dns(empty)).status == "warn"


def test_key_check(tmp_path: Path) -> None:
    cfg = config_for_tests(tmp_path)
    assert health.check_key(cfg).status == "fail"
    key = tmp_path / "quarantine.key"
    key.write_text("x")
    key.chmod(0o644)
    assert "lisible par d'autres" in health.check_key(cfg).fr
    key.chmod(0o600)
    assert health.check_key(cfg).status == "fail"  # not a key at all
    key.write_text(base64.b64encode(os.urandom(32)).decode())
    assert health.check_key(cfg).status == "ok"


def test_key_check_fails_when_the_key_does_not_open_held_mail(tmp_path: Path) -> None:
    """A replaced key was called correct on the settings page."""
    from gateway.quarantine.service import Quarantine
    from gateway.quarantine.store import HoldMeta

    cfg = config_for_tests(tmp_path)
    q = Quarantine.open(cfg)
    q.store.hold_sync(b"Subject: x\r\n\r\ny\r\n", HoldMeta(
        direction="inbound", mail_from="a@example.org", rcpt_tos=["b@example.org"]))
    q.close()
    assert health.check_key(cfg).status == "ok"
    (tmp_path / "quarantine.key").write_text(base64.b64encode(os.urandom(32)).decode())
    check = health.check_key(cfg)
    assert check.status == "fail" and "n'ouvre pas les messages retenus" in check.fr
    cfg.quarantine.key = base64.b64encode(os.urandom(32)).decode()
    assert health.check_key(cfg).status == "fail"


def test_usb_reports_newest_first_and_tolerant(tmp_path: Path) -> None:
    assert list_reports(tmp_path / "absent") == []
    (tmp_path / "a.json").write_text(json.dumps([1, 2]))
    (tmp_path / "b.json").write_text(json.dumps({
        "mount": "/media/K", "flagged": [{"path": "x.exe", "verdict": "malicious",
                                          "findings": ["EICAR"], "moved_to": "/q/x"}]}))
    (tmp_path / "notes.txt").write_text("ignored")
    reports = {r.name: r for r in list_reports(tmp_path)}
    assert set(reports) == {"a.json", "b.json"}
    assert reports["a.json"].error
    flagged = reports["b.json"].flagged
    assert flagged[0].path == "x.exe" and flagged[0].moved and flagged[0].reasons == ["EICAR"]


def test_chart_escapes_its_labels() -> None:
    svg = bar_chart([("<b>x</b>", [3, 1])], ["reçu", "envoyé"], "titre & co")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "titre &amp; co" in svg
    assert svg.count("<rect") == 4  # two legend squares, two bars


def test_usb_report_in_the_format_vigie_usb_watch_writes(tmp_path: Path) -> None:
    (tmp_path / "20261129T090000Z-CLE.json").write_text(json.dumps({
        "format": "vigie-scan-report", "version": 1, "kind": "usb",
        "roots": ["/media/camille/CLE"], "started": "2026-11-29T09:00:00Z",
        "finished": "2026-11-29T09:00:04Z",
        "counts": {"files": 3, "bytes": 1200, "clean": 2, "malicious": 1},
        "mount": {"mount_point": "/media/camille/CLE", "device": "/dev/sdb1",
                  "label": "CLE", "fstype": "vfat"},
        "files": [
            {"path": "/media/camille/CLE/a.pdf", "relative": "a.pdf", "verdict": "CLEAN",
             "findings": []},
            {"path": "/media/camille/CLE/docs/x.pdf", "relative": "docs/x.pdf",
             "verdict": "MALICIOUS", "verdict_fr": "dangereux",
             "findings": [{"symbol": "PE_IN_PDF", "verdict": "MALICIOUS",
                           "reason": {"fr": "programme déguisé en PDF",
                                      "en": "program disguised as a PDF"}, "path": ""}],
             "quarantine": {"to": "/var/lib/vigie/q/x.pdf.quarantined"}}]}))
    (report,) = list_reports(tmp_path)
    assert report.mount == "/media/camille/CLE" and report.label == "CLE"
    assert report.started == "29/11/2026 09:00"  # UTC without a zone given
    # in the console's zone, like every other time it shows (UTC was shown as is)
    (paris,) = list_reports(tmp_path, tz=ZoneInfo("Europe/Paris"))
    assert paris.started == "29/11/2026 10:00"
    assert report.counts["malicious"] == 1
    (flagged,) = report.flagged
    assert flagged.path == "docs/x.pdf" and flagged.moved and flagged.verdict_fr == "dangereux"
    assert flagged.reasons == ["programme déguisé en PDF"]


EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _with_attachment(name: str, data: bytes, ctype: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "pj"
    msg.set_content("voir pièce jointe")
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def test_plain_text_named_or_declared_a_document_is_a_mismatch() -> None:
    """An EICAR file (plain text) sent as a PDF was shown as «text/plain», unflagged."""
    cases = [
        ("ordonnance.pdf", EICAR, "application/pdf", True),
        ("ordonnance.pdf", EICAR, "application/octet-stream", True),  # the name claims
        ("photo.jpg", b"echo hello\n" * 5, "image/jpeg", True),
        ("notes.txt", b"hello\n" * 5, "text/plain", False),
        ("data.json", b'{"a": 1}\n', "application/json", False),
        ("readme", b"hello\n" * 5, "application/octet-stream", False),
    ]
    for name, data, ctype, expected in cases:
        (att,) = build_preview(_with_attachment(name, data, ctype)).attachments
        assert att.mismatch is expected, (name, ctype, att.true_type)


def test_a_long_label_fits_inside_the_chart() -> None:
    """«Données de santé vers une messagerie non sécurisée» was cut at the left edge."""
    label = "Données de santé vers une messagerie non sécurisée"
    svg = bar_chart([(label, [3, 1]), ("Spam", [1, 0])], ["reçu", "envoyé"], "t")
    m = re.search(r'<text x="(\d+)"[^>]*text-anchor="end">' + label, svg)
    assert m is not None
    assert int(m.group(1)) >= len(label) * 7.5  # the text ends there and runs leftwards
