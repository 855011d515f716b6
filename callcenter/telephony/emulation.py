"""Asterisk's side of AGI: how it splits and recognises a command line, and its error replies.

Not used by the drivers (``process_agi``, ``fastagi``): this is what the test peer
(``tests/agi_peer.py``), the simulator (``callcenter simulate``) and the bench need to play
the switch, kept out of the protocol codec (:mod:`callcenter.telephony.agi`) that a process
AGI imports at every call's start. Checked against the Asterisk 22.10.1 recordings in
``/work/shared/asterisk-transcripts`` (``file:line``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

__all__ = [
    "AGI_COMMANDS",
    "DEAD_CHANNEL_REPLY",
    "INVALID_COMMAND_REPLY",
    "USAGE_END_LINE",
    "USAGE_FOLLOWS_LINE",
    "USAGE_NOT_AVAILABLE_REPLY",
    "match_command",
    "parse_command_args",
    "runs_on_dead_channel",
]

INVALID_COMMAND_REPLY: Final = "510 Invalid or unknown command"
DEAD_CHANNEL_REPLY: Final = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_NOT_AVAILABLE_REPLY: Final = "520 Invalid command syntax.  Proper usage not available."
USAGE_FOLLOWS_LINE: Final = "520-Invalid command syntax.  Proper usage follows:"
USAGE_END_LINE: Final = "520 End of proper usage."

#: Every AGI command of Asterisk 22 (as its words) -> whether it may run on a dead
#: (hung-up) channel.  Anything else gets ``510``; a ``False`` command on a dead channel
#: gets ``511`` before its arguments are even checked (03:139-140).
AGI_COMMANDS: Final[Mapping[tuple[str, ...], bool]] = {
    ("ANSWER",): False,
    ("ASYNCAGI", "BREAK"): True,
    ("CHANNEL", "STATUS"): False,
    ("DATABASE", "DEL"): True,
    ("DATABASE", "DELTREE"): True,
    ("DATABASE", "GET"): True,
    ("DATABASE", "PUT"): True,
    ("EXEC",): True,
    ("GET", "DATA"): False,
    ("GET", "FULL", "VARIABLE"): True,
    ("GET", "OPTION"): False,
    ("GET", "VARIABLE"): True,
    ("HANGUP",): False,
    ("NOOP",): True,
    ("RECEIVE", "CHAR"): False,
    ("RECEIVE", "TEXT"): False,
    ("RECORD", "FILE"): False,
    ("SAY", "ALPHA"): False,
    ("SAY", "DIGITS"): False,
    ("SAY", "NUMBER"): False,
    ("SAY", "PHONETIC"): False,
    ("SAY", "DATE"): False,
    ("SAY", "TIME"): False,
    ("SAY", "DATETIME"): False,
    ("SEND", "IMAGE"): False,
    ("SEND", "TEXT"): False,
    ("SET", "AUTOHANGUP"): False,
    ("SET", "CALLERID"): False,
    ("SET", "CONTEXT"): False,
    ("SET", "EXTENSION"): False,
    ("SET", "MUSIC"): False,
    ("SET", "PRIORITY"): False,
    ("SET", "VARIABLE"): True,
    ("STREAM", "FILE"): False,
    ("CONTROL", "STREAM", "FILE"): False,
    ("TDD", "MODE"): False,
    ("VERBOSE",): True,
    ("WAIT", "FOR", "DIGIT"): False,
    ("SPEECH", "CREATE"): False,
    ("SPEECH", "SET"): False,
    ("SPEECH", "DESTROY"): True,
    ("SPEECH", "LOAD", "GRAMMAR"): False,
    ("SPEECH", "UNLOAD", "GRAMMAR"): True,
    ("SPEECH", "ACTIVATE", "GRAMMAR"): False,
    ("SPEECH", "DEACTIVATE", "GRAMMAR"): False,
    ("SPEECH", "RECOGNIZE"): False,
    ("GOSUB",): False,
}


def parse_command_args(line: str) -> list[str]:
    """Split a command line exactly like Asterisk's ``parse_args()`` (res_agi.c).

    Whitespace separates words unless inside double quotes; ``"`` toggles quoting and is
    dropped; ``\\`` makes the next character literal; ``""`` is an empty word.  So
    ``SET VARIABLE X "a b"`` -> ``["SET", "VARIABLE", "X", "a b"]`` and pyst2's doubly quoted
    ``DATABASE GET ""fam"" ""key""`` -> ``["DATABASE", "GET", "fam", "key"]``.  The line must
    not contain its ``\\n``; a ``\\r`` is an ordinary character (as in Asterisk).
    """
    words: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                words.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                words[-1] = "".join(cur)
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
            words.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        words[-1] = "".join(cur)
    return words


def match_command(words: list[str]) -> tuple[str, ...] | None:
    """Asterisk's ``find_command()``: the command whose words start ``words``
    (case-insensitively), else ``None`` (-> ``510``).  Extra words are arguments, so
    ``noop lowercase works?`` is NOOP (01:175) and ``GET`` alone is unknown."""
    upper = [w.upper() for w in words]
    for cmd in AGI_COMMANDS:
        if len(upper) >= len(cmd) and tuple(upper[: len(cmd)]) == cmd:
            return cmd
    return None


def runs_on_dead_channel(words: tuple[str, ...]) -> bool:
    """Whether the command (as returned by :func:`match_command`) works after a hangup."""
    return AGI_COMMANDS[words]
