"""``vigie digest``, ``vigie quarantine …`` and ``vigie signal-spam …``: the quarantine
from the command line (for the IT provider, or when the console is not set up).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config import Config, load
from gateway.quarantine import actions, digest, signal_spam
from gateway.quarantine.display import visible
from gateway.quarantine.reasons import CATEGORY_TITLES
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import CATEGORIES, STATUSES, QuarantineError

EXIT_OK, EXIT_OTHER, EXIT_USAGE = 0, 1, 2


def _config(args: argparse.Namespace) -> Config:
    return load(args.config)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(cfg: Config, job: Callable[[Quarantine], Awaitable[int]]) -> int:
    async def main() -> int:
        quarantine = Quarantine.open(cfg)
        try:
            return await job(quarantine)
        finally:
            quarantine.close()

    try:
        return asyncio.run(main())
    except QuarantineError as exc:
        print(f"vigie: {exc}", file=sys.stderr)
        return EXIT_OTHER


# --- digest -----------------------------------------------------------------

def cmd_digest(args: argparse.Namespace) -> int:
    cfg = _config(args)
    hours = args.hours

    async def job(q: Quarantine) -> int:
        now = time.time()
        since = now - hours * 3600
        if args.dry_run:
            d = await digest.build(q, cfg, since=since, until=now, dry_run=True,
                                   earlier=True)
            print(d.text if not args.html else d.html)
            return EXIT_OK
        from gateway.smtp.server import Gateway

        gateway = Gateway(cfg)
        try:
            outcome = await digest.run_digest(q, cfg, gateway.hop_factory, now=now,
                                              since=since, force=args.force)
        finally:
            gateway.quarantine.close()
        print(f"{outcome.fr} ({outcome.count} message(s))\n{outcome.en}"
              + (f"\n  {outcome.code} {outcome.reply}" if outcome.code else ""))
        return EXIT_OK if outcome.sent or outcome.count == 0 else EXIT_OTHER

    return _run(cfg, job)


# --- quarantine -------------------------------------------------------------

def cmd_quarantine(args: argparse.Namespace) -> int:
    cfg = _config(args)
    tz = ZoneInfo(cfg.digest.timezone)
    cmd = args.q_cmd

    async def job(q: Quarantine) -> int:
        if cmd == "list":
            status = None if args.status == "all" else args.status
            items, total = await q.store.list(status=status, direction=args.direction,
                                              category=args.category, limit=args.limit)
            if not items:
                print("aucun message / no messages")
            for s in items:
                when = datetime.fromtimestamp(s.received_at, tz).strftime("%d/%m/%Y %H:%M")
                where = (f"→ {', '.join(s.rcpt_domains)}" if s.direction == "outbound"
                         else f"« {s.subject or ''} »")
                print(visible(f"{s.id}  {when}  {s.direction:8}  {s.status:8}  "
                              f"{CATEGORY_TITLES[s.category].fr}\n    {s.sender}  {where}\n"
                              "    " + "; ".join(r.fr for r in s.reasons)))
            if total > len(items):
                print(f"… {total - len(items)} de plus / more (--limit)")
            return EXIT_OK
        result: actions.ActionResult
        if cmd == "release":
            from gateway.smtp.server import Gateway

            gateway = Gateway(cfg)
            try:
                result = await actions.release(q, args.id, actions.gateway_hops(gateway),
                                               _who())
            finally:
                gateway.quarantine.close()
        elif cmd == "delete":
            result = await actions.delete(q, args.id, _who())
        elif cmd == "allow":
            result = await actions.allow_sender(q, args.id, _who())
        elif cmd == "report":
            result = await signal_spam.report_held(q, cfg, args.id, _who())
        else:  # purge
            count = await q.purge_expired()
            print(f"{count} message(s) effacé(s) (plus de {q.retention_days} jours) / purged")
            return EXIT_OK
        print(result.text + (f"\n  {result.reply}" if result.reply else ""))
        return EXIT_OK if result.ok else EXIT_OTHER

    return _run(cfg, job)


# --- signal-spam ------------------------------------------------------------

def cmd_signal_spam(args: argparse.Namespace) -> int:
    cfg = _config(args)
    login = password = ""
    if args.ss_cmd == "login":  # asked before the event loop starts
        login = args.login or input("Identifiant Signal Spam / login: ").strip()
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("Mot de passe / Password: ")
        if not login or not password:
            print("vigie: identifiant et mot de passe obligatoires / login and password "
                  "required", file=sys.stderr)
            return EXIT_USAGE

    async def job(q: Quarantine) -> int:
        if args.ss_cmd == "login":
            result = await signal_spam.SignalSpamClient.from_config(
                cfg, (login, password)).check_credentials() if args.check else None
            if result is not None and not result.ok:
                print(f"{result.fr}\n{result.en}", file=sys.stderr)
                return EXIT_OTHER
            await signal_spam.save_credentials(q, login, password, _who())
            print("identifiants Signal Spam enregistrés (chiffrés) / Signal Spam login saved "
                  "(encrypted)")
            return EXIT_OK
        if args.ss_cmd == "logout":
            await q.secrets.delete(signal_spam.SECRET_NAME)
            print("identifiants Signal Spam effacés / Signal Spam login removed")
            return EXIT_OK
        creds = await signal_spam.load_credentials(q)
        result = await signal_spam.SignalSpamClient.from_config(cfg, creds).check_credentials()
        if result.ok:
            print("identifiants Signal Spam valides / Signal Spam login OK")
        else:
            print(f"{result.fr}\n{result.en}")
        return EXIT_OK if result.ok else EXIT_OTHER

    return _run(cfg, job)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``digest``, ``quarantine`` and ``signal-spam`` to the ``vigie`` parser."""
    d = sub.add_parser("digest", parents=[common],
                       help="résumé quotidien des messages retenus / daily digest")
    g = d.add_mutually_exclusive_group(required=True)
    g.add_argument("--now", action="store_true", help="l'envoyer maintenant / send it now")
    g.add_argument("--dry-run", action="store_true",
                   help="l'afficher sans l'envoyer / print it, send nothing")
    d.add_argument("--html", action="store_true", help="avec --dry-run : la version HTML")
    d.add_argument("--hours", type=float, default=24.0,
                   help="période couverte, en heures (24) / hours covered")
    d.add_argument("--force", action="store_true",
                   help="envoyer même sans message retenu / send even when empty")
    d.set_defaults(func=cmd_digest)

    q = sub.add_parser("quarantine", parents=[common],
                       help="messages retenus / held messages")
    qsub = q.add_subparsers(dest="q_cmd", required=True)
    ql = qsub.add_parser("list", parents=[common], help="lister / list")
    ql.add_argument("--status", choices=[*STATUSES, "all"], default="held")
    ql.add_argument("--direction", choices=["inbound", "outbound"])
    ql.add_argument("--category", choices=list(CATEGORIES))
    ql.add_argument("--limit", type=int, default=50)
    for name, text in (("release", "libérer / release"), ("delete", "supprimer / delete"),
                       ("allow", "toujours autoriser l'expéditeur / always allow the sender"),
                       ("report", "signaler à Signal Spam / report to Signal Spam")):
        p = qsub.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
    qsub.add_parser("purge", parents=[common],
                    help="effacer ce qui dépasse la durée de conservation / purge old mail")
    q.set_defaults(func=cmd_quarantine)

    s = sub.add_parser("signal-spam", parents=[common], help="compte Signal Spam / account")
    ssub = s.add_subparsers(dest="ss_cmd", required=True)
    sl = ssub.add_parser("login", parents=[common],
                         help="enregistrer l'identifiant (chiffré) / save the login (encrypted)")
    sl.add_argument("--login")
    sl.add_argument("--password-stdin", action="store_true")
    sl.add_argument("--check", action="store_true",
                    help="vérifier auprès de Signal Spam d'abord / check with Signal Spam first")
    ssub.add_parser("check", parents=[common],
                    help="vérifier l'identifiant enregistré / check the saved login")
    ssub.add_parser("logout", parents=[common], help="effacer / remove")
    s.set_defaults(func=cmd_signal_spam)
