"""Findings -> one Decision: forced rules first, then score thresholds.

Scores and actions come from ``rules/policy.toml`` and the config's
``[policy]`` table; nothing here names a symbol.
"""

from __future__ import annotations

import difflib
import re
import textwrap
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config import ACTIONS, Config, ConfigError
from gateway.model import Direction
from gateway.verdict import Finding, Outcome

SEVERITY = {"deliver": 0, "tag": 1, "tempfail": 2, "hold": 3, "reject": 4}


def rules_dir(cfg: Config | None = None) -> Path:
    """The folder holding the rules data (config override, else the packaged copy)."""
    if cfg is not None and cfg.rules.dir:
        return Path(cfg.rules.dir).expanduser()
    try:
        return Path(str(resources.files("gateway.rules_data")))
    except ModuleNotFoundError:  # pragma: no cover - running from a bare checkout
        return Path(__file__).resolve().parent.parent / "rules"


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: code, enhanced status code and one or more text lines."""

    code: int
    status: str
    lines: tuple[str, ...]

    def render(self, charset: str = "utf-8") -> str:
        """Multi-line SMTP reply text for aiosmtpd's push() (no trailing CRLF)."""
        # RFC 5321 4.5.3.1.5: a reply line is at most 512 octets; keep well under it
        lines = [piece for text in self.lines for line in text.splitlines()
                 for piece in ((line,) if len(line) <= 300 else textwrap.wrap(
                     line, 300, break_long_words=True, subsequent_indent="  "))] or [""]
        if charset == "ascii":
            lines = [to_ascii(line) for line in lines]
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            prefix = f"{self.code}{sep}{self.status} " if self.status else f"{self.code}{sep}"
            out.append((prefix + line).rstrip())
        return "\r\n".join(out)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def temporary_reply(status: str, fr: str, en: str, code: int = 451) -> Reply:
    """A 4xx reply: what happened, and that the message is still with the sender."""
    return Reply(code, status, (
        f"{fr} Le message n'est pas perdu : il reste dans votre logiciel de messagerie, "
        "qui le renverra ou que vous pourrez renvoyer dans quelques minutes.",
        f"{en} Nothing is lost: the message stays in your mail program; it will be retried, "
        "or send it again in a few minutes.",
    ))


def to_ascii(text: str) -> str:
    """Fold French typography to ASCII for clients that cannot show UTF-8 replies."""
    text = re.sub(r"«\s*", '"', re.sub(r"\s*»", '"', text))
    table = { "’": "'", "—": "-", "–": "-", "•": "*", "œ": "oe",
             "Œ": "OE", "\u00a0": " ", "\u202f": " ", "…": "..."}
    text = "".join(table.get(ch, ch) for ch in text)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return folded


@dataclass(slots=True)
class Decision:
    action: str
    reply: Reply | None
    score: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    forced_by: list[str] = field(default_factory=list)
    direction: Direction = Direction.OUTBOUND

    @property
    def symbols(self) -> list[str]:
        return sorted({f.symbol for f in self.findings if f.outcome is not Outcome.PASS})


@dataclass(frozen=True, slots=True)
class SymbolRule:
    score: float = 0.0
    action: str | None = None
    actions_by_direction: Mapping[str, str] = field(default_factory=dict)

    def action_for(self, direction: Direction) -> str | None:
        return self.actions_by_direction.get(direction.value, self.action)


