"""The Asterisk AGI wire protocol, sans-IO (stdlib only, no sockets, no pipes).

Everything here was checked against the recordings of a real Asterisk 22.10.1 in
``/work/shared/asterisk-transcripts`` (files 01-06); references are ``file:line``.

Framing (fact 1): every line in both directions ends with exactly one ``"\\n"`` and never
with ``"\\r"``.  Asterisk first writes the *environment block* (``agi_key: value`` lines
in a fixed order, ended by one empty line), then waits for one command line at a time and
answers each with a reply.  Replies are one line (``200 result=...``, ``510 ...``,
``511 ...``, ``520 ...``) except the usage reply of a build with XML docs, which is
``520-...``, raw text lines and ``520 End of proper usage.`` (01:304-307).  Over FastAGI
Asterisk may also write a bare ``HANGUP`` line at any time (03:290, 04:224); it is not a
reply and is reported as the :data:`HANGUP` sentinel.

Contents:

* :class:`EnvParser` / :func:`parse_env` / :func:`agi_args` - the environment block;
* :class:`AgiReply` / :class:`ReplyParser` / :func:`parse_reply` - replies;
* :func:`format_command` and the builders (:func:`answer`, :func:`get_data`, ...) -
  commands exactly as Asterisk's argument parser expects them.

This is the codec a driver needs, both directions of one wire format, so it is one module
(~670 lines, half of them the transcripts' facts in docstrings); the process AGI imports it
at every call's start. How Asterisk itself reads a command line and what it answers (the
peer's side, for the test peer, the simulator and the bench) is
:mod:`callcenter.telephony.emulation`.

Bytes are decoded as UTF-8 with ``errors="replace"`` (Asterisk passes caller names and
variable values through as raw bytes).
"""

from __future__ import annotations

import re

# A process AGI imports this module at every call's start: no typing, no dataclasses at
# run time (annotations are not evaluated, see ``from __future__ import annotations``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Final

__all__ = [
    "AGI_ENV_KEYS",
    "FASTAGI_ENV_KEYS",
    "HANGUP",
    "HANGUP_LINE",
    "AgiHangup",
    "AgiProtocolError",
    "AgiReply",
    "EnvParser",
    "ReplyParser",
    "agi_args",
    "answer",
    "channel_status",
    "database_del",
    "database_deltree",
    "database_get",
    "database_put",
    "exec_",
    "format_command",
    "get_data",
    "get_full_variable",
    "get_option",
    "get_variable",
    "hangup",
    "noop",
    "parse_env",
    "parse_reply",
    "quote_arg",
    "record_file",
    "say_alpha",
    "say_digits",
    "say_number",
    "set_callerid",
    "set_context",
    "set_extension",
    "set_priority",
    "set_variable",
    "stream_file",
    "verbose",
    "wait_for_digit",
]

ENCODING: Final = "utf-8"

#: The 20 fixed keys of a process-AGI env block, in the order Asterisk writes them
#: (01:60-79).  ``agi_arg_1..N`` follow, then the empty line.  (The transcripts' "21 agi_*
#: lines" count ``agi_arg_1``.)
AGI_ENV_KEYS: Final[tuple[str, ...]] = (
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)
#: FastAGI prepends these two lines (04:89-90); ``agi_request`` then holds the full URL.
FASTAGI_ENV_KEYS: Final[tuple[str, ...]] = ("agi_network", "agi_network_script")

HANGUP_LINE: Final = "HANGUP"


class AgiProtocolError(ValueError):
    """Input that cannot be AGI (a line that is neither a reply nor ``HANGUP``, ...)."""


def _decode(line: bytes | str) -> str:
    if isinstance(line, bytes):
        return line.decode(ENCODING, errors="replace")
    return line


def _strip_newline(line: str) -> str:
    """Drop one trailing ``\\n`` (Asterisk never sends ``\\r``; a stray one is kept)."""
    return line[:-1] if line.endswith("\n") else line


# ---------------------------------------------------------------------------------------
# Environment block
# ---------------------------------------------------------------------------------------


def _parse_env_line(line: str) -> tuple[str, str]:
    key, sep, value = line.partition(":")
    if not sep or not key:
        raise AgiProtocolError(f"not an AGI environment line: {line!r}")
    # Asterisk writes "key: value"; an empty value still has the space ("agi_accountcode: ").
    if value.startswith(" "):
        value = value[1:]
    return key, value


