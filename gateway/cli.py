"""The ``vigie`` command: serve · user · config check · check.

Summaries are French first, English after; errors never show a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import ipaddress
import json
import logging
import os
import shutil
import ssl
import sys
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from gateway import __version__, logs
from gateway.config import Config, ConfigError, load
from gateway.detect.hygiene import header_fields
from gateway.engine import Engine
from gateway.model import Direction, Envelope, Message, split_header_body
from gateway.policy import Decision
from gateway.users import UserError, UsersFile, random_password

EXIT_OK, EXIT_OTHER, EXIT_USAGE = 0, 1, 2

ACTION_FR = {"deliver": "remise (deliver)", "tag": "remise avec marquage (tag)",
             "hold": "mise en attente (hold)", "reject": "refus (reject)",
             "tempfail": "refus temporaire (tempfail)"}


def _err(text: str) -> None:
    print(f"vigie: {text}", file=sys.stderr)


def _config(args: argparse.Namespace) -> Config:
    return load(args.config)


# --- serve ------------------------------------------------------------------

def _self_command() -> str:
    """How the user can call this very program again ('vigie', or '.venv/bin/vigie')."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "vigie" and shutil.which("vigie") != str(argv0.resolve()):
        try:
            return os.path.relpath(argv0)
        except ValueError:
            return str(argv0)
    return "vigie"


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _config(args)
    logs.setup(cfg)
    embedded = cfg.source is None
    if embedded and not cfg.inbound.listen and not any(
            k.startswith("VIGIE_INBOUND_") for k in os.environ):
        # the demo: mail for anyone@localhost on 127.0.0.1:2525, screened, into the Maildir
        cfg.inbound.listen = ["127.0.0.1:2525"]
        cfg.inbound.domains = ["localhost"]
    if cfg.auth_mode == "local":
        users = UsersFile(cfg.users_file)
        if not users.load():
            if embedded:
                password = random_password()
                users.add("demo", password, admin=True)  # may log into the console too
                cmd = _self_command()
                print("Premier démarrage : utilisateur « demo » créé pour essayer vigie.\n"
                      f"  identifiant : demo   mot de passe : {password}\n"
                      f"  (changez-le avec « {cmd} user add demo --replace », ajoutez les "
                      f"vôtres avec « {cmd} user add NOM »)\n"
                      "First start: user 'demo' created so you can try vigie "
                      f"(password above).\nUsers file: {cfg.users_file}", file=sys.stderr)
            else:
                _err("aucun utilisateur : personne ne peut envoyer ; créez-en un avec "
                     "« vigie user add NOM »\nno users yet: nobody can send; create one with "
                     "'vigie user add NAME'")
    if cfg.scan.enabled:  # broken YARA rules stop start-up before any "listening" line
        from gateway.checks.attachments import AttachmentCheck
        AttachmentCheck.from_config(cfg)
    where = (f"serveur {cfg.upstream.host}:{cfg.upstream_port}" if cfg.upstream.host
             else f"boîte locale {cfg.data_dir / 'maildir'}")
    print(f"vigie {__version__} : soumission sur {', '.join(cfg.submission.listen)} (STARTTLS)"
          f" et {', '.join(cfg.submission.listen_tls)} (TLS), relais vers {where}, "
          f"données dans {cfg.data_dir}\n"
          f"vigie {__version__}: submission on {', '.join(cfg.submission.listen)} (STARTTLS) "
          f"and {', '.join(cfg.submission.listen_tls)} (TLS)"
          + ("; Ctrl-C pour arrêter / to stop" if sys.stderr.isatty() else ""), file=sys.stderr)
    for fr, en in config_warnings(cfg):
        _err(f"attention : {fr}\nwarning: {en}")
    if cfg.web.listen:
        scheme = "https" if cfg.web.tls else "http"
        print(f"console web : {scheme}://{cfg.web.listen}/\nweb console: "
              f"{scheme}://{cfg.web.listen}/", file=sys.stderr)
    if cfg.inbound.listen:
        accepted = ", ".join([f"@{d}" for d in cfg.inbound.domains] + cfg.inbound.addresses)
        print(f"réception sur {', '.join(cfg.inbound.listen)} pour {accepted}\n"
              f"inbound on {', '.join(cfg.inbound.listen)} for {accepted}", file=sys.stderr)
    from gateway.smtp.server import serve_forever

    try:
        asyncio.run(serve_forever(cfg))
    except ssl.SSLError as exc:
        _err(f"démarrage impossible : certificat ou clé TLS illisible ({exc.reason}) — vérifiez "
             f"[tls] cert_file / key_file\ncannot start: unreadable TLS certificate or key "
             f"({exc.reason}) — check [tls] cert_file / key_file")
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL) and not \
                exc.filename:
            keys = "[submission] listen / listen_tls" + (
                " ou [inbound] listen" if cfg.inbound.listen else "")
            keys_en = keys.replace(" ou ", " or ")
            _err(f"démarrage impossible : {exc.strerror or exc} — vérifiez {keys} "
                 f"(port déjà pris, ou < 1024 sans droits ?)\ncannot start: "
                 f"{exc.strerror or exc} — check {keys_en} (port in use, or < 1024 "
                 "without the capability?)")
        else:
            where = f" : {exc.filename}" if exc.filename else ""
            _err(f"démarrage impossible{where} : {exc.strerror or exc} — vérifiez "
                 f"[storage] data_dir et les droits\ncannot start{where}: "
                 f"{exc.strerror or exc} — check [storage] data_dir and permissions")
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# --- user -------------------------------------------------------------------

