"""A fake Asterisk 22 ("AGI peer") for tests: process AGI and FastAGI, with a scripted caller.

One concern, Asterisk's side of an AGI session, in one file: both transports share the
command semantics, the scripted caller and the result (AGISTATUS, variables, timeline), and
most of its length is the recorded behaviour it reproduces, cited line by line. How Asterisk
splits and recognises a command line comes from :mod:`callcenter.telephony.emulation`.

It reproduces the byte-level behaviour recorded from a real Asterisk 22.10.1 in
``/work/shared/asterisk-transcripts`` (``file:line`` references below).  Replies are
instant; time is *simulated* (``PeerResult.elapsed_ms`` and the first column of
``PeerResult.timeline``), nothing sleeps except the 10 ms pause between the two FastAGI
env chunks.

Quick use::

    result = run_process_agi(
        [str(script), "arg1"],
        Caller(actions=[Dtmf("1234#"), Timeout(), Hangup()]),
        options=PeerOptions(sound_patterns=("callcenter/*",)),
    )
    assert result.agistatus == "HANGUP"
    assert result.variables["CALL_RESULT"] == "..."

    result = await run_fastagi("127.0.0.1", port, "ivr", Caller(actions=[Dtmf("1#")]))

Transports
----------
* :func:`run_process_agi` starts the script with :class:`subprocess.Popen` (binary pipes),
  writes the env block (20 fixed ``agi_*`` lines in the order of 01:60-79, then
  ``agi_arg_N``, then one empty line; ``agi_accountcode: `` keeps its space), answers each
  command line, and on a caller hangup sends **SIGHUP** (unless the channel variable
  ``AGISIGHUP`` is false-ish, 03:152).  It never writes a ``HANGUP`` line to a process
  (fact 6).  ``AGIEXITONHANGUP=yes`` closes both pipes right after the hangup (03:207).
* :func:`run_fastagi` connects over real TCP, sends ``agi_network: yes`` and
  ``agi_network_script`` first, ``agi_request: agi://host:port/script?query``, in two
  writes split after ``agi_context`` (04:144-145), answers commands, writes ``HANGUP``
  right after the ``200 result=-1`` of a hangup (03:290) and, when the server closes, writes
  ``HANGUP`` once more and closes (04:224).  A refused connection gives AGISTATUS=FAILURE.

AGISTATUS (fact 10, and res_agi.c ``run_agi``): SUCCESS; FAILURE after a non-zero exit
(process only) or after a failed command - STREAM FILE / GET OPTION of a file that is not
a known sound (a GET DATA with a missing prompt does not count); HANGUP when the channel
hung up.  As in res_agi.c, a failure *before* the hangup wins (``if (!returnstatus)
returnstatus = AGI_RESULT_HANGUP``), and a non-zero exit does not turn HANGUP into
FAILURE.  A channel that is already dead when the AGI starts (hangup handler, fact 13)
gets no SIGHUP and ends with SUCCESS (not recorded; follows the res_agi.c code).

The scripted caller
-------------------
Each *action* answers the next input-collecting command: GET DATA, WAIT FOR DIGIT,
STREAM FILE/GET OPTION **with** escape digits, and EXEC Read:

* ``Dtmf("1234#")`` - GET DATA -> ``200 result=1234``; ``Dtmf("#")`` -> ``200 result=``;
  ``Dtmf("12")`` or ``Dtmf("12", then_timeout=True)`` -> ``200 result=12 (timeout)``;
  reaching max digits returns at once and the rest of the digits stays queued for the next
  input command (02:141); WAIT FOR DIGIT takes one digit (``55`` for ``7``); STREAM FILE
  returns the first escape digit's code with a plausible ``endpos`` (``at_ms`` = when the
  digit ends, after the prompt; non-escape digits are dropped).
  ``Dtmf("12", then_hangup=True)`` - digits, then the caller hangs up: GET DATA ->
  ``200 result=-1`` (the digits are lost, 03:105).
* ``Dtmf("4000#", during="callcenter/welcome", at_ms=2000)`` - type-ahead (fact 16): typed
  while that prompt plays.  Streamed with ``""`` the digits ending during it are dropped and
  the rest reach the next input command; streamed with escape digits the first one ends it.
  ``Caller(waits_for_questions=True)`` (the default) makes plain actions wait for a question
  (GET DATA, WAIT FOR DIGIT, Read): a prompt with escape digits then takes only the digits
  typed ``during`` it, or left over from earlier.
* ``Timeout()`` - nothing pressed: ``200 result= (timeout)``, ``200 result=0``, or STREAM
  FILE plays to the end.
* ``Hangup()`` - the caller hangs up during this command.
* When the actions run out every input command times out.

Hang-ups outside input commands: ``Caller(hangup_after_commands=N)`` hangs up while the
script is idle after the reply to command N (0 = right after the env block);
``Caller(hangup_during_command=N)`` hangs up *during* command N (1-based): media commands
(GET DATA, STREAM FILE, SAY *, WAIT FOR DIGIT, EXEC Playback/Read/Wait/...) get their
hangup reply (``-1``), other commands complete and the hangup follows.  ``Caller(dead=True)``
runs the whole AGI on an already hung-up channel (hangup handler).

SIGHUP timing: Asterisk writes the ``-1`` reply and sends SIGHUP within the same
millisecond; the recordings show the signal arriving first (03:104-105).  The peer
sends SIGHUP *just before* writing the reply, so a script that reads the reply has
always run its SIGHUP handler already (deterministic for pyst2).

Fidelity notes (what is simulated, what is not)
------------------------------------------------
* Pipelining (fact 5) is reproduced when the second line is already buffered while GET
  DATA / STREAM FILE / WAIT FOR DIGIT is handled (i.e. written in the same write): GET
  DATA and STREAM FILE get no reply, WAIT FOR DIGIT gets ``200 result=1``.
* Digits left over from an action (max digits reached, ``Dtmf("1#2")``) reach the next
  input command; a playback that reads no DTMF in between (STREAM FILE with ``""``, SAY,
  EXEC Playback/Wait/...) discards them, as Asterisk does.  Script think-time is not
  modelled, so DTMF typed while the script is idle (discarded by Asterisk, 02:309) is not
  either.
* 520 with ``PeerOptions(xmldoc=True)`` (default, the normal production build) is the
  multi-line form with the recorded usage text for the commands in 01 D.2; other commands
  get a placeholder usage line.  ``xmldoc=False`` gives the single line of 01:182.
* RECORD FILE (res_agi.c handle_recordfile) answers the next action: ``Speak(ms, end)``
  writes a real 8 kHz 16-bit WAV file of what was said and replies as Asterisk does: ``end``
  ``"hash"`` -> ``200 result=35 (dtmf) endpos=N``, ``"silence"`` (the ``s=`` silence,
  1 s of it kept) -> ``200 result=<ms left> (timeout) endpos=N``, ``"max"`` -> ``200
  result=0 (timeout) endpos=N``, ``"hangup"`` -> ``200 result=-1 (hangup) endpos=N`` and
  the caller is gone; ``Timeout()`` is silence from the start, ``Hangup()`` a hangup at
  once. A folder that cannot be written gives ``200 result=-1 (writefile)``.
* CONTROL STREAM FILE, SEND/RECEIVE TEXT|CHAR|IMAGE, TDD MODE, SPEECH * and
  GOSUB are not simulated: they raise :class:`UnsupportedCommand` (on a live channel).
* ``endpos`` values are plausible, not recorded ones, except ``silence/N`` (N*8000),
  ``digits/*`` (7360 en / 4640 ru, 01:134,142) and values set in ``sound_durations``.

pyst2 0.5.1 (``asterisk.agi.AGI``) against this behaviour
----------------------------------------------------------
Read from ``site-packages/asterisk/agi.py`` and checked by tests/integration/test_agi_peer.py.
The product's scripts are written against it, so:

* ``AGI()`` installs a SIGHUP handler that only sets ``agi._got_sighup``; ``execute()`` (every
  method) first calls ``test_hangup()`` and raises ``AGISIGHUPHangup`` *without sending
  anything* once the flag is set.  So after a hangup pyst2 refuses even the dead-safe
  commands (SET VARIABLE, VERBOSE, DATABASE, EXEC) - save results elsewhere, or clear
  ``agi._got_sighup`` / use ``send_command()``+``get_result()`` directly.
* ``200 result=-1`` (hangup during GET DATA/STREAM FILE/WAIT FOR DIGIT, and also a missing
  GET DATA prompt or STREAM FILE of a missing file) raises ``AGIAppError("Error executing
  application, or hangup")`` - NOT ``AGIResultHangup`` (that needs ``(hangup)`` in the reply,
  which Asterisk 22 only sends for RECORD FILE/RECEIVE CHAR).  Tell hangup from a missing
  file by ``agi._got_sighup`` (if AGISIGHUP is not "no").
* 511 (dead channel) raises ``AGIUnknownError(511, 'Unhandled code or undefined response')``,
  which is neither ``AGIAppError`` nor ``AGIHangup``; ``channel_status()`` does not catch it.
* 510 raises ``AGIInvalidCommand``.  A multi-line 520 raises ``AGIUsageError`` with the
  usage text.  The single-line 520 of a build without XML docs makes pyst2 read ONE MORE
  line (it loops until a line starting ``520`` *after* the first) - it blocks forever
  (the peer then raises :class:`PeerTimeout`).  E.g. ``say_number("abc")`` triggers it.
* ``get_data(filename, timeout=2000, max_digits=255)`` returns the digits string; its reply
  regex needs a non-empty value after ``result=``, so ``200 result= (timeout)`` and the
  lone-``#`` reply ``200 result=`` both give ``""`` and the raw result dict is
  ``{'result': ('', '')}`` - a timeout with no digits cannot be detected.  ``200 result=12
  (timeout)`` gives ``"12"`` (``('12', 'timeout')`` in the raw dict).
* ``get_variable()`` returns ``""`` for unset and empty alike; ``wait_for_digit()`` returns
  ``""`` on timeout, else the character; ``stream_file()`` sends ``STREAM FILE name "" 0``.
* Arguments are wrapped in ``"..."`` but inner ``"`` and ``\\`` are not escaped, so Asterisk
  drops quotes/backslashes inside values (``set_variable`` of ``say "hi"`` stores
  ``say hi``).  ``database_get`` double-quotes (``""fam""``) which Asterisk reads fine.
* The env values are ``.strip()``-ed (trailing spaces lost).  After AGIEXITONHANGUP closed
  the pipes, a command raises ``AGISIGPIPEHangup`` (EPIPE on the write), or - when the
  write slipped in before the close - ``ValueError`` from ``int('')`` on the EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from callcenter.telephony import agi, emulation

__all__ = [
    "DEFAULT_APPS",
    "DEFAULT_SOUND_FILES",
    "Action",
    "Caller",
    "Dtmf",
    "FakeAsterisk",
    "Hangup",
    "Outcome",
    "PeerError",
    "PeerOptions",
    "PeerResult",
    "PeerTimeout",
    "ScenarioError",
    "Speak",
    "Timeout",
    "UnsupportedCommand",
    "run_fastagi",
    "run_process_agi",
]

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class PeerError(Exception):
    """Base class of the peer's own errors (not Asterisk behaviour)."""