class EnvParser:
    """Incremental parser of the AGI environment block.

    Feed it whatever the transport delivers (FastAGI sent the block in two TCP reads,
    04:144-145); :meth:`feed` returns ``True`` once the terminating empty line arrived.
    Keys are kept as sent (``agi_channel``, ``agi_arg_1``, ...), empty values stay ``""``.
    Bytes received after the empty line are kept in :attr:`remainder` (not parsed).
    """

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        self.lines: list[str] = []
        self.complete = False
        self.remainder = b""
        self._buf = b""

    def feed(self, data: bytes | str) -> bool:
        """Add a chunk (bytes or text).  Returns :attr:`complete`."""
        if isinstance(data, str):
            data = data.encode(ENCODING)
        if self.complete:
            self.remainder += data
            return True
        self._buf += data
        while not self.complete:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            raw, self._buf = self._buf[:nl], self._buf[nl + 1 :]
            self.feed_line(raw.decode(ENCODING, errors="replace"))
        if self.complete:
            self.remainder, self._buf = self._buf, b""
        return self.complete

    def feed_line(self, line: str) -> bool:
        """Add one line (with or without its ``\\n``).  Returns :attr:`complete`."""
        if self.complete:
            raise AgiProtocolError("environment block already complete")
        line = _strip_newline(line)
        if line == "":
            self.complete = True
            return True
        key, value = _parse_env_line(line)
        self.lines.append(line)
        self.env[key] = value
        return False


def parse_env(lines: Iterable[str] | str | bytes) -> dict[str, str]:
    """Parse an environment block given as a whole (``str``/``bytes``) or as lines.

    Parsing stops at the first empty line; a missing terminator is tolerated (the
    caller may already have stripped it).
    """
    if isinstance(lines, bytes):
        lines = lines.decode(ENCODING, errors="replace")
    if isinstance(lines, str):
        lines = lines.split("\n")
    parser = EnvParser()
    for line in lines:
        if parser.feed_line(line):
            break
    return parser.env


_ARG_KEY = re.compile(r"agi_arg_(\d+)\Z")


def agi_args(env: Mapping[str, str]) -> list[str]:
    """The ``agi_arg_N`` values in numeric order (``agi_arg_10`` after ``agi_arg_9``)."""
    numbered = []
    for key, value in env.items():
        m = _ARG_KEY.match(key)
        if m:
            numbered.append((int(m.group(1)), value))
    return [value for _, value in sorted(numbered)]


# ---------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------


class AgiHangup:
    """Type of the :data:`HANGUP` sentinel (the bare ``HANGUP`` line of FastAGI)."""

    _instance: AgiHangup | None = None

    def __new__(cls) -> AgiHangup:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "HANGUP"

    def __reduce__(self) -> str:
        return "HANGUP"


#: Returned by :class:`ReplyParser` for the ``HANGUP`` line.  Over FastAGI it is sent
#: after a caller hangup *and* at the normal end of every session (fact 7), so it does not
#: always mean the caller hung up.
HANGUP: Final = AgiHangup()

_REPLY_START = re.compile(r"(\d{3})([ -]|\Z)")
_FINAL_LINE = re.compile(r"\d{3} ")
_RESULT_200 = re.compile(
    r"200 result=(?P<result>\S*)"
    r"(?: \((?P<data>.*)\))?"
    r"(?: endpos=(?P<endpos>-?\d+))?"
)


class Record:
    """Fields named by ``__match_args__``: repr and equality as ``@dataclass`` gives them.

    Written out by hand for the records of this module and of the IVR flow: ``dataclasses``
    imports ``inspect``, ~8 ms at every process AGI's start.
    """

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _astuple(self) -> tuple:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._astuple() == other._astuple()  # type: ignore[attr-defined]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq=True


