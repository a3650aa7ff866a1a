"""The console as a service of ``vigie serve``: built from the running ``Gateway``
(its quarantine, users, next hops and TLS certificate)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.config import parse_listen
from gateway.web.app import Console, WebService

if TYPE_CHECKING:
    from gateway.smtp.server import Gateway

log = logging.getLogger("vigie.web")


class GatewayConsole(WebService):
    """Opens what it needs when ``vigie serve`` starts its services (after the
    listeners, so the TLS certificate exists)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._own_quarantine: Any = None
        super().__init__(None, parse_listen(gateway.cfg.web.listen))

    async def start(self) -> None:
        from gateway.quarantine.actions import gateway_hops
        from gateway.quarantine.service import Quarantine
        from gateway.web.quarantine_backend import QuarantineBackend

        gw = self.gateway
        cfg = gw.cfg
        quarantine = getattr(gw, "quarantine", None)
        if quarantine is None:  # a gateway without the quarantine wired in
            quarantine = self._own_quarantine = Quarantine.open(cfg)
        backend = QuarantineBackend(cfg, quarantine, gateway_hops(gw))
        self.console = Console(cfg, backend, gw.users, cert_path=lambda: gw.cert_path)
        if cfg.web.tls:
            from gateway.smtp.tls import certificate_paths, server_context

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
