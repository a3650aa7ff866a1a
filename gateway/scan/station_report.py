"""Scan reports written to disk: the JSON machine report and one self-contained French
HTML page made from it (no external asset, every name escaped: names are chosen by
whoever filled the key). The web console lists the same JSON files.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from gateway.quarantine.folder import durable_write_file
from gateway.scan.station import VERDICT_FR

COUNT_ROWS = (  # (key, French label, English label)
    ("files", "Fichiers analysés", "files scanned"),
    ("bytes", "Octets", "bytes"),
    ("clean", "Propres", "clean"),
    ("suspicious", "Suspects", "suspicious"),
    ("malicious", "Dangereux", "malicious"),
    ("not_inspected", "Non inspectés", "not inspected"),
    ("errors", "Erreurs", "errors"),
    ("skipped", "Ignorés", "skipped"),
)


def human_size(n: float) -> str:
    """1 234 567 -> '1,2 Mo' (French units, decimal comma)."""
    for unit in ("o", "ko", "Mo", "Go"):
        if n < 1000 or unit == "Go":
            text = f"{n:.0f} {unit}" if unit == "o" else f"{n:.1f} {unit}"
            return text.replace(".", ",")
        n /= 1000
    return f"{n:.1f} To".replace(".", ",")  # pragma: no cover


def local_time(iso: str) -> str:
    """'2026-11-29T14:21:50Z' -> '29/11/2026 15:21:50 (CET)', in the box's time zone."""
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    return when.strftime("%d/%m/%Y %H:%M:%S (%Z)")


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".", ",")
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes} min {sec:02d} s"


