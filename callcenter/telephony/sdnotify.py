"""systemd's notify protocol, by hand: one datagram to ``$NOTIFY_SOCKET`` per message.

``READY=1`` once the FastAGI server listens (``Type=notify``), then ``WATCHDOG=1`` from the
FastAGI event loop every half of ``WatchdogSec`` (``$WATCHDOG_USEC``): if that loop freezes
(or the whole process is stopped), the pings stop and systemd restarts the service, so
Asterisk's AGI() fails and the dialplan's fallback takes the caller (transcript fact 18: a
connected but frozen FastAGI server holds a caller indefinitely).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str, environ=None) -> bool:
    """Send ``message`` to systemd; False when not run by systemd (no ``NOTIFY_SOCKET``)."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket name
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def watchdog_interval(environ=None) -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when systemd wants none: no
    ``WATCHDOG_USEC``, or it is meant for another process (``WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def watchdog(environ=None) -> None:
    """Ping systemd's watchdog from the running loop until cancelled."""
    interval = watchdog_interval(environ)
    if interval is None:
        return
    log.info("systemd watchdog: a ping every %.1f s from the FastAGI loop", interval)
    while True:
        try:
            notify("WATCHDOG=1", environ)
        except OSError as exc:
            log.warning("systemd watchdog ping failed: %s", exc)
        await asyncio.sleep(interval)