class FrozenRecord(Record):
    """An immutable :class:`Record`, hashed by its fields (``@dataclass(frozen=True)``)."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple:
        return (type(self), self._astuple())


class AgiReply(FrozenRecord):
    """One complete reply.

    ``code``: 200/510/511/520.  For a 200, ``result`` is the text after ``result=`` (may be
    empty: ``200 result= (timeout)``), ``data`` the text in parentheses (``None`` when
    there are none, ``""`` for ``()``), ``endpos`` the ``endpos=`` number.  For other codes
    ``result`` is ``""`` and ``data``/``endpos`` are ``None``; see :attr:`message` and
    :attr:`usage`.  ``raw`` is the reply text without the final newline (lines joined
    with ``"\\n"`` for a multi-line 520).

    Immutable, compared and hashed by its fields, like the frozen dataclass it was (written
    out by hand: ``dataclasses`` imports ``inspect``, ~8 ms at every process AGI's start).
    """

    __slots__ = ("code", "data", "endpos", "raw", "result")
    __match_args__ = ("code", "result", "data", "endpos", "raw")

    code: int
    result: str
    data: str | None
    endpos: int | None
    raw: str

    def __init__(
        self, code: int, result: str, data: str | None, endpos: int | None, raw: str
    ) -> None:
        _set = object.__setattr__
        _set(self, "code", code)
        _set(self, "result", result)
        _set(self, "data", data)
        _set(self, "endpos", endpos)
        _set(self, "raw", raw)

    @property
    def ok(self) -> bool:
        """The command was accepted and executed (code 200, whatever its result)."""
        return self.code == 200

    @property
    def is_hangup(self) -> bool:
        """``200 result=-1`` or any 511.

        Caution (facts 2, 4): ``-1`` is also the reply to GET DATA with a missing prompt and
        to STREAM FILE of a missing file (``200 result=-1 endpos=0``) - the channel may
        still be up.  A 511 means the channel is gone (or an intercept routine runs).
        """
        return (self.code == 200 and self.result == "-1") or self.code == 511

    @property
    def timed_out(self) -> bool:
        """GET DATA ended by its timeout: ``200 result= (timeout)``, ``200 result=12 (timeout)``."""
        return self.data == "timeout"

    @property
    def digits(self) -> str | None:
        """GET DATA digits (``""`` for none or for a lone ``#``); ``None`` for ``-1``/errors."""
        if self.code != 200 or self.result == "-1":
            return None
        return self.result

    @property
    def int_result(self) -> int | None:
        """``result`` as an int when it is one (``"-2"`` -> -2, ``""`` -> None)."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def dtmf(self) -> str | None:
        """WAIT FOR DIGIT / STREAM FILE escape result as a character.

        ``"7"`` for ``result=55``, ``""`` for ``result=0`` (timeout / played to the end),
        ``None`` for ``-1``, errors and non-numeric results.
        """
        value = self.int_result
        if self.code != 200 or value is None or value < 0:
            return None
        return chr(value) if value else ""

    @property
    def message(self) -> str:
        """Text of a non-200 reply's first line (``"Invalid or unknown command"``)."""
        if self.code == 200:
            return ""
        first = self.raw.split("\n", 1)[0]
        return first[4:]

    @property
    def usage(self) -> list[str]:
        """The raw usage lines of a multi-line 520 (XML tags left in, 01:305-306)."""
        lines = self.raw.split("\n")
        if self.code != 520 or len(lines) < 2:
            return []
        return lines[1:-1]

    def __str__(self) -> str:
        return self.raw


def _reply_from_line(line: str) -> AgiReply:
    code = int(line[:3])
    if code != 200:
        return AgiReply(code=code, result="", data=None, endpos=None, raw=line)
    m = _RESULT_200.match(line)
    if m is None:
        # "200" without "result=" does not happen in Asterisk 22; keep the text.
        return AgiReply(code=200, result=line[4:], data=None, endpos=None, raw=line)
    endpos = m.group("endpos")
    return AgiReply(
        code=200,
        result=m.group("result"),
        data=m.group("data"),
        endpos=int(endpos) if endpos is not None else None,
        raw=line,
    )


class ReplyParser:
    """Incremental reply parser.

    :meth:`feed_line` takes one line and returns an :class:`AgiReply` when a reply is
    complete, :data:`HANGUP` for the FastAGI ``HANGUP`` line, or ``None`` while a
    multi-line 520 is still being read (it ends at a line matching ``^\\d{3} ``).
    :meth:`feed` takes raw chunks and returns the list of completed events.
    """

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._buf = b""

    @property
    def in_progress(self) -> bool:
        """True while inside a multi-line reply or holding a partial line."""
        return bool(self._pending) or bool(self._buf)

    def feed(self, data: bytes | str) -> list[AgiReply | AgiHangup]:
        if isinstance(data, str):
            data = data.encode(ENCODING)
        self._buf += data
        events: list[AgiReply | AgiHangup] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return events
            raw, self._buf = self._buf[:nl], self._buf[nl + 1 :]
            event = self.feed_line(raw.decode(ENCODING, errors="replace"))
            if event is not None:
                events.append(event)

    def feed_line(self, line: str) -> AgiReply | AgiHangup | None:
        line = _strip_newline(line)
        if self._pending:
            self._pending.append(line)
            if not _FINAL_LINE.match(line):
                return None
            lines, self._pending = self._pending, []
            return AgiReply(
                code=int(lines[0][:3]), result="", data=None, endpos=None, raw="\n".join(lines)
            )
        if line == HANGUP_LINE:
            return HANGUP
        m = _REPLY_START.match(line)
        if m is None:
            raise AgiProtocolError(f"not an AGI reply: {line!r}")
        if m.group(2) == "-":
            self._pending = [line]
            return None
        return _reply_from_line(line)


def parse_reply(text: str | bytes) -> AgiReply:
    """Parse one complete reply given as text (one line, or all lines of a 520)."""
    parser = ReplyParser()
    lines = _decode(text).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    result: AgiReply | AgiHangup | None = None
    for i, line in enumerate(lines):
        result = parser.feed_line(line)
        if result is not None and i != len(lines) - 1:
            raise AgiProtocolError(f"text after the end of the reply: {text!r}")
    if not isinstance(result, AgiReply):
        raise AgiProtocolError(f"not a complete AGI reply: {text!r}")
    return result


# ---------------------------------------------------------------------------------------
# Commands: formatting
# ---------------------------------------------------------------------------------------

_NEEDS_QUOTES = frozenset(' \t"\\')


def quote_arg(arg: object) -> str:
    """One argument as Asterisk must see it.

    Empty strings and strings containing spaces, tabs, ``"`` or ``\\`` are wrapped in double
    quotes with ``"`` and ``\\`` backslash-escaped; anything else is sent as is.  Newlines,
    carriage returns and NULs cannot be transported and raise :class:`ValueError`.
    """
    if arg is None or isinstance(arg, bool):
        raise TypeError(f"AGI arguments are str or int, not {arg!r}")
    text = str(arg)
    if any(c in text for c in "\n\r\0"):
        raise ValueError(f"AGI argument cannot contain newline/CR/NUL: {text!r}")
    if text == "" or any(c in _NEEDS_QUOTES for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _always_quoted(text: str) -> str:
    """Escape digits are always sent quoted, as in the transcripts (``"0123456789*#"``)."""
    quote_arg(text)  # validation
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(*parts: str) -> str:
    """Join already quoted parts into a command line."""
    return " ".join(parts) + "\n"


def format_command(*words: object) -> str:
    """``format_command("STREAM FILE", "digits/1", "")`` -> ``'STREAM FILE digits/1 ""\\n'``.

    The first word is the command name, sent verbatim (it may contain spaces); the others
    are arguments passed through :func:`quote_arg`.  The result ends with one ``"\\n"``.
    """
    if not words:
        raise ValueError("empty AGI command")
    name = str(words[0]).strip()
    if not name or any(c in name for c in "\n\r\0"):
        raise ValueError(f"bad AGI command name: {words[0]!r}")
    return " ".join([name, *(quote_arg(w) for w in words[1:])]) + "\n"


def answer() -> str:
    return format_command("ANSWER")


def hangup(channel: str | None = None) -> str:
    return format_command("HANGUP") if channel is None else format_command("HANGUP", channel)


def noop() -> str:
    return format_command("NOOP")


def channel_status(channel: str | None = None) -> str:
    if channel is None:
        return format_command("CHANNEL STATUS")
    return format_command("CHANNEL STATUS", channel)


def get_data(prompt: str, timeout_ms: int | None = None, max_digits: int | None = None) -> str:
    """``GET DATA silence/1 5000 16``.  ``timeout_ms`` 0 or omitted = Asterisk's defaults
    (6000 ms before the first digit, 2000 ms between digits); ``max_digits`` omitted = 1024.
    One prompt file only: AGI GET DATA plays it with ast_app_getdata_full, which does not
    split on ``&`` (Read() does); the timeout covers the first digit and every gap."""
    words: list[object] = ["GET DATA", prompt]
    if timeout_ms is not None or max_digits is not None:
        words.append(0 if timeout_ms is None else int(timeout_ms))
    if max_digits is not None:
        words.append(int(max_digits))
    return format_command(*words)


def stream_file(name: str, escape_digits: str = "", sample_offset: int | None = None) -> str:
    """``STREAM FILE digits/1 ""`` / ``STREAM FILE silence/10 "0123456789*#"`` (the escape
    digits are mandatory and always quoted, as in 01:133 and 02:259)."""
    parts = ["STREAM FILE", quote_arg(name), _always_quoted(escape_digits)]
    if sample_offset is not None:
        parts.append(str(int(sample_offset)))
    return _line(*parts)


def record_file(
    name: str,
    fmt: str = "wav",
    escape_digits: str = "#",
    timeout_ms: int = -1,
    *,
    beep: bool = True,
    silence_s: int | None = None,
) -> str:
    """``RECORD FILE /path/msg wav "#" 40000 0 BEEP s=4`` (res_agi.c handle_recordfile: the
    offset comes first so that BEEP is read as the beep, and ``s=`` is the silence that ends
    the recording). Replies: ``200 result=<digit> (dtmf) endpos=N``, ``200 result=N (timeout)
    endpos=N`` (time or silence), ``200 result=-1 (hangup) endpos=N``, and ``200 result=-1
    (writefile)`` when the file cannot be written."""
    parts = ["RECORD FILE", quote_arg(name), quote_arg(fmt), _always_quoted(escape_digits)]
    parts.append(str(int(timeout_ms)))
    if beep or silence_s is not None:
        parts.append("0")
    if beep:
        parts.append("BEEP")
    if silence_s is not None:
        parts.append(f"s={int(silence_s)}")
    return _line(*parts)


def get_option(name: str, escape_digits: str = "", timeout_ms: int | None = None) -> str:
    parts = ["GET OPTION", quote_arg(name), _always_quoted(escape_digits)]
    if timeout_ms is not None:
        parts.append(str(int(timeout_ms)))
    return _line(*parts)


def say_digits(digits: str | int, escape: str = "") -> str:
    """``SAY DIGITS 1234 ""`` (Asterisk rejects a first word that is not a number: 520)."""
    return _line("SAY DIGITS", quote_arg(digits), _always_quoted(escape))


def say_number(number: int | str, escape: str = "", gender: str | None = None) -> str:
    parts = ["SAY NUMBER", quote_arg(number), _always_quoted(escape)]
    if gender is not None:
        parts.append(quote_arg(gender))
    return _line(*parts)


def say_alpha(text: str, escape: str = "") -> str:
    return _line("SAY ALPHA", quote_arg(text), _always_quoted(escape))


def set_variable(name: str, value: str | int) -> str:
    """``SET VARIABLE FROMAGI "value with spaces"``; Asterisk stores the unquoted value."""
    return format_command("SET VARIABLE", name, value)


def get_variable(name: str) -> str:
    return format_command("GET VARIABLE", name)


def get_full_variable(expr: str, channel: str | None = None) -> str:
    """``GET FULL VARIABLE ${CALLERID(num)}`` - evaluated like the dialplan does."""
    if channel is None:
        return format_command("GET FULL VARIABLE", expr)
    return format_command("GET FULL VARIABLE", expr, channel)


def exec_(app: str, options: str = "") -> str:
    """``EXEC Playback "silence/1,noanswer"``.

    Asterisk passes only ONE argument string to the application (01:102), so options are
    quoted whenever they contain a comma or anything :func:`quote_arg` would quote.
    """
    if options == "":
        return format_command("EXEC", app)
    quoted = quote_arg(options)
    if "," in options and not quoted.startswith('"'):
        quoted = f'"{options}"'
    return f"EXEC {quote_arg(app)} {quoted}\n"


def verbose(msg: str, level: int = 1) -> str:
    """``VERBOSE "hello from agi" 1`` (always ``200 result=1``)."""
    return format_command("VERBOSE", msg, int(level))


def wait_for_digit(ms: int) -> str:
    """``WAIT FOR DIGIT 5000``; ``-1`` waits forever.  Result = ASCII code, 0 on timeout."""
    return format_command("WAIT FOR DIGIT", int(ms))


def database_get(family: str, key: str) -> str:
    return format_command("DATABASE GET", family, key)


def database_put(family: str, key: str, value: str) -> str:
    return format_command("DATABASE PUT", family, key, value)


def database_del(family: str, key: str) -> str:
    return format_command("DATABASE DEL", family, key)


def database_deltree(family: str, keytree: str | None = None) -> str:
    if keytree is None:
        return format_command("DATABASE DELTREE", family)
    return format_command("DATABASE DELTREE", family, keytree)


def set_context(context: str) -> str:
    return format_command("SET CONTEXT", context)


def set_extension(extension: str) -> str:
    return format_command("SET EXTENSION", extension)


def set_priority(priority: int | str) -> str:
    return format_command("SET PRIORITY", priority)


def set_callerid(callerid: str) -> str:
    return format_command("SET CALLERID", callerid)