class ScenarioError(PeerError):
    """The scripted scenario cannot happen (e.g. nobody ever answers an infinite wait)."""


class UnsupportedCommand(PeerError):
    """A real AGI command that the peer does not simulate."""


class PeerTimeout(PeerError):
    """The session did not end within ``timeout`` real seconds; ``.result`` has the
    transcript so far (the process was killed)."""

    def __init__(self, message: str, result: PeerResult) -> None:
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------------------
# The scripted caller
# --------------------------------------------------------------------------------------

_DTMF_CHARS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class Dtmf:
    """The caller types ``digits`` (``#`` ends GET DATA) during the next input command.

    ``at_ms``: when the first digit ends, counted from the end of the prompt (STREAM FILE:
    from the start of playback); later digits follow every 350 ms.  Only used for
    ``endpos`` and the simulated clock.
    """

    digits: str
    then_timeout: bool = False
    then_hangup: bool = False
    at_ms: int | None = None
    #: type-ahead (fact 16): the caller types while this prompt (a STREAM FILE name) plays,
    #: ``at_ms`` after it starts. Streamed with escape digits, the first one ends the prompt
    #: and the rest reach the next input command; streamed with ``""``, every digit that
    #: ends while it plays is dropped and only the later ones reach the next input command.
    during: str | None = None

    def __post_init__(self) -> None:
        bad = set(self.digits) - _DTMF_CHARS
        if bad:
            raise ValueError(f"not DTMF: {sorted(bad)}")
        if self.then_timeout and self.then_hangup:
            raise ValueError("then_timeout and then_hangup are exclusive")


@dataclass(frozen=True)
class Timeout:
    """The caller presses nothing during the next input command."""


@dataclass(frozen=True)
class Hangup:
    """The caller hangs up during the next input command."""


@dataclass(frozen=True)
class Speak:
    """The caller speaks for ``ms`` during RECORD FILE, then ``end``: ``"hash"`` (presses
    #), ``"silence"`` (goes quiet), ``"max"`` (talks past the limit) or ``"hangup"``."""

    ms: int
    end: str = "hash"

    def __post_init__(self) -> None:
        if self.end not in ("hash", "silence", "max", "hangup"):
            raise ValueError(f"Speak.end: {self.end!r}")


Action = Dtmf | Timeout | Hangup | Speak


@dataclass
class Caller:
    """The channel the AGI runs on and the person on it.

    ``caller_id=None`` gives ``agi_callerid: unknown``, ``agi_calleridname: unknown`` and
    ``agi_callingpres: 67`` (fact 8).  ``variables`` are channel variables set before the
    AGI (``{"MYVAR": "hello", "AGISIGHUP": "no"}``); keys like ``"CDR(billsec)"`` give
    values to dialplan functions.  ``linkedid`` is ``CHANNEL(linkedid)`` (default: the
    uniqueid; on a queue agent channel it is the caller's, fact 11).
    """

    caller_id: str | None = "79001234567"
    caller_name: str | None = None
    language: str = "ru"
    variables: dict[str, str] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    hangup_after_commands: int | None = None
    hangup_during_command: int | None = None
    dead: bool = False
    channel: str = "PJSIP/provider-00000001"
    uniqueid: str = "1795482833.0"
    linkedid: str | None = None
    connected_line_num: str | None = None
    connected_line_name: str | None = None
    context: str = "callcenter-ivr"
    extension: str = "s"
    priority: int = 2
    dnid: str | None = None
    rdnis: str | None = None
    accountcode: str = ""
    answered: bool = True
    hangup_cause: int = 16
    #: the caller waits for each question: plain actions answer only GET DATA, WAIT FOR
    #: DIGIT and Read, and a prompt streamed with escape digits takes only an action typed
    #: ``during`` it (type-ahead, fact 16); else it plays to its end
    waits_for_questions: bool = True


DEFAULT_SOUND_FILES = frozenset(
    {"silence/1", "silence/10", "beep", *(f"digits/{d}" for d in range(10))}
)

#: Applications EXEC knows (case-insensitive); anything else gives ``200 result=-2``.
DEFAULT_APPS = frozenset(
    {
        "Answer", "Background", "Busy", "Congestion", "Dial", "Echo", "ExecIf", "Gosub",
        "GosubIf", "Goto", "GotoIf", "Hangup", "Log", "MixMonitor", "MusicOnHold", "NoOp",
        "Playback", "Playtones", "Progress", "Queue", "QueueLog", "Read", "Return",
        "Ringing", "SayDigits", "SayNumber", "Set", "StartMusicOnHold", "StopMixMonitor",
        "StopMusicOnHold", "StopPlaytones", "System", "UserEvent", "Verbose", "Wait",
        "WaitExten",
    }
)  # fmt: skip

_BLOCKING_APPS = frozenset(
    {"background", "dial", "echo", "musiconhold", "playback", "queue", "read", "saydigits",
     "saynumber", "wait", "waitexten"}
)  # fmt: skip