def _read_password(args: argparse.Namespace) -> str:
    if args.generate:
        return random_password()
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        first = getpass.getpass("Mot de passe / Password: ")
        second = getpass.getpass("Encore / Again: ")
    except (EOFError, OSError):
        raise UserError("aucun mot de passe saisi : utilisez --password-stdin ou --generate\n"
                        "no password typed: use --password-stdin or --generate") from None
    if first != second:
        raise UserError("les deux mots de passe diffèrent\nthe two passwords differ")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    cfg = _config(args)
    users = UsersFile(cfg.users_file)
    if args.user_cmd == "add":
        users.check_name(args.name)
        if args.name in users.load() and not args.replace:
            raise UserError(f"l'utilisateur {args.name} existe déjà (--replace pour changer son "
                            f"mot de passe)\nuser {args.name} already exists (--replace to change "
                            "the password)")
        password = _read_password(args)
        users.add(args.name, password, admin=args.admin, replace=args.replace)
        print(f"utilisateur {args.name} enregistré / user {args.name} saved ({cfg.users_file})")
        if args.generate:
            print(f"mot de passe / password: {password}")
        if cfg.auth_mode == "upstream":
            print("attention : [auth] mode = \"upstream\", ces utilisateurs locaux ne servent "
                  "qu'à la console\nnote: auth mode is \"upstream\"; local users only serve "
                  "the console", file=sys.stderr)
    elif args.user_cmd == "del":
        users.delete(args.name)
        print(f"utilisateur {args.name} supprimé / user {args.name} deleted")
    else:
        found = users.load()
        if not found:
            print("aucun utilisateur / no users")
        for user in found.values():
            print(user.name + (" (admin)" if user.admin else ""))
    return EXIT_OK


# --- config check -----------------------------------------------------------

def cmd_config(args: argparse.Namespace) -> int:
    path = args.file or args.config
    cfg = load(path)
    from gateway.policy import Policy

    Policy.load(cfg)
    from gateway.checks import default_checks

    default_checks(cfg)  # loads the rules, lexicon and contacts file: their errors too
    print(f"configuration correcte / configuration OK: {cfg.source or '(valeurs par défaut)'}")
    ports = [f"{', '.join(cfg.submission.listen)} (STARTTLS)" if cfg.submission.listen else "",
             f"{', '.join(cfg.submission.listen_tls)} (TLS)" if cfg.submission.listen_tls
             else ""]
    print(f"  soumission / submission: {', '.join(p for p in ports if p)}")
    print(f"  authentification / auth: {cfg.auth_mode}")
    if cfg.upstream.host:
        print(f"  relais / upstream: {cfg.upstream.host}:{cfg.upstream_port} "
              f"({cfg.upstream.tls}, vérification {'oui' if cfg.upstream.verify else 'NON'})")
    else:
        print(f"  relais / upstream: boîte locale / local Maildir {cfg.data_dir / 'maildir'}")
    inbound = cfg.inbound
    if inbound.listen:
        accepted = ", ".join([f"@{d}" for d in inbound.domains] + inbound.addresses)
        mailbox = (f"{inbound.mailbox_host}:{inbound.mailbox_port} ({inbound.mailbox_tls})"
                   if inbound.mailbox_host else f"boîte locale / local Maildir "
                   f"{cfg.data_dir / 'maildir'}")
        print(f"  réception / inbound: {', '.join(inbound.listen)} pour / for {accepted} "
              f"-> {mailbox}")
        if inbound.trusted_relays:
            print(f"  relais de confiance / trusted relays: {', '.join(inbound.trusted_relays)}")
    else:
        print("  réception / inbound: non / no ([inbound] listen)")
    if cfg.web.listen:
        print(f"  console web / web console: {cfg.web.listen}")
    print(f"  données / data: {cfg.data_dir}")
    for fr, en in config_warnings(cfg):
        print(f"  attention : {fr}\n  warning: {en}")
    return EXIT_OK


