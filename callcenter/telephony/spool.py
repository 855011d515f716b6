"""Call events kept on disk while the service, or its database, cannot take them.

Both AGI drivers use it: a process AGI keeps what it could not POST and its next
``call_ended`` sends it; the FastAGI server keeps what its database refused and records it
every 15 s. Events are idempotent on the service, so sending one twice is harmless; losing one
is not, and neither is recording another service's call as one's own (two ``serve`` on one
host once shared a folder). So every entry names the service it was meant for, its *owner*:
the service URL a process AGI posts to, or the address of the ``serve`` that kept it. A flush
takes only its owner's entries and leaves every other file where it is.

An entry is ``<unix time>-<pid>-<tag>.json`` holding ``{"for": OWNER, "event": {...}}``;
the tag (a 32-bit FNV-1a hash of the owner) lets a flush list its own entries without
opening the others'. Entries written before owners existed (``<time>-<pid>.json``, a bare
event) belong to no one and are left alone. Stdlib only and lean: a process AGI imports it
when it first keeps or flushes an event.
"""

from __future__ import annotations

import json
import os
import sys
import time

from callcenter.telephony.service_client import utc_now_iso

SUFFIX = ".json"


def _tag(owner: str) -> str:
    """FNV-1a (32 bit) of the owner, as 8 hex digits: stable across processes, unlike
    ``hash()``, and with no module to import (``zlib`` would be one more at every start)."""
    h = 0x811C9DC5
    for byte in owner.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def service_identity(url: str) -> str:
    """The owner string of a service URL: ``http://h:8080/`` and ``http://h:8080`` are one."""
    return url.strip().rstrip("/")


def default_script_dir() -> str:
    """A process AGI's folder when none is configured: it has no data directory of its own
    (Asterisk starts it in Asterisk's), and entries carry their owner, so one is safe to share."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), "callcenter-agi-spool")


class Spool:
    """One owner's view of a spool folder: what it keeps is marked as its own, and what it
    reads back is only its own. Without a directory the script default is found when first
    needed (``tempfile`` is not imported on a call that spools nothing)."""

    def __init__(self, directory: str | None = None, *, owner: str) -> None:
        self._dir = directory
        self.owner = service_identity(owner)
        self._suffix = f"-{_tag(self.owner)}{SUFFIX}"

    @property
    def dir(self) -> str:
        if self._dir is None:
            self._dir = default_script_dir()
        return self._dir

    def keep(self, event: dict) -> None:
        """Write the event down with the time it happened, since it will arrive late."""
        entry = {"for": self.owner, "event": {"at": utc_now_iso(), **event}}
        try:
            os.makedirs(self.dir, exist_ok=True)
            name = os.path.join(self.dir, f"{time.time():.6f}-{os.getpid()}{self._suffix}")
            with open(name + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(entry, fh, ensure_ascii=False)
            os.replace(name + ".tmp", name)
        except OSError as exc:
            print(f"callcenter: cannot spool event: {exc}", file=sys.stderr)

    def entries(self, limit: int = 200):
        """(path, event) of this owner's spooled events, oldest first.

        Unreadable files and files of another owner (a tag collision) are skipped, not moved.
        """
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(self._suffix))
        except OSError:
            return
        for n in names[:limit]:
            path = os.path.join(self.dir, n)
            try:
                with open(path, encoding="utf-8") as fh:
                    entry = json.load(fh)
            except (OSError, ValueError):
                continue
            event = entry.get("event") if isinstance(entry, dict) else None
            if isinstance(event, dict) and entry.get("for") == self.owner:
                yield path, event

    @staticmethod
    def settle(path: str, sent: bool) -> None:
        """Sent: the file goes. Refused for good: kept aside as ``.rejected`` for a person."""
        try:
            if sent:
                os.unlink(path)
            else:
                os.replace(path, path + ".rejected")
        except FileNotFoundError:  # another hangup handler (or the service) sent it too
            pass

    def flush(self, client, limit: int = 200) -> int:
        """Send this owner's events over HTTP with ``client`` (a process AGI's
        :class:`~callcenter.telephony.service_client.ServiceClient`), oldest first; stop at
        the first failure. The client must talk to the owner: an entry goes only there."""
        if service_identity(client.url) != self.owner:
            raise ValueError(f"spool of {self.owner} flushed to {client.url}")
        sent = 0
        for path, event in self.entries(limit):
            if "voicemail" in event:  # a message the service could not take when it was left
                from callcenter.telephony.process_agi import send_voicemail

                try:
                    got = send_voicemail(client, {"at": event["at"], **event["voicemail"]})
                except OSError as exc:  # its recording is gone: a person must look
                    print(f"callcenter: kept message unreadable: {exc}", file=sys.stderr)
                    self.settle(path, sent=False)
                    continue
            else:
                got = client.call("POST", "/api/v1/events", event)
            if got is None:
                err = client.last_error
                if not getattr(err, "permanent", False):
                    break
                client.down = False  # the service answered; only this event is refused
                self.settle(path, sent=False)
                continue
            self.settle(path, sent=True)
            sent += 1
        return sent