@dataclass
class PeerOptions:
    """How the fake Asterisk is configured.

    ``sound_files`` exist exactly; ``sound_patterns`` are :mod:`fnmatch` patterns
    (``"callcenter/*"``).  ``sound_durations`` maps a file to its length in samples
    (8 kHz).  ``xmldoc`` selects the multi-line 520 (True, the usual build) or the single
    line (False, the recorded build).  ``astdb`` (``"family/key" -> value``) is used and
    mutated by DATABASE commands.  ``other_channels`` maps channel names to their variables
    (for ``IMPORT()``, ``CHANNEL STATUS <name>``, ``HANGUP <name>``).
    """

    sound_files: frozenset[str] = DEFAULT_SOUND_FILES
    sound_patterns: tuple[str, ...] = ()
    sound_durations: Mapping[str, int] = field(default_factory=dict)
    xmldoc: bool = True
    known_apps: frozenset[str] = DEFAULT_APPS
    astdb: dict[str, str] = field(default_factory=dict)
    other_channels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    version: str = "22.10.1"
    threadid: str = "140520195507904"
    epoch: int = 1795482833


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class PeerResult:
    """What happened.  ``timeline`` entries are ``(sim_seconds, direction, text)`` with
    the transcripts' directions: ``<<`` Asterisk -> script (env lines, replies, ``HANGUP``;
    the env's empty line is ``""``), ``>>`` script -> Asterisk, ``!!`` a signal sent to
    the script, ``##`` a note."""

    transport: str
    timeline: list[tuple[float, str, str]]
    commands: list[str]
    exchanges: list[tuple[str, list[str]]]
    variables: dict[str, str]
    channel_variables: dict[str, str]
    agistatus: str
    exit_code: int | None
    hung_up: bool
    sighups: int
    env_block: bytes
    stderr: str
    verbose: list[str]
    astdb: dict[str, str]
    unused_actions: list[Action]
    elapsed_ms: int

    @property
    def transcript(self) -> list[tuple[str, str]]:
        return [(d, text) for _, d, text in self.timeline]

    @property
    def sent(self) -> list[str]:
        """Every line Asterisk wrote (env included)."""
        return [text for _, d, text in self.timeline if d == "<<"]

    @property
    def replies(self) -> list[list[str]]:
        return [reply for _, reply in self.exchanges]

    def reply_to(self, command: str, nth: int = 0) -> list[str]:
        """Reply lines of the ``nth`` exchange whose command line equals ``command``."""
        matches = [reply for cmd, reply in self.exchanges if cmd == command]
        if len(matches) <= nth:
            raise KeyError(f"{command!r} was not sent {nth + 1} time(s); sent: {self.commands}")
        return matches[nth]


# --------------------------------------------------------------------------------------
# Usage texts (520 with XML docs), recorded in 01:304-372
# --------------------------------------------------------------------------------------

_STREAM_FILE_USAGE = [
    "Send the given file, allowing playback to be interrupted by the given digits, if any. "
    "Returns <literal>0</literal> if playback completes without a digit being pressed, or "
    "the ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on "
    "error or if the channel was disconnected. If musiconhold is playing before calling "
    "stream file it will be automatically stopped and will not be restarted after completion.",
    "It sets the following channel variables upon completion:",
    "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.",
    "    <value>SUCCESS</value>",
    "    <value>FAILED</value>",
]
_USAGE: dict[tuple[str, ...], list[str]] = {
    ("GET", "DATA"): [
        "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
        "Returns the digits received from the channel at the other end.",
    ],
    ("STREAM", "FILE"): _STREAM_FILE_USAGE,
    ("SAY", "DIGITS"): [
        "Say a given digit string, returning early if any of the given DTMF digits are "
        "received on the channel. Returns <literal>0</literal> if playback completes without "
        "a digit being pressed, or the ASCII numerical value of the digit if one was pressed "
        "or <literal>-1</literal> on error/hangup."
    ],
    ("GET", "VARIABLE"): [
        "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. "
        "Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and "
        "returns the variable in parentheses.",
        "Example return code: 200 result=1 (testvariable)",
    ],
    ("SET", "VARIABLE"): ["Sets a variable to the current channel."],
    ("GET", "FULL", "VARIABLE"): [
        "Evaluates the given <replaceable>expression</replaceable> against the channel "
        "specified by <replaceable>channelname</replaceable>, or the current channel if "
        "<replaceable>channelname</replaceable> is not provided.",
        "Unlike GET VARIABLE, the <replaceable>expression</replaceable> is processed in a "
        "manner similar to dialplan evaluation, allowing complex and built-in variables to be "
        "accessed, e.g. <literal>The time is ${EPOCH}</literal>",
        "Returns <literal>0</literal> if no channel matching "
        "<replaceable>channelname</replaceable> exists, <literal>1</literal> otherwise.",
        "Example return code: 200 result=1 (The time is 1578493800)",
    ],
    ("WAIT", "FOR", "DIGIT"): [
        "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a "
        "DTMF digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if "
        "no digit is received in the timeout, or the numerical value of the ascii of the digit "
        "if one is received. Use <literal>-1</literal> for the "
        "<replaceable>timeout</replaceable> value if you desire the call to block indefinitely."
    ],
    ("EXEC",): [
        "Executes <replaceable>application</replaceable> with given "
        "<replaceable>options</replaceable>.",
        "Returns whatever the <replaceable>application</replaceable> returns, or "
        "<literal>-2</literal> on failure to find <replaceable>application</replaceable>.",
        "<note>NOTE:</note> exec does not evaluate dialplan functions and variables unless it "
        "is explicitly enabled by setting the <variable>AGIEXECFULL</variable> variable to "
        "<literal>yes</literal>.",
    ],
    ("VERBOSE",): [
        "Sends <replaceable>message</replaceable> to the console via verbose message system. "
        "<replaceable>level</replaceable> is the verbose level (1-4). Always returns "
        "<literal>1</literal>"
    ],
    ("CHANNEL", "STATUS"): [
        "Returns the status of the specified <replaceable>channelname</replaceable>. If no "
        "channel name is given then returns the status of the current channel.",
        "Return values:",
        "    <enum>0</enum> - Channel is down and available.",
        "    <enum>1</enum> - Channel is down, but reserved.",
        "    <enum>2</enum> - Channel is off hook.",
        "    <enum>3</enum> - Digits (or equivalent) have been dialed.",
        "    <enum>4</enum> - Line is ringing.",
        "    <enum>5</enum> - Remote end is ringing.",
        "    <enum>6</enum> - Line is up.",
        "    <enum>7</enum> - Line is busy.",
    ],
}

# --------------------------------------------------------------------------------------
# Small helpers mirroring Asterisk's C behaviour
# --------------------------------------------------------------------------------------

_INT_PREFIX = re.compile(r"\s*([+-]?\d+)")


def _sscanf_int(text: str) -> int | None:
    """``sscanf(text, "%30d", &n) == 1``: leading whitespace, sign, digits; rest ignored."""
    m = _INT_PREFIX.match(text)
    return int(m.group(1)) if m else None


def _atoi(text: str) -> int:
    value = _sscanf_int(text)
    return 0 if value is None else value


def _ast_true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"yes", "true", "y", "t", "1", "on"}


def _ast_false(value: str | None) -> bool:
    return (value or "").strip().lower() in {"no", "false", "n", "f", "0", "off"}


def _substring(value: str, offset: int, length: int | None) -> str:
    """Asterisk's ``substring()`` for ``${VAR:offset:length}``."""
    lr = len(value)
    if offset < 0:
        offset = max(lr + offset, 0)
    if offset >= lr:
        return ""
    if length is None or length >= lr - offset:
        return value[offset:]
    if length >= 0:
        return value[offset : offset + length]
    end = lr + length
    return value[offset:end] if end > offset else ""


def _split_offset(name: str) -> tuple[str, int, int | None]:
    depth = 0
    for i, ch in enumerate(name):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts = name[i + 1 :].split(":")
            offset = _atoi(parts[0]) if parts[0] else 0
            length = _atoi(parts[1]) if len(parts) > 1 and parts[1] else None
            return name[:i], offset, length
    return name, 0, None


_FUNC = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\((.*)\)\Z", re.S)


def _func_key(expr: str) -> str | None:
    m = _FUNC.match(expr.strip())
    if m is None:
        return None
    return f"{m.group(1).upper()}({m.group(2)})"


@dataclass
class Outcome:
    """Result of one command line: reply lines to write (empty = aborted, no reply),
    whether the caller hung up during/right after it, and whether Asterisk stops."""

    reply: list[str]
    hangup: bool = False
    stop: bool = False


_USAGE_MARK = object()

# --------------------------------------------------------------------------------------
# The sans-IO core
# --------------------------------------------------------------------------------------