def config_warnings(cfg: Config) -> list[tuple[str, str]]:
    """Settings that are valid but risky: said by `vigie config check` and at start-up."""
    out: list[tuple[str, str]] = []
    inbound = cfg.inbound
    if inbound.listen and inbound.proxy_protocol and not inbound.trusted_relays:
        out.append(("[inbound] proxy_protocol sans trusted_relays : n'importe quel client peut "
                    "annoncer n'importe quelle adresse (et passer SPF) ; listez le répartiteur "
                    "dans trusted_relays",
                    "[inbound] proxy_protocol without trusted_relays: any client can claim any "
                    "address (and pass SPF); list the balancer in trusted_relays"))
    for relay in inbound.trusted_relays:
        if ipaddress.ip_network(relay.strip(), strict=False).prefixlen < 16:
            out.append((f"[inbound] trusted_relays contient {relay} : un réseau aussi large "
                        "rend SPF sans valeur", f"[inbound] trusted_relays holds {relay}: so "
                        "wide a network makes SPF worthless"))
    ours = (inbound.authserv_id or cfg.hostname).lower()
    if ours in {t.lower() for t in inbound.trusted_authserv_ids}:
        out.append((f"[inbound] trusted_authserv_ids contient notre propre nom ({ours})",
                    f"[inbound] trusted_authserv_ids holds our own name ({ours})"))
    if (inbound.domains or inbound.addresses) and not inbound.listen:
        out.append(("[inbound] domains est renseigné mais listen est vide : rien n'est reçu",
                    "[inbound] domains is set but listen is empty: nothing is received"))
    return out


# --- check ------------------------------------------------------------------

def _addresses(raw: bytes, names: tuple[str, ...]) -> list[str]:
    from gateway.detect.hygiene import header_fields

    fields, _ = header_fields(split_header_body(raw)[0])
    values = [v.decode("utf-8", "replace") for n, v in fields if n in names]
    return [a for _, a in getaddresses(values) if "@" in a]


