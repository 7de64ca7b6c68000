"""Daphne's server with a graceful SIGTERM: requests and streams in flight finish, then the ledger is written.

Daphne's own shutdown cancels every application instance at once ("Killed 14 pending application
instances"): clients in the middle of a stream lost it. Twisted turns SIGTERM and SIGINT into a reactor stop,
which first runs the "before shutdown" triggers and waits for the Deferreds they return; Daphne's trigger is
`kill_all_applications`, and this server's replaces it with:

1. /readyz answers 503 (oneapi_site/health.py) and the listening sockets close, so no new connection is taken;
2. requests in flight run on for up to SHUTDOWN_GRACE_SECONDS (default 30), streams included;
3. whatever still runs then is cancelled as a client disconnect is (the relay settles what was used, and the
   client's stream ends where it was);
4. the shared quota's settlements under way reach Redis, and those Redis could not take are tried once more;
5. the upstream sessions close, the ledger's writer stops and every settled charge is written
   (billing/ledger.py `stop`).

Only then does the reactor stop and the process exit. A second SIGTERM changes nothing; SIGKILL ends it at once.
What a SIGKILL loses is in the README ("Stopping and restarting").
"""

from __future__ import annotations

import asyncio
import logging
import time

from daphne.server import Server
from twisted.internet import defer
from twisted.web import http as twisted_http

from oneapi_site import health

log = logging.getLogger("oneapi")

# Twisted names no reason for RFC 6585's statuses: every rate-limit refusal went out as "429 Unknown Status".
for _code, _reason in ((428, b"Precondition Required"), (429, b"Too Many Requests"),
                       (431, b"Request Header Fields Too Large"), (511, b"Network Authentication Required")):
    twisted_http.RESPONSES.setdefault(_code, _reason)

POLL = 0.1  # seconds between looks at the requests still running


class GracefulServer(Server):
    grace_seconds: float = 30.0

    def run(self):
        from billing import journal
        from billing.ledger import refused

        self.ports = []
        # Now, not at the first /v1 request: a restarted instance writes what a killed one left in Redis.
        journal.keeper.start(refused=refused)
        super().run()

    def listen_success(self, port):
        self.ports.append(port)
        super().listen_success(port)

    def kill_all_applications(self):
        """Daphne's "before shutdown" trigger: the reactor waits for the Deferred this returns."""
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._shut_down()))

    def _running(self) -> dict:
        """protocol -> application instance, for the requests whose application has not returned."""
        return {protocol: details["application_instance"] for protocol, details in list(self.connections.items())
                if "application_instance" in details and not details["application_instance"].done()}

    async def _shut_down(self) -> None:
        health.draining.set()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*[defer.maybeDeferred(port.stopListening).asFuture(loop) for port in self.ports],
                             return_exceptions=True)
        running = len(self._running())
        _say(f"shutting down: {running} requests in flight, waiting up to {self.grace_seconds:g} s for them")
        deadline = time.monotonic() + self.grace_seconds
        while self._running() and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
        left = self._running()
        if left:
            _say(f"shutting down: {len(left)} requests still running after {self.grace_seconds:g} s are stopped")
            for protocol, instance in left.items():
                _end(protocol)
                instance.cancel()
            await asyncio.gather(*left.values(), return_exceptions=True)
        await _close_upstream_sessions()
        await _settle_everything()
        _say("shutting down: every settled charge is written")


SHUTTING_DOWN = (b'{"error": {"message": "The server is shutting down; send the request again.", '
                 b'"type": "server_error", "code": "server_shutting_down"}}')


def _end(protocol) -> None:
    """End a response cleanly before its application is stopped: a started one (a stream) where it is, with
    the chunked encoding's last chunk rather than a dropped connection; one not started as a 503."""
    try:
        if protocol.finished or protocol.channel is None:
            return
        if protocol._response_started:
            protocol.finish()
            return
        protocol.handle_reply({"type": "http.response.start", "status": 503,
                               "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        protocol.handle_reply({"type": "http.response.body", "body": SHUTTING_DOWN})
    except Exception:  # the connection went in the meantime: nothing to end
        log.debug("ending a response at shutdown failed", exc_info=True)


async def _close_upstream_sessions() -> None:
    """Every request is done: left open, the loop's end logged "ERROR asyncio Unclosed client session" at
    every stop."""
    from relay import http

    try:
        await http.close()
    except Exception:  # a connection that fails to close must not keep the charges from being written
        log.debug("closing the upstream sessions at shutdown failed", exc_info=True)


async def _settle_everything() -> None:
    from billing import journal
    from billing.ledger import ledger
    from billing.shared_quota import shared
    from relay import admission

    try:
        await admission.drain()
        await shared.send_owed()
    except Exception:  # Redis away: the database still gets every charge, Redis's leases expire on their own
        log.exception("sending the last settlements to Redis failed")
    await asyncio.to_thread(ledger.stop)
    if ledger.pending:  # they stay in Redis's journal (if configured), for another instance to write
        log.error("shutting down with %d charges unwritten: the database cannot take them", len(ledger.pending))
        return
    journal.keeper.stop()
    await asyncio.to_thread(journal.drop_own)


def _say(text: str) -> None:
    print(f"oneapi: {text}", flush=True)