class FakeAsterisk:
    """One channel running one AGI.  Transport-free: feed command lines to
    :meth:`on_command`, write what it returns.  :func:`run_process_agi` and
    :func:`run_fastagi` drive it."""

    def __init__(self, caller: Caller, options: PeerOptions | None = None) -> None:
        self.caller = caller
        self.options = options if options is not None else PeerOptions()
        self.vars: dict[str, str] = {}
        self.funcs: dict[str, str] = {}
        self.script_vars: dict[str, str] = {}
        self.language = caller.language
        self.callerid_num = caller.caller_id
        self.callerid_name = caller.caller_name
        self.connected_num = caller.connected_line_num
        self.connected_name = caller.connected_line_name
        self.context = caller.context
        self.extension = caller.extension
        self.priority = str(caller.priority)
        for name, value in caller.variables.items():
            self._set(name, value, by_script=False)
        self.state = 6 if caller.answered else 4
        self.dead = caller.dead
        self.hung_up = caller.dead
        self.returnstatus = "SUCCESS"
        # read once when the AGI starts, like run_agi()
        self.send_sighup = not _ast_false(self.vars.get("AGISIGHUP"))
        self.exit_on_hangup = _ast_true(self.vars.get("AGIEXITONHANGUP"))
        self._actions: deque[Action] = deque(caller.actions)
        self._pending: Dtmf | None = None
        self.clock_ms = 0
        self.timeline: list[tuple[float, str, str]] = []
        self.commands: list[str] = []
        self.exchanges: list[tuple[str, list[str]]] = []
        self.verbose: list[str] = []
        self.sighups = 0
        self.env_block = b""
        self._interrupt = False
        self._hangup_now = False
        self._hangup_after = False
        self._handlers: dict[tuple[str, ...], Callable[[list[str], bool], object]] = {
            ("ANSWER",): self._answer,
            ("ASYNCAGI", "BREAK"): lambda w, m: ["200 result=0"],
            ("CHANNEL", "STATUS"): self._channel_status,
            ("DATABASE", "DEL"): self._db_del,
            ("DATABASE", "DELTREE"): self._db_deltree,
            ("DATABASE", "GET"): self._db_get,
            ("DATABASE", "PUT"): self._db_put,
            ("EXEC",): self._exec,
            ("GET", "DATA"): self._get_data,
            ("GET", "FULL", "VARIABLE"): self._get_full_variable,
            ("GET", "OPTION"): self._get_option,
            ("GET", "VARIABLE"): self._get_variable,
            ("HANGUP",): self._hangup_cmd,
            ("NOOP",): lambda w, m: ["200 result=0"],
            ("SAY", "ALPHA"): self._say_text,
            ("SAY", "PHONETIC"): self._say_text,
            ("SAY", "DIGITS"): self._say_digits,
            ("SAY", "NUMBER"): self._say_number,
            ("SAY", "DATE"): self._say_date,
            ("SAY", "TIME"): self._say_date,
            ("SAY", "DATETIME"): self._say_datetime,
            ("RECORD", "FILE"): self._record_file,
            ("SET", "AUTOHANGUP"): self._set_autohangup,
            ("SET", "CALLERID"): self._set_callerid,
            ("SET", "CONTEXT"): self._set_context,
            ("SET", "EXTENSION"): self._set_extension,
            ("SET", "MUSIC"): lambda w, m: _USAGE_MARK if len(w) < 3 else ["200 result=0"],
            ("SET", "PRIORITY"): self._set_priority,
            ("SET", "VARIABLE"): self._set_variable,
            ("STREAM", "FILE"): self._stream_file,
            ("VERBOSE",): self._verbose,
            ("WAIT", "FOR", "DIGIT"): self._wait_for_digit,
        }

    # ---- recording -------------------------------------------------------------------

    def record(self, direction: str, text: str) -> None:
        self.timeline.append((self.clock_ms / 1000, direction, text))

    # ---- env -------------------------------------------------------------------------

    def env_pairs(
        self,
        *,
        request: str,
        args: Sequence[str] = (),
        network_script: str | None = None,
        overrides: Mapping[str, str | None] | None = None,
    ) -> list[tuple[str, str]]:
        c = self.caller
        no_cid = c.caller_id is None and c.caller_name is None
        pairs: list[tuple[str, str]] = []
        if network_script is not None:
            pairs += [("agi_network", "yes"), ("agi_network_script", network_script)]
        pairs += [
            ("agi_request", request),
            ("agi_channel", c.channel),
            ("agi_language", c.language),
            ("agi_type", c.channel.split("/", 1)[0]),
            ("agi_uniqueid", c.uniqueid),
            ("agi_version", self.options.version),
            ("agi_callerid", "unknown" if c.caller_id is None else c.caller_id),
            ("agi_calleridname", "unknown" if c.caller_name is None else c.caller_name),
            ("agi_callingpres", "67" if no_cid else "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", c.dnid or "unknown"),
            ("agi_rdnis", c.rdnis or "unknown"),
            ("agi_context", c.context),
            ("agi_extension", c.extension),
            ("agi_priority", str(c.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", c.accountcode),
            ("agi_threadid", self.options.threadid),
        ]
        arg_pairs = [(f"agi_arg_{i}", str(a)) for i, a in enumerate(args, 1)]
        for key, value in (overrides or {}).items():
            idx = next((i for i, (k, _) in enumerate(pairs) if k == key), None)
            aidx = next((i for i, (k, _) in enumerate(arg_pairs) if k == key), None)
            if value is None:
                if idx is not None:
                    del pairs[idx]
                if aidx is not None:
                    del arg_pairs[aidx]
            elif idx is not None:
                pairs[idx] = (key, value)
            elif aidx is not None:
                arg_pairs[aidx] = (key, value)
            else:
                pairs.append((key, value))
        return pairs + arg_pairs

    @staticmethod
    def env_bytes(pairs: Sequence[tuple[str, str]]) -> bytes:
        return ("".join(f"{k}: {v}\n" for k, v in pairs) + "\n").encode()

    # ---- hangups -----------------------------------------------------------------------

    def hang_up(self) -> None:
        """The caller hangs up now (the transport sends SIGHUP / HANGUP)."""
        if self.dead:
            return
        self.dead = True
        self.hung_up = True
        if self.returnstatus == "SUCCESS":
            self.returnstatus = "HANGUP"
        self.record("##", "caller hangs up")

    def _fail(self) -> None:
        self.returnstatus = "FAILURE"

    # ---- actions ----------------------------------------------------------------------

    def _next_action(self) -> Action:
        if self._pending is not None:
            action, self._pending = self._pending, None
            return action
        if self._actions:
            return self._actions.popleft()
        return Timeout()

    def _keep_rest(self, action: Dtmf, rest: str) -> None:
        if rest:
            self._pending = Dtmf(rest, action.then_timeout, action.then_hangup)
        elif action.then_hangup:
            self._hangup_after = True

    def unused_actions(self) -> list[Action]:
        return ([self._pending] if self._pending else []) + list(self._actions)

    # ---- sounds -----------------------------------------------------------------------

    def sound_exists(self, name: str) -> bool:
        o = self.options
        return name in o.sound_files or any(fnmatch.fnmatchcase(name, p) for p in o.sound_patterns)

    def samples(self, name: str) -> int:
        if name in self.options.sound_durations:
            return self.options.sound_durations[name]
        m = re.fullmatch(r"silence/(\d+)", name)
        if m:
            return int(m.group(1)) * 8000
        if name.startswith("digits/"):
            return 7360 if self.language.startswith("en") else 4640
        if name == "beep":
            return 3600
        return 16000

    # ---- the command loop --------------------------------------------------------------

    def on_command(self, line: str, more_pending: bool = False) -> Outcome:
        """Handle one command line (without its ``\\n``).  ``more_pending``: another
        complete line is already waiting (pipelining, fact 5)."""
        self.commands.append(line)
        n = len(self.commands)
        self._interrupt = self.caller.hangup_during_command == n and not self.dead
        self._hangup_now = False
        self._hangup_after = False
        if line[:7].lower() == "failure":  # res_agi.c: child could not be executed
            self._fail()
            self.exchanges.append((line, []))
            return Outcome([], stop=True)
        words = emulation.parse_command_args(line)
        cmd = emulation.match_command(words)
        reply: list[str]
        if cmd is None:
            reply = [emulation.INVALID_COMMAND_REPLY]
        elif self.dead and not emulation.runs_on_dead_channel(cmd):
            reply = [emulation.DEAD_CHANNEL_REPLY]
        else:
            handler = self._handlers.get(cmd)
            if handler is None:
                raise UnsupportedCommand(f"the AGI peer does not simulate {line!r}")
            result = handler(words, more_pending)
            reply = self._usage(cmd) if result is _USAGE_MARK else list(result)  # type: ignore[arg-type]
        self.clock_ms += 1
        hangup = False
        if self._hangup_now:
            self.hang_up()
            hangup = True
        if not self.dead and (
            self._interrupt or self._hangup_after or self.caller.hangup_after_commands == n
        ):
            self.hang_up()
            hangup = True
        self.exchanges.append((line, reply))
        return Outcome(reply, hangup=hangup)

    def _usage(self, cmd: tuple[str, ...]) -> list[str]:
        if not self.options.xmldoc:
            return [emulation.USAGE_NOT_AVAILABLE_REPLY]
        text = _USAGE.get(cmd, [f"(usage text of {' '.join(cmd)} was not recorded)"])
        return [emulation.USAGE_FOLLOWS_LINE, *text, emulation.USAGE_END_LINE]

    def finish(self, exit_code: int | None) -> str:
        """AGISTATUS after the script ended (``exit_code`` None for FastAGI)."""
        if self.returnstatus == "SUCCESS" and exit_code not in (None, 0):
            self.returnstatus = "FAILURE"
        return self.returnstatus

    def result(self, transport: str, exit_code: int | None, stderr: str = "") -> PeerResult:
        channel_vars = dict(self.vars)
        channel_vars.update(self.funcs)
        return PeerResult(
            transport=transport,
            timeline=list(self.timeline),
            commands=list(self.commands),
            exchanges=list(self.exchanges),
            variables=dict(self.script_vars),
            channel_variables=channel_vars,
            agistatus=self.returnstatus,
            exit_code=exit_code,
            hung_up=self.hung_up,
            sighups=self.sighups,
            env_block=self.env_block,
            stderr=stderr,
            verbose=list(self.verbose),
            astdb=dict(self.options.astdb),
            unused_actions=self.unused_actions(),
            elapsed_ms=self.clock_ms,
        )

    # ---- variables and expressions ------------------------------------------------------

    def _set(self, name: str, value: str, *, by_script: bool = True) -> None:
        key = _func_key(name)
        if key is not None:
            fname, arg = key[:-1].split("(", 1)
            arg_l = arg.strip().lower()
            if fname == "CHANNEL" and arg_l == "language":
                self.language = value
            elif fname == "CALLERID" and arg_l in ("num", "number"):
                self.callerid_num = value
            elif fname == "CALLERID" and arg_l == "name":
                self.callerid_name = value
            elif fname == "CONNECTEDLINE" and arg_l in ("num", "number"):
                self.connected_num = value
            elif fname == "CONNECTEDLINE" and arg_l == "name":
                self.connected_name = value
            else:
                self.funcs[key] = value
            if by_script:
                self.script_vars[name] = value
            return
        # "_X" / "__X" mark inheritance; the variable is X (at most two underscores).
        stripped = name[2:] if name.startswith("__") else name[1:] if name.startswith("_") else name
        self.vars[stripped] = value
        if by_script:
            self.script_vars[stripped] = value

    def _builtin(self, name: str) -> str | None:
        c = self.caller
        return {
            "CHANNEL": c.channel,
            "UNIQUEID": c.uniqueid,
            "EXTEN": self.extension,
            "CONTEXT": self.context,
            "PRIORITY": self.priority,
            "HANGUPCAUSE": str(c.hangup_cause) if self.hung_up else "0",
            "EPOCH": str(self.options.epoch + self.clock_ms // 1000),
        }.get(name)

    def read_variable(self, name: str) -> str | None:
        """``GET VARIABLE`` semantics: ``None`` = unset."""
        if name.endswith(")"):
            return self.read_function(name)
        builtin = self._builtin(name)
        return builtin if builtin is not None else self.vars.get(name)

    def read_function(self, expr: str) -> str | None:
        """A dialplan function read; ``None`` when the function does not exist."""
        key = _func_key(expr)
        if key is None:
            return None
        if key in self.funcs:
            return self.funcs[key]
        fname, arg = key[:-1].split("(", 1)
        item = arg.strip().lower()
        c = self.caller
        if fname == "CHANNEL":
            return {
                "name": c.channel,
                "uniqueid": c.uniqueid,
                "linkedid": c.linkedid or c.uniqueid,
                "language": self.language,
                "state": "Up" if self.state == 6 else "Ring",
                "accountcode": c.accountcode,
                "context": self.context,
                "exten": self.extension,
                "channeltype": c.channel.split("/", 1)[0],
                # fact 17: empty on Local channels (and so here unless a test sets
                # "CHANNEL(hangupsource)" in Caller.variables, as a SIP channel has it)
                "hangupsource": "",
            }.get(item)
        if fname in ("CALLERID", "CONNECTEDLINE"):
            num, name = (
                (self.callerid_num, self.callerid_name)
                if fname == "CALLERID"
                else (self.connected_num, self.connected_name)
            )
            if item in ("num", "number"):
                return num or ""
            if item == "name":
                return name or ""
            if item == "all":
                return f'"{name or ""}" <{num or ""}>'
            return ""
        if fname == "IMPORT":
            chan, _, var = arg.partition(",")
            other = self.options.other_channels.get(chan.strip())
            return "" if other is None else other.get(var.strip(), "")
        if fname == "LEN":
            return str(len(arg))
        if fname == "DB":
            return self.options.astdb.get(arg, "")
        if fname == "DB_EXISTS":
            return "1" if arg in self.options.astdb else "0"
        if fname in ("CDR", "HANGUPCAUSE_KEYS", "HANGUPCAUSE", "SHARED", "DEVICE_STATE"):
            return ""
        return None

    def substitute(self, text: str) -> str:
        """Dialplan ``${...}`` substitution (nested, ``:offset:length``); unset -> ``""``.
        ``$[...]`` expressions are not evaluated."""
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            if text.startswith("${", i):
                j, level = i + 2, 1
                while j < n and level:
                    if text[j] == "{":
                        level += 1
                    elif text[j] == "}":
                        level -= 1
                    j += 1
                if level:
                    out.append(text[i:])
                    break
                inner = text[i + 2 : j - 1]
                if "$" in inner:
                    inner = self.substitute(inner)
                base, offset, length = _split_offset(inner)
                value = self.read_variable(base) or ""
                out.append(_substring(value, offset, length))
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    # ---- command handlers (argc semantics as in res_agi.c) --------------------------

    def _answer(self, w: list[str], more: bool) -> list[str]:
        self.state = 6
        return ["200 result=0"]

    def _channel_status(self, w: list[str], more: bool) -> object:
        if len(w) == 2:
            return [f"200 result={self.state}"]
        if len(w) == 3:
            if w[2] == self.caller.channel:
                return [f"200 result={self.state}"]
            return ["200 result=6" if w[2] in self.options.other_channels else "200 result=-1"]
        return _USAGE_MARK

    def _get_variable(self, w: list[str], more: bool) -> object:
        if len(w) != 3:
            return _USAGE_MARK
        value = self.read_variable(w[2]) if w[2] else None
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _get_full_variable(self, w: list[str], more: bool) -> object:
        if len(w) not in (4, 5):
            return _USAGE_MARK
        if len(w) == 5 and w[4] != self.caller.channel:
            return ["200 result=0"]
        return [f"200 result=1 ({self.substitute(w[3])})"]

    def _set_variable(self, w: list[str], more: bool) -> object:
        if len(w) != 4:
            return _USAGE_MARK
        self._set(w[2], w[3])
        return ["200 result=1"]

    def _verbose(self, w: list[str], more: bool) -> object:
        if len(w) < 2:
            return _USAGE_MARK
        self.verbose.append(w[1])
        return ["200 result=1"]

    def _hangup_cmd(self, w: list[str], more: bool) -> object:
        if len(w) == 1 or (len(w) == 2 and w[1] == self.caller.channel):
            self._hangup_after = True
            return ["200 result=1"]
        if len(w) == 2:
            return ["200 result=1" if w[1] in self.options.other_channels else "200 result=-1"]
        return _USAGE_MARK

    def _db_put(self, w: list[str], more: bool) -> object:
        if len(w) != 5:
            return _USAGE_MARK
        self.options.astdb[f"{w[2]}/{w[3]}"] = w[4]
        return ["200 result=1"]

    def _db_get(self, w: list[str], more: bool) -> object:
        if len(w) != 4:
            return _USAGE_MARK
        value = self.options.astdb.get(f"{w[2]}/{w[3]}")
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _db_del(self, w: list[str], more: bool) -> object:
        if len(w) != 4:
            return _USAGE_MARK
        found = self.options.astdb.pop(f"{w[2]}/{w[3]}", None) is not None
        return [f"200 result={1 if found else 0}"]

    def _db_deltree(self, w: list[str], more: bool) -> object:
        if len(w) not in (3, 4):
            return _USAGE_MARK
        prefix = f"{w[2]}/" + (f"{w[3]}/" if len(w) == 4 else "")
        keys = [k for k in self.options.astdb if k.startswith(prefix)]
        for k in keys:
            del self.options.astdb[k]
        return [f"200 result={1 if keys else 0}"]

    def _set_context(self, w: list[str], more: bool) -> object:
        if len(w) != 3:
            return _USAGE_MARK
        self.context = w[2]
        return ["200 result=0"]

    def _set_extension(self, w: list[str], more: bool) -> object:
        if len(w) != 3:
            return _USAGE_MARK
        self.extension = w[2]
        return ["200 result=0"]

    def _set_priority(self, w: list[str], more: bool) -> object:
        if len(w) != 3:
            return _USAGE_MARK
        self.priority = w[2]
        return ["200 result=0"]

    def _set_callerid(self, w: list[str], more: bool) -> object:
        if len(w) >= 3:
            m = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', w[2])
            if m:
                self.callerid_name, self.callerid_num = m.group(1), m.group(2)
            else:
                self.callerid_num = w[2]
        return ["200 result=1"]

    def _set_autohangup(self, w: list[str], more: bool) -> object:
        if len(w) != 3 or not re.match(r"\s*[+-]?(\d|\.\d)", w[2]):
            return _USAGE_MARK
        return ["200 result=0"]

    def _media_interrupted(self) -> bool:
        """For a playback that reads no DTMF: is the caller hanging up during it?

        Digits still queued from an earlier action would arrive during the playback, which
        does not read them, so they are lost; if that action ended with ``then_hangup`` the
        hangup happens during this playback."""
        if self._interrupt:
            return True
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.record("##", f"DTMF {pending.digits!r} discarded during playback")
            return pending.then_hangup
        return False

    def _media_hangup(self, reply: str) -> list[str]:
        self._hangup_now = True
        self.clock_ms += 1000
        return [reply]

    def _say_digits(self, w: list[str], more: bool) -> object:
        if len(w) != 4 or _sscanf_int(w[2]) is None:
            return _USAGE_MARK
        if self._media_interrupted():
            return self._media_hangup("200 result=-1")
        self.clock_ms += 600 * len(w[2])
        return ["200 result=0"]

    def _say_number(self, w: list[str], more: bool) -> object:
        if len(w) not in (4, 5) or _sscanf_int(w[2]) is None:
            return _USAGE_MARK
        if self._media_interrupted():
            return self._media_hangup("200 result=-1")
        self.clock_ms += 1700
        return ["200 result=0"]

    def _say_text(self, w: list[str], more: bool) -> object:
        if len(w) != 4:
            return _USAGE_MARK
        if self._media_interrupted():
            return self._media_hangup("200 result=-1")
        self.clock_ms += 600 * len(w[2])
        return ["200 result=0"]

    def _say_date(self, w: list[str], more: bool) -> object:
        if len(w) != 4 or _sscanf_int(w[2]) is None:
            return _USAGE_MARK
        if self._media_interrupted():
            return self._media_hangup("200 result=-1")
        self.clock_ms += 2000
        return ["200 result=0"]

    def _say_datetime(self, w: list[str], more: bool) -> object:
        if len(w) < 4 or _sscanf_int(w[2]) is None:
            return _USAGE_MARK
        if self._media_interrupted():
            return self._media_hangup("200 result=-1")
        self.clock_ms += 3000
        return ["200 result=0"]

    def _wait_for_digit(self, w: list[str], more: bool) -> object:
        if len(w) != 4:
            return _USAGE_MARK
        to = _sscanf_int(w[3])
        if to is None:
            return _USAGE_MARK
        if self._interrupt:
            return self._media_hangup("200 result=-1")
        if more:  # 02:363: a new line aborts WAIT FOR DIGIT with result=1
            return ["200 result=1"]
        if to == 0:
            return ["200 result=0"]
        action = self._next_action()
        if isinstance(action, Hangup) or (
            isinstance(action, Dtmf) and not action.digits and action.then_hangup
        ):
            return self._media_hangup("200 result=-1")
        if isinstance(action, Dtmf) and action.digits:
            self.clock_ms += action.at_ms if action.at_ms is not None else 350
            self._keep_rest(action, action.digits[1:])
            return [f"200 result={ord(action.digits[0])}"]
        if to < 0:
            raise ScenarioError("WAIT FOR DIGIT -1 with no digit and no hangup never returns")
        self.clock_ms += to
        return ["200 result=0"]

    def _play(self, name: str, offset: int, esc: str, more: bool, *, option_ms: int = 0):
        """STREAM FILE / GET OPTION after the file was found.  ``None`` = aborted."""
        full = max(self.samples(name), offset)

        def pos(ms: int) -> int:
            return min(full, offset + ms * 8)

        if self._media_interrupted() if not esc else self._interrupt:
            return [f"200 result=-1 endpos={pos(1000)}"], True
        if more:
            self.clock_ms += 500
            return None, False
        played_ms = (full - offset) // 8
        if not esc:
            self._typed_over(name, played_ms)
        if esc and self.caller.waits_for_questions and not self._typed_during(name):
            pass  # the caller is listening: the prompt plays to its end
        elif esc:
            action = self._next_action()
            if isinstance(action, Hangup):
                self.clock_ms += 1000
                return [f"200 result=-1 endpos={pos(1000)}"], True
            if isinstance(action, Dtmf):
                at = action.at_ms if action.at_ms is not None else 200
                for k, d in enumerate(action.digits):
                    if d in esc:
                        t = at + 350 * k
                        self.clock_ms += min(t, played_ms + option_ms)
                        self._keep_rest(action, action.digits[k + 1 :])
                        return [f"200 result={ord(d)} endpos={pos(t)}"], False
                if action.then_hangup:
                    return [f"200 result=-1 endpos={pos(at)}"], True
        self.clock_ms += played_ms + option_ms
        return [f"200 result=0 endpos={full}"], False

    def _record_file(self, w: list[str], more: bool) -> object:
        """RECORD FILE file format escape timeout [offset] [BEEP] [s=silence]."""
        if len(w) < 6 or _sscanf_int(w[5]) is None:
            return _USAGE_MARK
        limit_ms = _sscanf_int(w[5]) or 0
        silence_ms = 0
        for extra in w[6:9]:
            if extra.startswith("s="):
                silence_ms = _atoi(extra[2:]) * 1000
        if self._interrupt:
            return self._media_hangup("200 result=-1 (hangup) endpos=0")
        self.clock_ms += 450 if any(x == "BEEP" for x in w[6:8]) else 0
        action = self._next_action()
        if isinstance(action, Hangup):
            spoken, end = 0, "hangup"
        elif isinstance(action, Speak):
            spoken, end = action.ms, action.end
        else:  # Timeout, or digits: the caller says nothing
            spoken, end = 0, "silence"
        if end == "max" or (limit_ms > 0 and spoken >= limit_ms):
            spoken, end = limit_ms, "max"
        if end == "silence" and not silence_ms:
            spoken, end = limit_ms, "max"  # nothing ends it but the limit
        kept = spoken + (min(1000, silence_ms) if end == "silence" else 0)
        samples = kept * 8
        path = f"{w[2]}.{w[3]}"
        try:
            _write_wav(path, samples)
        except OSError:
            self._fail()
            return ["200 result=-1 (writefile)"]
        self.record("##", f"recorded {kept} ms into {path} ({end})")
        self.clock_ms += spoken + (silence_ms if end == "silence" else 0)
        if end == "hangup":
            return self._media_hangup(f"200 result=-1 (hangup) endpos={samples}")
        if end == "hash":
            return [f"200 result={ord('#')} (dtmf) endpos={samples}"]
        if end == "silence":
            left = max(limit_ms - spoken - silence_ms, 1) if limit_ms > 0 else 1
            return [f"200 result={left} (timeout) endpos={samples}"]
        return [f"200 result=0 (timeout) endpos={samples}"]

    def _typed_during(self, name: str) -> bool:
        """Digits are waiting to be heard during this prompt (pending, or typed during it)."""
        if self._pending is not None:
            return True
        head = self._actions[0] if self._actions else None
        return isinstance(head, Dtmf) and head.during == name

    def _typed_over(self, name: str, played_ms: int) -> None:
        """Fact 16: digits typed during a prompt streamed without escape digits are lost;
        those that end after it reach the next input command."""
        if self._pending is not None or not self._actions:
            return
        action = self._actions[0]
        if not isinstance(action, Dtmf) or action.during != name:
            return
        self._actions.popleft()
        at = action.at_ms if action.at_ms is not None else 200
        lost = sum(1 for k in range(len(action.digits)) if at + 350 * k < played_ms)
        self.record("##", f"DTMF {action.digits[:lost]!r} lost during {name} (no escape digits)")
        rest = action.digits[lost:]
        if rest:
            first_after = at + 350 * lost - played_ms
            self._pending = Dtmf(
                rest, action.then_timeout, action.then_hangup, at_ms=max(first_after, 0)
            )
        elif action.then_hangup:
            self._hangup_after = True

    def _stream_file(self, w: list[str], more: bool) -> object:
        if len(w) not in (4, 5):
            return _USAGE_MARK
        offset = 0
        if len(w) == 5:
            parsed = _sscanf_int(w[4])
            if parsed is None:
                return _USAGE_MARK
            offset = parsed
        if not self.sound_exists(w[2]):
            self._fail()  # 01:201-241: makes AGISTATUS=FAILURE
            return [f"200 result=-1 endpos={offset}"]
        reply, hung = self._play(w[2], offset, w[3], more)
        if hung:
            self._hangup_now = True
        return reply if reply is not None else []

    def _get_option(self, w: list[str], more: bool) -> object:
        if len(w) not in (4, 5):
            return _USAGE_MARK
        if not self.sound_exists(w[2]):
            self._fail()
            return ["200 result=-1 endpos=0"]
        timeout = _atoi(w[4]) if len(w) == 5 else 5000
        reply, hung = self._play(w[2], 0, w[3] or "", more, option_ms=max(timeout, 0))
        if hung:
            self._hangup_now = True
        return reply if reply is not None else []

    def _collect(self, max_digits: int, first_ms: int, between_ms: int) -> tuple[str, str]:
        """Caller input for GET DATA / Read: (outcome, digits); outcome is
        ``term``/``max``/``timeout``/``hangup``."""
        action = self._next_action()
        if isinstance(action, Hangup):
            self.clock_ms += 1000
            return "hangup", ""
        if isinstance(action, Timeout):
            if first_ms < 0:
                raise ScenarioError("GET DATA with timeout -1 and no input never returns")
            self.clock_ms += first_ms
            return "timeout", ""
        self.clock_ms += action.at_ms if action.at_ms is not None else 200
        collected = ""
        for k, d in enumerate(action.digits):
            if k:
                self.clock_ms += 350
            if d == "#":
                self._keep_rest(action, action.digits[k + 1 :])
                return "term", collected
            collected += d
            if len(collected) >= max_digits:
                self._keep_rest(action, action.digits[k + 1 :])
                return "max", collected
        if action.then_hangup:
            return "hangup", collected
        wait = first_ms if not collected else between_ms
        if wait < 0:
            raise ScenarioError("GET DATA with timeout -1 and no input never returns")
        self.clock_ms += wait
        return "timeout", collected

    def _get_data(self, w: list[str], more: bool) -> object:
        if len(w) < 3:
            return _USAGE_MARK
        timeout = _atoi(w[3]) if len(w) >= 4 else 0
        max_digits = _atoi(w[4]) if len(w) >= 5 else 1024
        parts = [p.strip() for p in w[2].split("&")]
        if parts[-1] and not self.sound_exists(parts[-1]):
            return ["200 result=-1"]  # 02:334, at once; AGISTATUS not affected
        if max_digits == 0:
            return ["200 result=-1"]
        if self._interrupt:
            return self._media_hangup("200 result=-1")
        if more:
            self.clock_ms += 500
            return []
        if max_digits < 0:
            max_digits = 1024
        self.clock_ms += sum(self.samples(p) // 8 for p in parts if p and self.sound_exists(p))
        first, between = (timeout, timeout) if timeout else (6000, 2000)
        outcome, digits = self._collect(max_digits, first, between)
        if outcome == "hangup":
            self._hangup_now = True
            return ["200 result=-1"]
        if outcome == "timeout":
            return [f"200 result={digits} (timeout)"]
        return [f"200 result={digits}"]

    def _exec(self, w: list[str], more: bool) -> object:
        if len(w) < 2:
            return _USAGE_MARK
        options = w[2] if len(w) >= 3 else ""
        if _ast_true(self.vars.get("AGIEXECFULL")):
            options = self.substitute(options)
        apps = {a.lower(): a for a in self.options.known_apps}
        app = apps.get(w[1].lower())
        if app is None:
            return ["200 result=-2"]
        return [f"200 result={self._run_app(app.lower(), options)}"]

    def _run_app(self, app: str, options: str) -> int:
        if app == "set":
            name, _, value = options.partition("=")
            if name.strip():
                self._set(name.strip(), value)
            return 0
        if app == "hangup":
            if not self.dead:
                self._hangup_now = True
            return -1
        if self.dead:
            if app == "read":
                self._set(options.split(",")[0].strip(), "", by_script=False)
                self.vars["READSTATUS"] = "HANGUP"
            return 0
        if app == "read" and self._interrupt:
            self.vars["READSTATUS"] = "HANGUP"
            self._media_hangup("")
            return -1
        if app in _BLOCKING_APPS and app != "read" and self._media_interrupted():
            self._media_hangup("")
            return -1
        args = options.split(",")
        if app in ("playback", "background"):
            files = [f.strip() for f in args[0].split("&") if f.strip()]
            ok = all(self.sound_exists(f) for f in files)
            self.clock_ms += sum(self.samples(f) // 8 for f in files if self.sound_exists(f))
            if app == "playback":
                self.vars["PLAYBACKSTATUS"] = "SUCCESS" if ok else "FAILED"
            return 0
        if app == "wait":
            with contextlib.suppress(ValueError):
                self.clock_ms += int(float(args[0] or 0) * 1000)
            return 0
        if app == "read":
            return self._read_app(args)
        return 0

    def _read_app(self, args: list[str]) -> int:
        """Read(var,filename,maxdigits,options,attempts,timeout) (02:282-293)."""
        args += [""] * (6 - len(args))
        var, prompt = args[0].strip(), args[1].strip()
        max_digits = _atoi(args[2]) or 255
        attempts = max(_atoi(args[4]), 1)
        try:
            timeout_ms = int(float(args[5]) * 1000) if args[5].strip() else 6000
        except ValueError:
            timeout_ms = 6000
        digits, status = "", "TIMEOUT"
        for _ in range(attempts):
            if prompt and self.sound_exists(prompt):
                self.clock_ms += self.samples(prompt) // 8
            outcome, digits = self._collect(max_digits, timeout_ms, timeout_ms)
            if outcome == "hangup":
                self._set(var, "", by_script=False)
                self.vars["READSTATUS"] = "HANGUP"
                self._hangup_now = True
                return -1
            status = "TIMEOUT" if outcome == "timeout" else "OK"
            if digits:
                break
        self._set(var, digits, by_script=False)
        self.vars["READSTATUS"] = status
        return 0


def _write_wav(path: str, samples: int) -> None:
    """What Asterisk's ``wav`` format writes: 8 kHz, 16-bit, mono PCM (a quiet tone)."""
    import math
    import struct
    import wave

    frames = b"".join(
        struct.pack("<h", int(800 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(samples)
    )
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)


# --------------------------------------------------------------------------------------
# Process AGI
# --------------------------------------------------------------------------------------

_AST_DIRS = {
    "AST_CONFIG_DIR": "/etc/asterisk",
    "AST_CONFIG_FILE": "/etc/asterisk/asterisk.conf",
    "AST_MODULE_DIR": "/usr/lib/asterisk/modules",
    "AST_SPOOL_DIR": "/var/spool/asterisk",
    "AST_MONITOR_DIR": "/var/spool/asterisk/monitor",
    "AST_VAR_DIR": "/var/lib/asterisk",
    "AST_DATA_DIR": "/var/lib/asterisk",
    "AST_LOG_DIR": "/var/log/asterisk",
    "AST_AGI_DIR": "/var/lib/asterisk/agi-bin",
    "AST_KEY_DIR": "/var/lib/asterisk/keys",
    "AST_RUN_DIR": "/var/run/asterisk",
}


class _ProcessSession:
    def __init__(self, sim: FakeAsterisk, proc: subprocess.Popen[bytes], deadline: float):
        self.sim = sim
        self.proc = proc
        self.deadline = deadline
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.stdin_open = True
        self.stdout_open = True

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def sighup(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            self.sim.sighups += 1
            self.sim.record("!!", "SIGHUP")

    def write(self, lines: Sequence[str], *, record: bool = True) -> None:
        if record:
            for line in lines:
                self.sim.record("<<", line)
        if not lines or not self.stdin_open:
            return
        data = "".join(f"{line}\n" for line in lines).encode()
        try:
            view = memoryview(data)
            while view:
                written = os.write(self.stdin.fileno(), view)
                view = view[written:]
        except (BrokenPipeError, ConnectionResetError):
            self.sim.record("##", "write failed: broken pipe (script closed stdin)")
            self.close_stdin()

    def close_stdin(self) -> None:
        if self.stdin_open:
            self.stdin_open = False
            with contextlib.suppress(OSError):
                self.stdin.close()

    def close_stdout(self) -> None:
        if self.stdout_open:
            self.stdout_open = False
            with contextlib.suppress(OSError):
                self.stdout.close()

    def handle(self, raw: bytes, more: bool) -> bool:
        """Returns False when Asterisk stops talking to the script."""
        line = raw.decode(agi.ENCODING, errors="replace")
        self.sim.record(">>", line)
        out = self.sim.on_command(line, more)
        if out.stop:
            self.sim.record("##", "'failure' line: AGI ends")
            self.close_stdin()
            if self.sim.send_sighup:
                self.sighup()
            return False
        if out.hangup and self.sim.send_sighup:
            self.sighup()
        self.write(out.reply)
        if out.hangup and self.sim.exit_on_hangup:
            self.exit_on_hangup()
            return False
        return True

    def exit_on_hangup(self) -> None:
        """AGIEXITONHANGUP=yes: run_agi() breaks out, SIGHUPs again and closes the pipes."""
        self.sim.record("##", "AGIEXITONHANGUP: pipes closed")
        if self.sim.send_sighup:
            self.sighup()
        # stdout first: once the script sees EOF on stdin, its writes already fail (EPIPE)
        self.close_stdout()
        self.close_stdin()

    def run(self, env_lines: Sequence[str]) -> None:
        # every env line + "\n", the last one empty: byte-for-byte sim.env_block
        self.write(env_lines)
        if self.sim.caller.hangup_after_commands == 0 and not self.sim.dead:
            self.sim.hang_up()
            if self.sim.send_sighup:
                self.sighup()
            if self.sim.exit_on_hangup:
                self.exit_on_hangup()
                return
        fd = self.stdout.fileno()
        os.set_blocking(fd, False)
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    if not self.handle(raw, b"\n" in buf):
                        return
                remaining = self.remaining()
                if remaining <= 0 or not sel.select(remaining):
                    raise TimeoutError
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    if buf and not self.handle(buf, False):  # fgets() returns a last partial line
                        return
                    self.sim.record("##", "EOF on the script's stdout")
                    return
                buf += chunk


def run_process_agi(
    argv: Sequence[str | os.PathLike[str]],
    caller: Caller | None = None,
    *,
    options: PeerOptions | None = None,
    env_overrides: Mapping[str, str | None] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    cwd: str | os.PathLike[str] | None = None,
    interpreter: Sequence[str] | None = None,
) -> PeerResult:
    """Run ``argv`` (``[script, arg1, ...]`` as in ``AGI(script,arg1,...)``) as process AGI.

    ``env_overrides`` changes ``agi_*`` env lines (``None`` removes one; unknown keys are
    added before ``agi_arg_1``).  ``extra_env`` adds OS environment variables for the
    process (on top of ``os.environ`` and the ``AST_*_DIR`` variables Asterisk sets).
    ``interpreter`` defaults to this Python for ``*.py`` scripts (the script's own
    ``sys.argv`` is then ``[script, arg1, ...]`` as under Asterisk).  ``timeout`` is in real
    seconds; on expiry the script is killed and :class:`PeerTimeout` raised.
    """
    words = [os.fspath(a) for a in argv]
    script, args = words[0], words[1:]
    if interpreter is None:
        interpreter = [sys.executable] if script.endswith(".py") else []
    sim = FakeAsterisk(caller if caller is not None else Caller(), options)
    pairs = sim.env_pairs(request=script, args=args, overrides=env_overrides)
    sim.env_block = sim.env_bytes(pairs)
    proc_env = {**os.environ, **_AST_DIRS, **(extra_env or {})}
    proc = subprocess.Popen(
        [*interpreter, *words],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=proc_env,
        cwd=cwd,
    )
    stderr_chunks: list[bytes] = []

    def drain_stderr() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
            stderr_chunks.append(chunk)

    reader = threading.Thread(target=drain_stderr, daemon=True)
    reader.start()
    session = _ProcessSession(sim, proc, time.monotonic() + timeout)
    timed_out = False
    try:
        env_lines = [f"{k}: {v}" for k, v in pairs] + [""]
        assert "".join(f"{line}\n" for line in env_lines).encode() == sim.env_block
        session.run(env_lines)
        remaining = session.remaining()
        if remaining <= 0:
            raise TimeoutError
        proc.wait(timeout=remaining)
    except (TimeoutError, subprocess.TimeoutExpired):
        timed_out = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        session.close_stdin()
        session.close_stdout()
        reader.join(timeout=5)
        with contextlib.suppress(OSError):
            proc.stderr.close()  # type: ignore[union-attr]
    stderr = b"".join(stderr_chunks).decode(agi.ENCODING, errors="replace")
    exit_code = proc.returncode
    if timed_out:
        sim.record("##", f"peer timeout after {timeout} s: script killed")
        result = sim.result("process", exit_code, stderr)
        result.agistatus = "TIMEOUT"
        raise PeerTimeout(
            f"AGI script did not finish within {timeout} s; last lines: {result.transcript[-4:]}",
            result,
        )
    sim.record("##", f"script exited with {exit_code}")
    sim.finish(exit_code)
    return sim.result("process", exit_code, stderr)


# --------------------------------------------------------------------------------------
# FastAGI
# --------------------------------------------------------------------------------------


async def run_fastagi(
    host: str,
    port: int,
    script_path: str,
    caller: Caller | None = None,
    args: Sequence[str] = (),
    query: str = "",
    *,
    options: PeerOptions | None = None,
    env_overrides: Mapping[str, str | None] | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - a whole-session limit, like run_process_agi's
    split_delay: float = 0.01,
) -> PeerResult:
    """Be Asterisk running ``AGI(agi://host:port/script_path?query,args...)``.

    The env goes out in two writes split after ``agi_context`` with ``split_delay`` seconds
    between them.  The session ends when the server closes (AGISTATUS SUCCESS unless a
    failure/hangup happened); Asterisk then writes ``HANGUP`` and closes.  A refused
    connection returns AGISTATUS=FAILURE at once (04:151).  ``timeout`` (real seconds)
    raises :class:`PeerTimeout`.
    """
    sim = FakeAsterisk(caller if caller is not None else Caller(), options)
    script = script_path[1:] if script_path.startswith("/") else script_path
    q = query[1:] if query.startswith("?") else query
    script_q = f"{script}?{q}" if q else script
    request = f"agi://{host}:{port}/{script_q}"
    pairs = sim.env_pairs(
        request=request, args=args, network_script=script_q, overrides=env_overrides
    )
    sim.env_block = sim.env_bytes(pairs)
    deadline = time.monotonic() + timeout
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        sim.record("##", f"FastAGI connect failed: {exc!r}")
        sim.returnstatus = "FAILURE"
        return sim.result("fastagi", None)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    open_ = True

    async def send(lines: Sequence[str]) -> None:
        nonlocal open_
        for line in lines:
            sim.record("<<", line)
        if not lines or not open_:
            return
        try:
            writer.write("".join(f"{line}\n" for line in lines).encode())
            await writer.drain()
        except (ConnectionError, OSError):
            sim.record("##", "write failed: connection closed by the server")
            open_ = False

    async def send_raw(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    split = next(i for i, (k, _) in enumerate(pairs) if k == "agi_context") + 1
    first = "".join(f"{k}: {v}\n" for k, v in pairs[:split]).encode()
    for k, v in pairs:
        sim.record("<<", f"{k}: {v}")
    sim.record("<<", "")
    timed_out = False
    try:
        await send_raw(first)
        await asyncio.sleep(split_delay)
        await send_raw(sim.env_block[len(first) :])
        if sim.caller.hangup_after_commands == 0 and not sim.dead:
            sim.hang_up()
            if sim.send_sighup:
                await send([agi.HANGUP_LINE])
        buf = b""
        ended = False
        while not ended:
            while b"\n" in buf and not ended:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(agi.ENCODING, errors="replace")
                sim.record(">>", line)
                out = sim.on_command(line, b"\n" in buf)
                await send(out.reply)
                if out.hangup and sim.send_sighup:
                    await send([agi.HANGUP_LINE])
                if out.stop or (out.hangup and sim.exit_on_hangup):
                    ended = True
            if ended:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                chunk = await asyncio.wait_for(reader.read(65536), remaining)
            except ConnectionError:
                chunk = b""
            if not chunk:
                sim.record("##", "server closed the connection")
                break
            buf += chunk
        # run_agi() end: HANGUP (when AGISIGHUP allows it), then close.
        if sim.send_sighup:
            await send([agi.HANGUP_LINE])
    except TimeoutError:
        timed_out = True
    except ConnectionError as exc:
        sim.record("##", f"connection error: {exc!r}")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if timed_out:
        sim.record("##", f"peer timeout after {timeout} s")
        result = sim.result("fastagi", None)
        result.agistatus = "TIMEOUT"
        raise PeerTimeout(f"FastAGI session did not end within {timeout} s", result)
    sim.finish(None)
    return sim.result("fastagi", None)