def decision_json(decision: Decision) -> dict[str, Any]:
    reply = decision.reply
    return {
        "action": decision.action,
        "reply": reply.render() if reply else
        "250 2.0.0 remis au serveur suivant / relayed to the next hop",
        "score": decision.score,
        "findings": [f.to_json() for f in decision.findings],
        "suggestions": decision.suggestions,
    }


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    logging.basicConfig(level=logging.WARNING)
    logs.quiet_libraries()
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except IsADirectoryError:
        _err(f"{args.file} est un dossier, pas un message\n{args.file} is a folder, not a "
             "message")
        return EXIT_USAGE
    except OSError as exc:
        _err(f"lecture impossible de {args.file} : {exc.strerror}\ncannot read {args.file}: "
             f"{exc.strerror}")
        return EXIT_USAGE
    if not raw.strip():
        _err(f"{args.file} est vide\n{args.file} is empty")
        return EXIT_USAGE
    # Files saved on disk usually have LF endings; SMTP gives CRLF.
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")
    if not header_fields(split_header_body(raw)[0])[0]:  # a PDF, an image, a text…
        _err(f"{args.file} n'est pas un message électronique (aucun en-tête : exportez le "
             f"message en .eml)\n{args.file} is not an e-mail message (no header fields: "
             "save the message as .eml)")
        return EXIT_USAGE
    mail_from = args.mail_from or next(iter(_addresses(raw, ("from",))), "")
    rcpts = args.rcpt or _addresses(raw, ("to", "cc"))
    if args.client_ip:
        try:
            ipaddress.ip_address(args.client_ip.strip().strip("[]"))
        except ValueError:
            _err(f"--client-ip {args.client_ip} n'est pas une adresse IP\n--client-ip "
                 f"{args.client_ip} is not an IP address")
            return EXIT_USAGE
    notes: list[str] = []
    if args.direction == Direction.OUTBOUND.value and (args.client_ip or args.helo):
        notes.append("--client-ip et --helo ne servent qu'au courrier reçu : ajoutez "
                     "--direction inbound / --client-ip and --helo are for inbound mail: add "
                     "--direction inbound")
    if args.direction == Direction.INBOUND.value and not args.client_ip:
        notes.append("sans --client-ip, SPF n'est pas évalué (l'adresse du serveur qui a remis "
                     "le message est dans son premier en-tête Received) / without --client-ip, "
                     "SPF is not evaluated")
    env = Envelope(mail_from=mail_from, rcpt_tos=rcpts, direction=Direction(args.direction),
                   mail_options=["BODY=8BITMIME"], client_ip=args.client_ip, helo=args.helo,
                   queue_id="CHECK")
    decision = asyncio.run(Engine(cfg).screen(Message(raw, env)))
    for note in notes:
        print(f"note : {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(decision_json(decision), ensure_ascii=False, indent=2))
    else:
        print(f"Décision / decision : {ACTION_FR[decision.action]} (score {decision.score:g})")
        hits = [f for f in decision.findings if f.outcome.value not in ("PASS", "NONE")]
        if hits:
            print("Constats / findings :")
        for f in hits:
            print(f"  - [{f.check}] {f.symbol} ({f.outcome.value})")
            for r in f.reasons:
                print(f"      {r.fr}\n      {r.en}")
            if f.evidence:
                print(f"      indices / evidence : {'; '.join(f.evidence)}")
        if not hits:
            print("Aucun constat / no findings")
        passed = [f for f in decision.findings if f.outcome.value == "PASS"]
        if passed:
            print("Vérifié / verified : " + ", ".join(
                f"{f.symbol} ({'; '.join(f.evidence)})" if f.evidence else f.symbol
                for f in passed))
        if decision.reply:
            print("Réponse SMTP / SMTP reply :")
            for line in decision.reply.render().split("\r\n"):
                print(f"  {line}")
    return EXIT_OK if decision.action == "deliver" else EXIT_OTHER


# --- parser -----------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the sub-command; SUPPRESS keeps a
    # sub-parser from resetting a value given earlier on the line.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                        help="fichier de configuration TOML / TOML config file")
    p = argparse.ArgumentParser(prog="vigie", parents=[common], description=(
        "vigie — passerelle de sécurité mail pour cabinets de santé / mail security gateway "
        "for health practices"))
    p.add_argument("--version", action="version", version=f"vigie {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", parents=[common], help="démarrer la passerelle / run the gateway")
    s.set_defaults(func=cmd_serve)

    u = sub.add_parser("user", parents=[common], help="utilisateurs locaux / local users")
    usub = u.add_subparsers(dest="user_cmd", required=True)
    ua = usub.add_parser("add", parents=[common], help="ajouter / add")
    ua.add_argument("name")
    ua.add_argument("--admin", action="store_true", help="accès à la console / console admin")
    ua.add_argument("--replace", action="store_true",
                    help="remplacer le mot de passe / replace the password")
    g = ua.add_mutually_exclusive_group()
    g.add_argument("--password-stdin", action="store_true",
                   help="lire le mot de passe sur l'entrée standard / read it from stdin")
    g.add_argument("--generate", action="store_true",
                   help="générer un mot de passe / generate one")
    ud = usub.add_parser("del", parents=[common], help="supprimer / delete")
    ud.add_argument("name")
    usub.add_parser("list", parents=[common], help="lister / list")
    u.set_defaults(func=cmd_user)

    c = sub.add_parser("config", parents=[common], help="configuration")
    csub = c.add_subparsers(dest="config_cmd", required=True)
    cc = csub.add_parser("check", parents=[common],
                         help="vérifier un fichier / validate a file")
    cc.add_argument("file", nargs="?")
    c.set_defaults(func=cmd_config)

    k = sub.add_parser("check", parents=[common],
                       help="que ferait vigie de ce message ? / what would vigie do?")
    k.add_argument("file", help="message .eml (- pour l'entrée standard / - for stdin)")
    k.add_argument("--direction", choices=[d.value for d in Direction],
                   default=Direction.OUTBOUND.value,
                   help="outbound : envoyé par le cabinet (défaut) ; inbound : reçu / "
                   "outbound: sent by the practice (default); inbound: received")
    k.add_argument("--mail-from", metavar="ADDRESS",
                   help="expéditeur de l'enveloppe (défaut : From) / envelope sender "
                   "(default: the From address)")
    k.add_argument("--rcpt", metavar="ADDRESS", action="append",
                   help="destinataire (répétable ; défaut : To et Cc) / recipient "
                   "(repeatable; default: To and Cc)")
    k.add_argument("--client-ip", metavar="IP",
                   help="reçu : adresse du serveur qui a remis le message (pour SPF) / "
                   "inbound: address of the server that handed the message over (for SPF)")
    k.add_argument("--helo", metavar="NAME",
                   help="reçu : nom donné par ce serveur (HELO) / inbound: the name it gave "
                   "in HELO")
    k.add_argument("--json", action="store_true",
                   help="résultat en JSON / result as JSON")
    k.set_defaults(func=cmd_check)

    # Sub-commands of other modules: each registers its own parsers.
    # --- directory (issue 4) ---
    from gateway import directory

    directory.register(sub, common)

    # --- scan, usb (issue 5) ---
    from gateway.scan.cli import register as register_scan

    register_scan(sub, common)

    # --- digest, quarantine (issue 6) ---
    from gateway.quarantine.cli import register as register_quarantine

    register_quarantine(sub, common)

    # --- web console (issue 6) ---

    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "config"):
        args.config = os.environ.get("VIGIE_CONFIG") or None
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except UserError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        where = exc.filename or ""
        _err(f"erreur de fichier {where} : {exc.strerror or exc}\nfile error {where}: "
             f"{exc.strerror or exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