_TEMPLATE = """<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>vigie — rapport d'analyse{% if mount %} de la clé {{ mount.label }}{% endif %}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em}
.verdict{padding:1em;border-radius:.4em;font-size:1.15em;font-weight:bold}
.ok{background:#e3f4e1;color:#1d5e1a} .bad{background:#fbe2e0;color:#8a1c12}
.warn{background:#fff3d6;color:#6b4a00}
table{border-collapse:collapse;margin:.5em 0;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.n{text-align:right;white-space:nowrap}
.counts{width:auto} .path{font-family:monospace;word-break:break-all}
.MALICIOUS{color:#8a1c12;font-weight:bold} .SUSPICIOUS{color:#a35200;font-weight:bold}
.NOT_INSPECTED,.ERROR{color:#6b4a00} small,.en{color:#666}
</style>
</head>
<body>
<h1>Rapport d'analyse vigie{% if mount %} — clé « {{ mount.label }} »{% endif %}</h1>
<p class="en">vigie scan report</p>
{% if flagged %}
<p class="verdict bad">{{ flagged|length }} fichier(s) à risque trouvé(s){% if counts.quarantined %}, {{ counts.quarantined }} mis de côté{% endif %}{% if kept %} dont {{ kept|length }} copié(s) seulement : l'original est resté en place{% endif %}. Ne les ouvrez pas.<br><span class="en">{{ flagged|length }} risky file(s) found{% if kept %}, {{ kept|length }} copied into the quarantine but still in place{% endif %}. Do not open them.</span></p>
{% elif counts.not_inspected or counts.errors or report.interrupted %}
<p class="verdict warn">Rien de dangereux trouvé, mais l'analyse n'est pas complète (voir ci-dessous).<br><span class="en">Nothing dangerous found, but the scan is not complete (see below).</span></p>
{% else %}
<p class="verdict ok">Aucun fichier dangereux trouvé.<br><span class="en">No dangerous file found.</span></p>
{% endif %}
<table class="counts">
<tr><th>Analysé / scanned</th><td class="path">{% for r in report.roots %}{{ r }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
{% if mount %}<tr><th>Support / medium</th><td class="path">{{ mount.label }} ({{ mount.device }}, {{ mount.fstype }}) monté sur {{ mount.mount_point }}</td></tr>{% endif %}
<tr><th>Début / started</th><td>{{ when(report.started) }}</td></tr>
<tr><th>Fin / finished</th><td>{{ when(report.finished) }}{% if report.interrupted %} — <strong>interrompue / interrupted</strong>{% endif %}</td></tr>
{% for key, fr, en in rows %}<tr><th>{{ fr }} <small>/ {{ en }}</small></th><td class="n">{% if key == "bytes" %}{{ size(counts[key]) }}{% else %}{{ counts[key] }}{% endif %}</td></tr>
{% endfor %}<tr><th>Durée <small>/ duration</small></th><td class="n">{{ duration(report.duration) }}</td></tr>
{% if report.quarantine_dir %}<tr><th>Mis de côté dans <small>/ quarantine</small></th><td class="path">{{ report.quarantine_dir }} ({{ counts.quarantined }})</td></tr>{% endif %}
</table>
{% if flagged or uninspected %}
<h2>Fichiers signalés <small>/ flagged files</small></h2>
<table>
<tr><th>Fichier / file</th><th>Verdict</th><th>Pourquoi / why</th><th>Mis de côté / quarantined</th></tr>
{% for f in flagged + uninspected %}<tr><td class="path">{{ f.path }}</td><td class="{{ f.verdict }}">{{ verdict_fr(f.verdict) }}</td>
<td>{% for x in f.findings %}<div><span class="{{ x.verdict }}">{{ x.reason.fr }}</span>{% if x.path and x.path != f.path.rsplit('/', 1)[-1] %} <span class="path">({{ x.path }})</span>{% endif %}<br><span class="en">{{ x.reason.en }} [{{ x.symbol }}]</span></div>{% endfor %}</td>
<td class="path">{% if f.get("quarantine") %}{{ f.quarantine.stored }}{% if not f.quarantine.original_removed %}<br>{{ f.quarantine.detail }}{% endif %}{% elif f.get("quarantine_error") %}{{ f.quarantine_error }}{% else %}—{% endif %}</td></tr>
{% endfor %}</table>
{% endif %}
{% if errors %}
<h2>Erreurs <small>/ errors</small></h2>
<table><tr><th>Chemin / path</th><th>Problème / problem</th></tr>
{% for p in errors %}<tr><td class="path">{{ p.path }}</td><td>{{ p.fr }}{% if p.get("detail") %} ({{ p.detail }}){% endif %}<br><span class="en">{{ p.en }}</span></td></tr>
{% endfor %}</table>
{% endif %}
{% if skipped %}
<h2>Ignorés <small>/ skipped</small></h2>
<table><tr><th>Chemin / path</th><th>Raison / reason</th></tr>
{% for p in skipped %}<tr><td class="path">{{ p.path }}</td><td>{{ p.fr }}{% if p.get("detail") %} <span class="path">→ {{ p.detail }}</span>{% endif %}<br><span class="en">{{ p.en }}</span></td></tr>
{% endfor %}</table>
{% endif %}
{% if notes %}
<h2>Remarques <small>/ notes</small></h2>
<table><tr><th>Chemin / path</th><th>Remarque / note</th></tr>
{% for p in notes %}<tr><td class="path">{{ p.path }}</td><td>{{ p.fr }}{% if p.get("detail") %} <span class="path">→ {{ p.detail }}</span>{% endif %}<br><span class="en">{{ p.en }}</span></td></tr>
{% endfor %}</table>
{% endif %}
<details>
<summary>Tous les fichiers analysés ({{ report.files|length }}) <small>/ every file scanned</small></summary>
<table><tr><th>Fichier / file</th><th>Type</th><th>Taille / size</th><th>Verdict</th></tr>
{% for f in report.files %}<tr><td class="path">{{ f.path }}</td><td>{{ f.description }}</td><td class="n">{{ size(f.size) }}</td><td class="{{ f.verdict }}">{{ verdict_fr(f.verdict) }}</td></tr>
{% endfor %}</table>
</details>
<p><small>{{ report.generator }} — {{ report.host }}</small></p>
</body>
</html>
"""  # noqa: E501 (HTML lines)

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=False, lstrip_blocks=False)
_template = _env.from_string(_TEMPLATE)


def render_html(report: dict[str, Any]) -> str:
    """The French HTML page for a JSON report (``ScanRun.to_json()``)."""
    files = report.get("files", [])
    problems = report.get("problems", [])
    return _template.render(
        report=report, counts=report["counts"], mount=report.get("mount"),
        flagged=[f for f in files if f["verdict"] in ("SUSPICIOUS", "MALICIOUS")],
        uninspected=[f for f in files if f["verdict"] in ("NOT_INSPECTED", "ERROR")],
        errors=[p for p in problems if p["error"]],
        skipped=[p for p in problems if not p["error"] and not p.get("note")],
        notes=[p for p in problems if p.get("note")],
        kept=[f for f in files if f.get("quarantine")
              and not f["quarantine"].get("original_removed", True)],
        rows=COUNT_ROWS, size=human_size, duration=human_duration, when=local_time,
        verdict_fr=lambda v: VERDICT_FR.get(v, v),
    )


def write_reports(report: dict[str, Any], json_path: Path | None = None,
                  html_path: Path | None = None) -> None:
    """Write the JSON and/or HTML report durably (temp file, fsync, rename), 0600."""
    if json_path is not None:
        durable_write_file(json_path, json_dumps(report).encode("utf-8"))
    if html_path is not None:
        durable_write_file(html_path, render_html(report).encode("utf-8"))


def json_dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"
