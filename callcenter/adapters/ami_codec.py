"""AMI (Asterisk Manager Interface) wire format, sans-IO: framing, messages, actions.

Protocol facts this relies on (``/work/shared/asterisk-transcripts``, README facts 14-15):

* The banner ``Asterisk Call Manager/11.0.0\\r\\n`` is ONE line with no empty line after it.
  Every message is ``Key: value\\r\\n`` lines ended by an empty ``\\r\\n``. Empty values keep
  the space after the colon (``AccountCode: \\r\\n`` -> ``""``). Keys may repeat
  (``ChanVariable``): :class:`AmiMessage` keeps the first value as the dict value and every
  line in :attr:`AmiMessage.lines`.

The client (:mod:`callcenter.adapters.ami`) and the test server (``tests/ami_server.py``)
share this codec; the mapping to call events is :mod:`callcenter.adapters.ami_events`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE_BYTES = 64 * 1024  # a single line longer than this is not AMI
MAX_MESSAGE_BYTES = 1024 * 1024  # nor is a message bigger than this


class AmiError(Exception):
    """Base class of everything the AMI modules (codec and client) raise."""


class AmiProtocolError(AmiError):
    """The peer does not speak AMI (over-long line or message)."""


class AmiMessage(dict[str, str]):
    """One AMI message. As a dict: the FIRST value of each key. :attr:`lines`: every
    ``(key, value)`` line in wire order, so repeated keys (``ChanVariable``) are not lost."""

    __slots__ = ("lines",)

    def __init__(self, lines: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []
        for key, value in lines:
            self.add(key, value)

    def add(self, key: str, value: str) -> None:
        self.lines.append((key, value))
        self.setdefault(key, value)

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` in wire order (case-insensitive key match)."""
        k = key.lower()
        return [v for name, v in self.lines if name.lower() == k]

    def get_ci(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key``, matching the key case-insensitively
        (CEL says ``LinkedID`` where other events say ``Linkedid``)."""
        return get_field(self, key, default)

    @property
    def kind(self) -> str | None:
        """``"event"``, ``"response"``, ``"action"`` or None."""
        for name in ("Event", "Response", "Action"):
            if name in self:
                return name.lower()
        return None

    def to_bytes(self) -> bytes:
        """The message as it goes on the wire (``\\r\\n`` lines, empty line at the end)."""
        return format_message(self.lines)


def format_message(lines: Iterable[tuple[str, str]]) -> bytes:
    """``Key: value\\r\\n`` per line and the closing empty ``\\r\\n``. Rejects CR/LF inside
    keys or values (they would let a value inject extra header lines)."""
    out = []
    for key, value in lines:
        key, value = str(key), str(value)
        if not key or ":" in key or any(c in key + value for c in "\r\n"):
            raise ValueError(f"invalid AMI header line {key!r}: {value!r}")
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode()


class AmiFramer:
    """Incremental AMI parser: feed it bytes as they arrive, get complete messages back.

    The first line of the stream is taken as the banner if it is not a ``Key: value`` line
    (it has no colon, or starts with ``Asterisk Call Manager/``); it is then exposed as
    :attr:`banner` and never part of a message. Lines may end with ``\\r\\n`` (AMI) or a bare
    ``\\n`` (tolerated). Bytes are decoded as UTF-8 with replacement characters.
    """

    def __init__(self, *, expect_banner: bool = True) -> None:
        self.banner: str | None = None
        self._expect_banner = expect_banner
        self._buf = bytearray()
        self._lines: list[tuple[str, str]] = []
        self._size = 0

    @property
    def pending(self) -> bool:
        """True while a message (or line) has started but is not complete yet."""
        return bool(self._buf or self._lines)

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buf
        buf += data
        out: list[AmiMessage] = []
        pos = 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            raw = bytes(buf[pos:nl])
            pos = nl + 1
            msg = self._line(raw[:-1] if raw.endswith(b"\r") else raw)
            if msg is not None:
                out.append(msg)
        del buf[:pos]
        if len(buf) > MAX_LINE_BYTES:
            raise AmiProtocolError(f"AMI line longer than {MAX_LINE_BYTES} bytes")
        return out

    def _line(self, raw: bytes) -> AmiMessage | None:
        text = raw.decode("utf-8", "replace")
        if self._expect_banner and text:
            self._expect_banner = False
            if ":" not in text or text.startswith(BANNER_PREFIX):
                self.banner = text
                return None
        if not text:
            if not self._lines:
                return None  # a stray empty line between messages
            msg = AmiMessage(self._lines)
            self._lines, self._size = [], 0
            return msg
        key, sep, value = text.partition(":")
        if not sep:
            log.debug("AMI: ignoring a line without a colon: %r", text[:200])
            return None
        if value.startswith(" "):
            value = value[1:]  # the separator; 'AccountCode: ' -> ''
        self._size += len(raw) + 2
        if self._size > MAX_MESSAGE_BYTES:
            raise AmiProtocolError(f"AMI message larger than {MAX_MESSAGE_BYTES} bytes")
        self._lines.append((key.strip(), value))
        return None


def parse_messages(buffer: bytes | str) -> list[AmiMessage]:
    """Every complete message in ``buffer`` (a banner first line is skipped; an unfinished
    message at the end is ignored)."""
    if isinstance(buffer, str):
        buffer = buffer.encode()
    return AmiFramer().feed(buffer)


def encode_action(name: str, fields: Mapping[str, Any], action_id: str | None = None) -> bytes:
    """``Action: name``, then ``ActionID`` (if any), then the fields. A list or tuple value
    repeats its key (``Variable`` of Originate); None values are left out."""
    lines: list[tuple[str, str]] = [("Action", name)]
    if action_id is not None:
        lines.append(("ActionID", action_id))
    for key, value in fields.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        lines.extend((key, str(v)) for v in values)
    return format_message(lines)


def get_field(ev: Mapping[str, str], key: str, default: str | None = None) -> str | None:
    if key in ev:
        return ev[key]
    k = key.lower()
    for name, value in ev.items():
        if name.lower() == k:
            return value
    return default
