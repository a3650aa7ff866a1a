"""The console as a service of ``vigie serve``: built from the running ``Gateway``
(its quarantine, users, next hops and TLS certificate)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.config import parse_listen
from gateway.quarantine.actions import gateway_hops
from gateway.quarantine.service import Quarantine
from gateway.smtp.tls import certificate_paths, server_context
from gateway.web.app import Console, WebService
from gateway.web.quarantine_backend import QuarantineBackend

if TYPE_CHECKING:
    from gateway.smtp.server import Gateway

log = logging.getLogger("vigie.web")


class GatewayConsole(WebService):
    """Built with the gateway (so ``start()``, run once the listeners are up, only
    binds the socket); uses the gateway's quarantine when it has one."""

    def __init__(self, gateway: Gateway) -> None:
        cfg = gateway.cfg
        self.gateway = gateway
        quarantine = getattr(gateway, "quarantine", None)
        self._own_quarantine: Quarantine | None = None
        if quarantine is None:  # a gateway without the quarantine wired in
            quarantine = self._own_quarantine = Quarantine.open(cfg)
        backend = QuarantineBackend(cfg, quarantine, gateway_hops(gateway))
        console = Console(cfg, backend, gateway.users, cert_path=lambda: gateway.cert_path)
        super().__init__(console, parse_listen(cfg.web.listen))

    async def start(self) -> None:
        cfg = self.gateway.cfg
        if cfg.web.tls:  # the certificate exists now: Gateway.start() made it if needed
            cert, key, _ = certificate_paths(cfg)
            self.ssl_context = server_context(cert, key)
        try:
            await super().start()
        except OSError as exc:
            # Mail must keep flowing: a console that cannot listen is reported, not fatal.
            log.error("console web : impossible d'écouter sur %s (%s) — vérifiez [web] listen ; "
                      "le courrier continue de passer / web console: cannot listen on %s (%s) "
                      "— check [web] listen; mail keeps flowing", cfg.web.listen,
                      exc.strerror or exc, cfg.web.listen, exc.strerror or exc)

    async def stop(self) -> None:
        await super().stop()
        if self._own_quarantine is not None:
            self._own_quarantine.close()
            self._own_quarantine = None