class Policy:
    """Maps findings to a decision, configured from data."""

    def __init__(
        self, *, thresholds: Mapping[str, float], outcomes: Mapping[str, str],
        symbols: Mapping[str, SymbolRule], tag_subject_prefix: str, tag_header: str,
    ) -> None:
        self.thresholds = dict(thresholds)
        self.outcomes = dict(outcomes)
        self.symbols = dict(symbols)
        self.tag_subject_prefix = tag_subject_prefix
        self.tag_header = tag_header

    # --- loading -----------------------------------------------------
    @classmethod
    def load(cls, cfg: Config) -> Policy:
        path = rules_dir(cfg) / "policy.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("fichier de règles introuvable", "rules file not found",
                              file=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"syntaxe TOML incorrecte ({exc})", f"TOML syntax error ({exc})",
                              file=str(path)) from None
        known = set(dict(data.get("symbols", {})))
        for name in dict(cfg.policy.get("symbols", {})):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint_fr = f" (vouliez-vous dire {close[0]} ?)" if close else ""
                hint_en = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"symbole inconnu{hint_fr}", f"unknown symbol{hint_en}",
                                  file=cfg.source, key=f"[policy.symbols.{name}]")
        merged = _merge(data, cfg.policy)
        return cls.from_data(merged, file=str(path), override_file=cfg.source)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, file: str = "policy.toml",
                  override_file: str | None = None) -> Policy:
        def err(key: str, fr: str, en: str) -> ConfigError:
            return ConfigError(fr, en, file=f"{file}" + (f" (+ {override_file})"
                                                        if override_file else ""), key=key)

        for section in data:
            if section not in ("thresholds", "outcomes", "symbols", "tag"):
                raise err(f"[{section}]", "section inconnue (thresholds, outcomes, symbols, tag)",
                          "unknown section (thresholds, outcomes, symbols, tag)")
        thresholds: dict[str, float] = {}
        for name, value in dict(data.get("thresholds", {})).items():
            if name not in ("tag", "hold", "reject"):
                raise err(f"[thresholds] {name}", "seuil inconnu (tag, hold, reject)",
                          "unknown threshold (tag, hold, reject)")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise err(f"[thresholds] {name}", "doit être un nombre", "must be a number")
            thresholds[name] = float(value)
        outcomes: dict[str, str] = {}
        for name, value in dict(data.get("outcomes", {})).items():
            if name not in Outcome.__members__:
                raise err(f"[outcomes] {name}", "résultat inconnu", "unknown outcome")
            if value not in ACTIONS:
                raise err(f"[outcomes] {name}", f"action inconnue {value!r} ({', '.join(ACTIONS)})",
                          f"unknown action {value!r} ({', '.join(ACTIONS)})")
            if name in ("ERROR", "TEMPERROR") and value in ("deliver", "tag"):
                raise err(f"[outcomes] {name}", "un message non vérifié ne passe jamais : "
                          "tempfail, hold ou reject", "a message that could not be checked "
                          "never passes: tempfail, hold or reject")
            outcomes[name] = value
        symbols: dict[str, SymbolRule] = {}
        for name, body in dict(data.get("symbols", {})).items():
            key = f"[symbols.{name}]"
            if not isinstance(body, dict):
                raise err(key, "doit être une table", "must be a table")
            unknown = set(body) - {"score", "action", "description"}
            if unknown:
                raise err(f"{key} {sorted(unknown)[0]}", "clé inconnue (score, action)",
                          "unknown key (score, action)")
            score = body.get("score", 0.0)
            if not isinstance(score, int | float) or isinstance(score, bool):
                raise err(f"{key} score", "doit être un nombre", "must be a number")
            action = body.get("action")
            by_dir: dict[str, str] = {}
            if isinstance(action, dict):
                for direction, act in action.items():
                    if direction not in ("inbound", "outbound") or act not in ACTIONS:
                        raise err(f"{key} action", "attendu {inbound = ACTION, outbound = "
                                  "ACTION}", "expected {inbound = ACTION, outbound = ACTION}")
                    by_dir[direction] = act
                action = None
            elif action is not None and action not in ACTIONS:
                raise err(f"{key} action", f"action inconnue {action!r} ({', '.join(ACTIONS)})",
                          f"unknown action {action!r} ({', '.join(ACTIONS)})")
            symbols[name] = SymbolRule(float(score), action, by_dir)
        tag = dict(data.get("tag", {}))
        return cls(
            thresholds={"tag": 5.0, "hold": 1000.0, "reject": 15.0, **thresholds},
            outcomes=outcomes, symbols=symbols,
            tag_subject_prefix=str(tag.get("subject_prefix", "[vigie] ")),
            tag_header=str(tag.get("header", "X-Vigie-Verdict")),
        )

    # --- deciding ----------------------------------------------------
    def decide(self, findings: Iterable[Finding], direction: Direction,
               queue_id: str = "") -> Decision:
        findings = list(findings)
        action = "deliver"
        forced: list[str] = []
        score = 0.0
        for f in findings:
            if f.outcome is Outcome.PASS or f.outcome is Outcome.NONE:
                continue
            forced_action = self.outcomes.get(f.outcome.value)
            rule = self.symbols.get(f.symbol)
            if rule is not None:
                sym_action = rule.action_for(direction)
                if sym_action:
                    forced_action = _most_severe(forced_action, sym_action)
                score += rule.score
            if forced_action:
                forced.append(f.symbol)
                action = _most_severe(action, forced_action)
        for name in ("tag", "hold", "reject"):
            if score >= self.thresholds[name]:
                action = _most_severe(action, name)
        suggestions = _unique(s for f in findings for s in f.extra.get("suggestions", ()))
        decision = Decision(action=action, reply=None, score=score, findings=findings,
                            forced_by=forced, suggestions=suggestions, direction=direction)
        decision.reply = self.reply_for(decision, queue_id)
        return decision

    def explaining(self, decision: Decision) -> list[Finding]:
        """The findings that explain the decision's action (for a reply or a banner)."""
        return self._explaining(decision, decision.action)

    def _explaining(self, decision: Decision, action: str) -> list[Finding]:
        """The findings that explain ``action``: those forcing it, the details (no score,
        no action) that their checks reported beside them, and, when the score decided,
        the findings that scored."""
        hits = [f for f in decision.findings if f.outcome not in (Outcome.PASS, Outcome.NONE)]
        forcing = [f for f in hits if self._forced_action(f, decision) == action]
        checks = {f.check for f in forcing}
        details = [f for f in hits if f.check in checks and f not in forcing
                   and self._is_detail(f)]
        scoring = ([f for f in hits if (r := self.symbols.get(f.symbol)) and r.score > 0]
                   if not forcing else [])
        keep = {id(f) for f in (*forcing, *details, *scoring)}
        return [f for f in hits if id(f) in keep]

    def _forced_action(self, f: Finding, decision: Decision) -> str | None:
        rule = self.symbols.get(f.symbol)
        direction = decision.direction
        action = rule.action_for(direction) if rule else None
        by_outcome = self.outcomes.get(f.outcome.value)
        if action and by_outcome:
            return _most_severe(action, by_outcome)
        return action or by_outcome

    def _is_detail(self, f: Finding) -> bool:
        rule = self.symbols.get(f.symbol)
        return rule is None or (rule.score == 0 and not rule.action and
                                not rule.actions_by_direction)

    def reply_for(self, decision: Decision, queue_id: str) -> Reply | None:
        if decision.action == "reject":
            hits = self._explaining(decision, "reject")
            fr = [r.fr for f in hits for r in f.reasons]
            en = [r.en for f in hits for r in f.reasons]
            return Reply(550, "5.7.1", (
                "Message refusé par vigie, la passerelle de sécurité du cabinet :",
                *(f"- {line}" for line in _unique(fr)),
                "Votre message n'a pas été envoyé ; il est toujours dans votre logiciel.",
                "---",
                "Message refused by vigie, the practice's security gateway:",
                *(f"- {line}" for line in _unique(en)),
                "Your message was not sent; it is still in your mail program.",
            ))
        if decision.action == "tempfail":
            hits = self._explaining(decision, "tempfail")
            errors = [f.symbol for f in hits if f.outcome in (Outcome.ERROR, Outcome.TEMPERROR)]
            if not errors and hits:  # the policy asks for a retry on purpose
                return Reply(451, "4.7.1", (
                    *(f"- {r.fr}" for f in hits for r in f.reasons),
                    "Refus temporaire décidé par la politique du cabinet.",
                    *(f"- {r.en}" for f in hits for r in f.reasons),
                    "Temporary refusal set by the practice's policy.",
                ))
            detail = f" ({', '.join(_unique(errors))})" if errors else ""
            return temporary_reply("4.3.0", f"Vérification temporairement impossible{detail}.",
                                   f"Temporarily unable to check this message{detail}.")
        if decision.action == "hold":
            return Reply(250, "2.0.0", (
                f"Message reçu et retenu pour vérification par vigie (id {queue_id}).",
                f"Message accepted and held for review by vigie (id {queue_id}).",
            ))
        return None


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _most_severe(a: str | None, b: str) -> str:
    if a is None:
        return b
    return a if SEVERITY[a] >= SEVERITY[b] else b


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
