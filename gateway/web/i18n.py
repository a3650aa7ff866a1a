"""The console's words, French first, English available (``?lang=en``, a cookie, or
the browser's Accept-Language)."""

from __future__ import annotations

from typing import Literal

Lang = Literal["fr", "en"]

STRINGS: dict[str, tuple[str, str]] = {
    "app": ("vigie — console", "vigie — console"),
    "nav.held": ("Messages retenus", "Held messages"),
    "nav.dashboard": ("Tableau de bord", "Dashboard"),
    "nav.audit": ("Journal des actions", "Audit log"),
    "nav.usb": ("Clés USB", "USB keys"),
    "nav.settings": ("Vérification", "Settings check"),
    "nav.logout": ("Se déconnecter", "Log out"),
    "lang.switch": ("English", "Français"),
    "login.title": ("Connexion à la console", "Log in to the console"),
    "login.name": ("Identifiant", "User name"),
    "login.password": ("Mot de passe", "Password"),
    "login.submit": ("Se connecter", "Log in"),
    "login.failed": ("Identifiant ou mot de passe incorrect.", "Wrong user name or password."),
    "login.not_admin": (
        "Ce compte n'a pas accès à la console : seuls les administrateurs y ont accès "
        "(« vigie user add NOM --admin --replace »).",
        "This account may not use the console: administrators only "
        "('vigie user add NAME --admin --replace')."),
    "login.blocked": ("Trop d'essais manqués : réessayez dans {minutes} min.",
                      "Too many failed attempts: try again in {minutes} min."),
    "login.expired": ("Votre session a expiré : reconnectez-vous.",
                      "Your session expired: please log in again."),
    "logout.done": ("Vous êtes déconnecté.", "You are logged out."),
    "csrf.title": ("Formulaire expiré", "Form expired"),
    "csrf.text": (
        "Ce formulaire n'est plus valable (page trop ancienne, ou envoyée d'ailleurs). "
        "Rien n'a été fait. Rechargez la page et recommencez.",
        "This form is no longer valid (page too old, or sent from elsewhere). Nothing was "
        "done. Reload the page and try again."),
    "notfound.title": ("Page introuvable", "Page not found"),
    "notfound.text": ("Cette page n'existe pas, ou ce message n'est plus en attente.",
                      "This page does not exist, or this message is no longer held."),
    "error.title": ("Erreur", "Error"),
    "error.text": ("Un problème est survenu ; rien n'a été perdu. Réessayez dans un instant.",
                   "Something went wrong; nothing was lost. Try again in a moment."),
    "held.title": ("Messages retenus", "Held messages"),
    "held.none": ("Aucun message ne correspond.", "No message matches."),
    "held.count": ("{total} message(s)", "{total} message(s)"),
    "filter.direction": ("Sens", "Direction"),
    "filter.category": ("Motif", "Reason"),
    "filter.status": ("État", "Status"),
    "filter.sender": ("Expéditeur", "Sender"),
    "filter.since": ("Depuis le", "From"),
    "filter.until": ("Jusqu'au", "Until"),
    "filter.any": ("tous", "any"),
    "filter.apply": ("Filtrer", "Filter"),
    "filter.bad_date": ("Date invalide ignorée (attendu AAAA-MM-JJ).",
                        "Invalid date ignored (expected YYYY-MM-DD)."),
    "col.date": ("Date", "Date"),
    "col.direction": ("Sens", "Direction"),
    "col.sender": ("Expéditeur", "Sender"),
    "col.rcpt": ("Destinataires (domaines)", "Recipients (domains)"),
    "col.subject": ("Objet", "Subject"),
    "col.reason": ("Motif", "Reason"),
    "col.status": ("État", "Status"),
    "col.size": ("Taille", "Size"),
    "col.from": ("De (en-tête From)", "From (header)"),
    "col.envelope": ("Expéditeur de l'enveloppe", "Envelope sender"),
    "col.id": ("Identifiant", "Id"),
    "page.prev": ("← Précédents", "← Previous"),
    "page.next": ("Suivants →", "Next →"),
    "page.of": ("page {page} sur {pages}", "page {page} of {pages}"),
    "dir.inbound": ("reçu", "inbound"),
    "dir.outbound": ("envoyé", "outbound"),
    "status.held": ("en attente", "held"),
    "status.released": ("libéré", "released"),
    "status.deleted": ("supprimé", "deleted"),
    "status.reported": ("signalé", "reported"),
    "status.purged": ("purgé (durée de conservation)", "purged (retention)"),
    "cat.patient_data": ("Données de santé vers une messagerie non sécurisée",
                         "Patient data to an unsecured mailbox"),
    "cat.impersonation": ("Faux confrère suspecté", "Suspected fake colleague"),
    "cat.attachment": ("Pièce jointe dangereuse", "Dangerous attachment"),
    "cat.spam": ("Ressemble à un spam", "Spam-like"),
    "cat.other": ("Autre motif", "Other reason"),
    "msg.title": ("Message retenu", "Held message"),
    "msg.reasons": ("Pourquoi il est retenu", "Why it is held"),
    "msg.evidence": ("Indices (masqués)", "Evidence (masked)"),
    "msg.headers": ("En-têtes", "Header fields"),
    "msg.attachments": ("Pièces jointes", "Attachments"),
    "msg.no_attachments": ("Aucune pièce jointe.", "No attachment."),
    "msg.declared": ("type annoncé", "declared type"),
    "msg.true_type": ("type réel", "true type"),
    "msg.mismatch": ("le contenu ne correspond pas au type annoncé",
                     "the content does not match the declared type"),
    "msg.preview": ("Aperçu du texte", "Text preview"),
    "msg.preview_html": (
        "Texte extrait de la version HTML (jamais affichée telle quelle).",
        "Text taken from the HTML version (never displayed as such)."),
    "msg.no_text": ("Pas de texte lisible.", "No readable text."),
    "msg.truncated": ("(aperçu tronqué)", "(preview truncated)"),
    "msg.unreadable": ("Message illisible : seules les métadonnées sont affichées.",
                       "Unreadable message: only its metadata is shown."),
    "msg.raw_missing": ("Le contenu chiffré de ce message n'est plus disponible.",
                        "The encrypted content of this message is no longer available."),
    "msg.outbound_hidden": (
        "Message envoyé par le cabinet : il contient probablement des données de santé de "
        "patients. L'objet, les destinataires, les noms de fichiers et le texte ne sont "
        "affichés qu'à votre demande, et cette consultation est inscrite au journal.",
        "Mail sent by the practice: it probably holds patients' health data. The subject, "
        "recipients, file names and text are shown only when you ask, and this is recorded "
        "in the audit log."),
    "msg.outbound_show": ("Afficher le contenu (données de santé)",
                          "Show the content (health data)"),
    "msg.outbound_warning": (
        "Attention : ce contenu contient des données de santé de patients. Ne le copiez "
        "pas ailleurs. Consultation inscrite au journal.",
        "Warning: this content holds patients' health data. Do not copy it elsewhere. "
        "This viewing is recorded in the audit log."),
    "act.title": ("Actions", "Actions"),
    "act.release": ("Libérer", "Release"),
    "act.delete": ("Supprimer", "Delete"),
    "act.report": ("Signaler à Signal Spam", "Report to Signal Spam"),
    "act.allow": ("Toujours autoriser cet expéditeur", "Always allow this sender"),
    "act.release.what": (
        "Le message sera remis à ses destinataires tel qu'il a été reçu.",
        "The message will be delivered to its recipients as it was received."),
    "act.delete.what": ("Le message sera supprimé définitivement.",
                        "The message will be deleted for good."),
    "act.report.what": (
        "Le message sera envoyé à Signal Spam (plateforme publique de signalement) avec "
        "le compte du cabinet. La réponse peut prendre jusqu'à 15 secondes : ne cliquez "
        "qu'une fois.",
        "The message will be sent to Signal Spam (the public reporting platform) with the "
        "practice's account. The answer may take up to 15 seconds: click only once."),
    "act.allow.what": (
        "Celui-ci sera libéré, et les prochains messages de cet expéditeur ne seront plus "
        "marqués ni retenus parce que son adresse ou son authentification paraît douteuse. "
        "Une pièce jointe dangereuse, un faux expéditeur mssante.fr ou un domaine qui en "
        "imite un autre resteront toujours retenus.",
        "This one will be released, and further messages from this sender will no longer "
        "be tagged or held because their address or authentication looks doubtful. A "
        "dangerous attachment, a forged mssante.fr sender or a look-alike domain will "
        "always be held."),
    "act.not_held": ("Ce message n'est plus en attente : rien n'a été fait.",
                     "This message is no longer held: nothing was done."),
    "act.unavailable": ("Cette action n'est pas disponible sur ce serveur.",
                        "This action is not available on this server."),
    "act.not_outbound_report": (
        "Un message envoyé par le cabinet ne se signale pas comme spam.",
        "Mail sent by the practice is not reported as spam."),
    "audit.title": ("Journal des actions", "Audit log"),
    "audit.none": ("Aucune action enregistrée.", "No action recorded."),
    "audit.time": ("Quand", "When"),
    "audit.event": ("Action", "Action"),
    "audit.who": ("Qui", "Who"),
    "audit.details": ("Détails", "Details"),
    "dash.title": ("Tableau de bord — 30 derniers jours", "Dashboard — last 30 days"),
    "dash.by_reason": ("Par motif et par sens", "By reason and direction"),
    "dash.total": ("Total", "Total"),
    "dash.chart": ("Messages retenus par motif", "Held messages by reason"),
    "dash.by_status": ("Par état", "By status"),
    "dash.none": ("Aucun message retenu ces 30 derniers jours.",
                  "No message held in the last 30 days."),
    "dash.last_usb": ("Dernière clé USB analysée", "Last USB key scanned"),
    "dash.usb_flagged": ("{n} fichier(s) signalé(s)", "{n} file(s) flagged"),
    "usb.title": ("Analyses de clés USB", "USB key scans"),
    "usb.none": ("Aucun rapport d'analyse de clé USB.", "No USB scan report."),
    "usb.bad": ("Rapport illisible", "Unreadable report"),
    "usb.mount": ("Point de montage", "Mount point"),
    "usb.time": ("Date", "Date"),
    "usb.scanned": ("fichiers analysés", "files scanned"),
    "usb.flagged": ("fichiers signalés", "files flagged"),
    "usb.clean": ("Rien de suspect.", "Nothing suspicious."),
    "usb.file": ("Fichier", "File"),
    "usb.why": ("Constat", "Finding"),
    "usb.moved": ("mis de côté", "moved aside"),
    "set.title": ("Vérification de l'installation", "Settings check"),
    "set.run": ("Vérifier maintenant", "Check now"),
    "set.ok": ("correct", "OK"),
    "set.warn": ("à surveiller", "warning"),
    "set.fail": ("problème", "problem"),
    "set.upstream": ("Serveur d'envoi (relais)", "Upstream server (relay)"),
    "set.dns": ("Résolution DNS", "DNS resolver"),
    "set.tls": ("Certificat TLS", "TLS certificate"),
    "set.digest": ("Récapitulatif quotidien", "Daily digest"),
    "set.key": ("Clé de chiffrement de la quarantaine", "Quarantine encryption key"),
    "set.signal_spam": ("Compte Signal Spam", "Signal Spam account"),
    "set.signal_spam.check": ("Vérifier les identifiants", "Check the credentials"),
    "set.signal_spam.what": (
        "Essaie le compte enregistré par « vigie signal-spam login » (rien n'est signalé ; "
        "la réponse peut prendre jusqu'à 15 secondes).",
        "Tries the account saved by 'vigie signal-spam login' (nothing is reported; the "
        "answer may take up to 15 seconds)."),
    "set.console": ("Adresse publique de la console", "Console public address"),
    "oc.title": ("Confirmer l'action", "Confirm the action"),
    "oc.message": ("Message concerné", "Message"),
    "oc.confirm": ("Confirmer", "Confirm"),
    "oc.nothing_yet": ("Rien n'est fait tant que vous n'avez pas cliqué sur le bouton.",
                       "Nothing is done until you click the button."),
    "oc.invalid.title": ("Lien inutilisable", "Link not usable"),
    "oc.invalid": (
        "Ce lien n'est pas valable (adresse incomplète ou modifiée). Rien n'a été fait. "
        "Utilisez le récapitulatif le plus récent ou la console.",
        "This link is not valid (incomplete or altered address). Nothing was done. Use "
        "the latest digest or the console."),
    "oc.expired": (
        "Ce lien a expiré. Rien n'a été fait. Utilisez le récapitulatif le plus récent ou "
        "la console.",
        "This link has expired. Nothing was done. Use the latest digest or the console."),
    "oc.used": ("Ce lien a déjà servi : l'action a déjà été faite, rien de plus n'a été fait.",
                "This link was already used: the action was done before, nothing more was "
                "done."),
    "oc.nonce": (
        "Cette page de confirmation est trop ancienne. Rien n'a été fait. Rouvrez le lien "
        "du récapitulatif et cliquez de nouveau.",
        "This confirmation page is too old. Nothing was done. Open the digest link again "
        "and click again."),
    "oc.bad_form": (
        "Cette demande ne vient pas de la page de confirmation de ce lien. Rien n'a été "
        "fait. Ouvrez le lien du récapitulatif et cliquez sur le bouton de la page.",
        "This request does not come from this link's confirmation page. Nothing was "
        "done. Open the digest link and click the page's button."),
    "oc.retry": (
        "Le message est toujours retenu et ce lien reste valable : réessayez plus tard, "
        "ou ouvrez la console de vigie (Messages retenus).",
        "The message is still held and this link still works: try again later, or open "
        "the vigie console (Held messages)."),
    "oc.done.title": ("C'est fait", "Done"),
    "oc.failed.title": ("L'action n'a pas abouti", "The action did not succeed"),
    "footer": ("vigie — passerelle de sécurité du cabinet", "vigie — the practice's mail gateway"),
}


def pick_lang(query: str | None, cookie: str | None, accept: str | None) -> Lang:
    for value in (query, cookie):
        if value in ("fr", "en"):
            return "en" if value == "en" else "fr"
    if accept:
        first = accept.split(",")[0].split(";")[0].strip().lower()
        if first.startswith("en"):
            return "en"
    return "fr"


def translate(lang: Lang, key: str, **values: object) -> str:
    pair = STRINGS.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**values) if values else text
