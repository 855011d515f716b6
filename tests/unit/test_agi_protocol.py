"""The AGI wire protocol (callcenter.telephony.agi) against the Asterisk 22 recordings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.telephony import agi, emulation
from callcenter.telephony.agi import HANGUP, AgiProtocolError, AgiReply, EnvParser, ReplyParser

# 01:87 - the raw bytes of a process-AGI env block, verbatim.
ENV_01 = (
    b"agi_request: /opt/recorder/agilog.py\nagi_channel: Local/1@golden-caller-00000000;1\n"
    b"agi_language: en\nagi_type: Local\nagi_uniqueid: 1795482833.0\nagi_version: 22.10.1\n"
    b"agi_callerid: 79001234567\nagi_calleridname: Golden Caller\nagi_callingpres: 0\n"
    b"agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
    b"agi_rdnis: unknown\nagi_context: golden-agi\nagi_extension: 1\nagi_priority: 5\n"
    b"agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 140520195507904\nagi_arg_1: s1\n"
    b"agi_arg_2: second arg\nagi_arg_3: third quoted arg\n\n"
)
# 04:144-145 - the FastAGI env block as the two recv() chunks it arrived in.
FAST_CHUNK_1 = (
    b"agi_network: yes\nagi_network_script: collect_certificate?x=1\n"
    b"agi_request: agi://127.0.0.1:4573/collect_certificate?x=1\n"
    b"agi_channel: Local/41@golden-caller-00000010;1\nagi_language: en\nagi_type: Local\n"
    b"agi_uniqueid: 1795483069.32\nagi_version: 22.10.1\nagi_callerid: unknown\n"
    b"agi_calleridname: unknown\nagi_callingpres: 67\nagi_callingani2: 0\nagi_callington: 0\n"
    b"agi_callingtns: 0\nagi_dnid: unknown\nagi_rdnis: unknown\nagi_context: golden-agi\n"
)
FAST_CHUNK_2 = (
    b"agi_extension: 41\nagi_priority: 3\nagi_enhanced: 0.0\nagi_accountcode: \n"
    b"agi_threadid: 140520194995904\nagi_arg_1: arg1\nagi_arg_2: arg2\n\n"
)

# 01:304-307 and 01:309-315: multi-line 520 replies of a build with XML docs.
USAGE_GET_DATA = [
    "520-Invalid command syntax.  Proper usage follows:",
    "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
    "Returns the digits received from the channel at the other end.",
    "520 End of proper usage.",
]
USAGE_STREAM_FILE = [
    "520-Invalid command syntax.  Proper usage follows:",
    "Send the given file, allowing playback to be interrupted by the given digits, if any. "
    "Returns <literal>0</literal> if playback completes without a digit being pressed, or the "
    "ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on error "
    "or if the channel was disconnected. If musiconhold is playing before calling stream file "
    "it will be automatically stopped and will not be restarted after completion.",
    "It sets the following channel variables upon completion:",
    "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.",
    "    <value>SUCCESS</value>",
    "    <value>FAILED</value>",
    "520 End of proper usage.",
]


# ---------------------------------------------------------------------------------------
# Environment block
# ---------------------------------------------------------------------------------------


def test_parse_env_of_transcript_01():
    env = agi.parse_env(ENV_01)
    assert list(env) == [*agi.AGI_ENV_KEYS, "agi_arg_1", "agi_arg_2", "agi_arg_3"]
    assert env["agi_channel"] == "Local/1@golden-caller-00000000;1"
    assert env["agi_calleridname"] == "Golden Caller"
    assert env["agi_accountcode"] == ""  # "agi_accountcode: " keeps the key, value empty
    assert env["agi_arg_2"] == "second arg"
    assert agi.agi_args(env) == ["s1", "second arg", "third quoted arg"]


def test_parse_env_accepts_lines_and_stops_at_the_empty_line():
    lines = ENV_01.decode().split("\n")
    assert agi.parse_env(lines) == agi.parse_env(ENV_01)
    assert agi.parse_env(["agi_channel: X\n", "\n", "ignored: after"]) == {"agi_channel": "X"}


def test_env_parser_reports_completion_only_at_the_empty_line_fastagi_two_chunks():
    p = EnvParser()
    assert p.feed(FAST_CHUNK_1) is False
    assert p.env["agi_context"] == "golden-agi"
    assert "agi_extension" not in p.env
    assert p.feed(FAST_CHUNK_2) is True
    assert list(p.env)[:3] == ["agi_network", "agi_network_script", "agi_request"]
    assert p.env["agi_network_script"] == "collect_certificate?x=1"
    assert p.env["agi_request"] == "agi://127.0.0.1:4573/collect_certificate?x=1"
    assert p.env["agi_callingpres"] == "67"
    assert agi.agi_args(p.env) == ["arg1", "arg2"]
    assert p.remainder == b""


@given(st.lists(st.integers(min_value=0, max_value=len(ENV_01)), max_size=12))
def test_env_parser_is_independent_of_how_the_bytes_are_split(cuts):
    points = sorted(set(cuts))
    chunks = [ENV_01[a:b] for a, b in zip([0, *points], [*points, len(ENV_01)], strict=True)]
    p = EnvParser()
    done = [p.feed(c) for c in chunks]
    assert done[-1] is True
    assert True not in done[:-1] or all(done[done.index(True) :])
    assert p.env == agi.parse_env(ENV_01)


def test_env_parser_byte_by_byte_and_keeps_what_follows():
    p = EnvParser()
    data = ENV_01 + b"HANGUP\n"
    results = [p.feed(data[i : i + 1]) for i in range(len(data))]
    assert results.index(True) == len(ENV_01) - 1
    assert p.remainder == b"HANGUP\n"
    assert p.env["agi_arg_3"] == "third quoted arg"


def test_env_values_keep_colons_spaces_and_utf8():
    env = agi.parse_env("agi_calleridname: Иванов: ИП \nagi_x:\n\n".encode())
    assert env == {"agi_calleridname": "Иванов: ИП ", "agi_x": ""}


def test_env_garbage_line_is_a_protocol_error():
    with pytest.raises(AgiProtocolError):
        EnvParser().feed(b"not an env line\n")


def test_agi_args_orders_numerically():
    env = {f"agi_arg_{n}": str(n) for n in (10, 2, 1, 9)}
    assert agi.agi_args(env) == ["1", "2", "9", "10"]


# ---------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------

REPLIES = [
    # line, code, result, data, endpos  (all recorded: 01/02/03)
    ("200 result=1 (value with spaces)", 200, "1", "value with spaces", None),
    ("200 result=1 (Golden Caller / en)", 200, "1", "Golden Caller / en", None),
    ("200 result=0", 200, "0", None, None),
    ("200 result=1 ()", 200, "1", "", None),
    ("200 result=6", 200, "6", None, None),
    ("200 result=0 endpos=7360", 200, "0", None, 7360),
    ("200 result=-1 endpos=0", 200, "-1", None, 0),
    ("200 result=53 endpos=19680", 200, "53", None, 19680),
    ("200 result= (timeout)", 200, "", "timeout", None),
    ("200 result=12 (timeout)", 200, "12", "timeout", None),
    ("200 result=", 200, "", None, None),
    ("200 result=*12", 200, "*12", None, None),
    ("200 result=-2", 200, "-2", None, None),
    ("200 result=-1", 200, "-1", None, None),
    (
        "200 result=1 (Local/3d@golden-caller-0000000c;1)",
        200,
        "1",
        "Local/3d@golden-caller-0000000c;1",
        None,
    ),
    ("200 result=1 (${CHANNEL(linkedid)})", 200, "1", "${CHANNEL(linkedid)}", None),
    ("200 result=0 (timeout) endpos=1234", 200, "0", "timeout", 1234),  # RECORD FILE form
    ("510 Invalid or unknown command", 510, "", None, None),
    ("511 Command Not Permitted on a dead channel or intercept routine", 511, "", None, None),
    ("520 Invalid command syntax.  Proper usage not available.", 520, "", None, None),
]


@pytest.mark.parametrize(("line", "code", "result", "data", "endpos"), REPLIES)
def test_reply_forms(line, code, result, data, endpos):
    reply = agi.parse_reply(line)
    assert reply == AgiReply(code=code, result=result, data=data, endpos=endpos, raw=line)
    assert ReplyParser().feed_line(line + "\n") == reply


def test_reply_helpers():
    r = agi.parse_reply
    assert r("200 result=1234").digits == "1234"
    assert r("200 result=1234").timed_out is False
    assert r("200 result=12 (timeout)").digits == "12"
    assert r("200 result=12 (timeout)").timed_out is True
    assert r("200 result= (timeout)").digits == ""
    assert r("200 result= (timeout)").timed_out is True
    assert r("200 result=").digits == ""  # only '#'
    assert r("200 result=").timed_out is False
    assert r("200 result=-1").digits is None
    assert r("200 result=-1").is_hangup is True
    assert r("200 result=-1 endpos=0").is_hangup is True
    assert r("511 Command Not Permitted on a dead channel or intercept routine").is_hangup
    assert r("511 Command Not Permitted on a dead channel or intercept routine").ok is False
    assert r("200 result=0").is_hangup is False
    assert r("200 result=0").ok is True
    assert r("200 result=-2").int_result == -2
    assert r("200 result=").int_result is None
    assert r("200 result=55").dtmf == "7"
    assert r("200 result=42").dtmf == "*"
    assert r("200 result=35").dtmf == "#"
    assert r("200 result=0").dtmf == ""
    assert r("200 result=-1").dtmf is None
    assert r("510 Invalid or unknown command").message == "Invalid or unknown command"
    assert r("510 Invalid or unknown command").digits is None
    assert str(r("200 result=0")) == "200 result=0"


@pytest.mark.parametrize("lines", [USAGE_GET_DATA, USAGE_STREAM_FILE])
def test_multiline_520_is_read_until_a_line_with_three_digits_and_a_space(lines):
    p = ReplyParser()
    for line in lines[:-1]:
        assert p.feed_line(line + "\n") is None
        assert p.in_progress
    reply = p.feed_line(lines[-1] + "\n")
    assert isinstance(reply, AgiReply)
    assert reply.code == 520
    assert reply.raw == "\n".join(lines)
    assert reply.usage == lines[1:-1]
    assert reply.message == "Invalid command syntax.  Proper usage follows:"
    assert not p.in_progress
    assert reply == agi.parse_reply("\n".join(lines) + "\n")


def test_multiline_520_only_ends_at_three_digits_and_a_space():
    lines = [
        "520-Invalid command syntax.  Proper usage follows:",
        "2000 ms between digits, 6000 before the first",
        "123-dashes are still text",
        "",
        "520 End of proper usage.",
    ]
    events = ReplyParser().feed(("\n".join(lines) + "\n").encode())
    assert len(events) == 1
    assert events[0].usage == lines[1:-1]


def test_single_line_520_has_no_usage():
    reply = agi.parse_reply("520 Invalid command syntax.  Proper usage not available.")
    assert reply.usage == []
    assert reply.message == "Invalid command syntax.  Proper usage not available."


def test_hangup_line_is_an_event_not_a_reply():
    p = ReplyParser()
    assert p.feed_line("HANGUP\n") is HANGUP
    assert repr(HANGUP) == "HANGUP"
    # 03:288-290: the reply comes first, HANGUP after it; both can arrive in one chunk
    assert ReplyParser().feed(b"200 result=-1\nHANGUP\n") == [
        agi.parse_reply("200 result=-1"),
        HANGUP,
    ]


def test_reply_parser_feed_handles_arbitrary_chunks_and_keeps_partial_lines():
    data = (
        "\n".join(["200 result=0", *USAGE_STREAM_FILE, "HANGUP", "200 result=12 (timeout)"]) + "\n"
    ).encode()
    for size in (1, 2, 7, 64, len(data)):
        p = ReplyParser()
        events = []
        for i in range(0, len(data), size):
            events += p.feed(data[i : i + size])
        assert [e if e is HANGUP else e.code for e in events] == [200, 520, HANGUP, 200]
        assert events[1].usage == USAGE_STREAM_FILE[1:-1]
        assert events[3].timed_out
        assert not p.in_progress
    p = ReplyParser()
    assert p.feed(b"200 res") == []
    assert p.in_progress
    assert p.feed(b"ult=7\n") == [agi.parse_reply("200 result=7")]


@pytest.mark.parametrize("line", ["hello", "20 result=1", "", "HANGUP now", "200result=1"])
def test_garbage_is_a_protocol_error(line):
    with pytest.raises(AgiProtocolError):
        ReplyParser().feed_line(line)


def test_parse_reply_rejects_incomplete_or_extra_text():
    with pytest.raises(AgiProtocolError):
        agi.parse_reply(USAGE_GET_DATA[0])
    with pytest.raises(AgiProtocolError):
        agi.parse_reply("200 result=0\n200 result=1\n")


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "expected"),
    [  # every expected line is verbatim from a transcript
        (agi.answer(), "ANSWER\n"),
        (agi.stream_file("digits/1"), 'STREAM FILE digits/1 ""\n'),
        (agi.stream_file("silence/1", "", 0), 'STREAM FILE silence/1 "" 0\n'),
        (agi.stream_file("silence/10", "0123456789*#"), 'STREAM FILE silence/10 "0123456789*#"\n'),
        (
            agi.set_variable("FROMAGI", "value with spaces"),
            'SET VARIABLE FROMAGI "value with spaces"\n',
        ),
        (agi.set_variable("EMPTYVAR", ""), 'SET VARIABLE EMPTYVAR ""\n'),
        (agi.set_variable("CHANNEL(language)", "ru"), "SET VARIABLE CHANNEL(language) ru\n"),
        (agi.set_variable("CERT", 5550001), "SET VARIABLE CERT 5550001\n"),
        (agi.get_data("silence/1", 5000, 16), "GET DATA silence/1 5000 16\n"),
        (agi.get_data("silence/1", 1000), "GET DATA silence/1 1000\n"),
        (agi.get_data("beep"), "GET DATA beep\n"),
        (agi.exec_("Playback", "silence/1,noanswer"), 'EXEC Playback "silence/1,noanswer"\n'),
        (agi.exec_("Playback", "silence/1"), "EXEC Playback silence/1\n"),
        (agi.exec_("Set", "EXECVAR=from exec"), 'EXEC Set "EXECVAR=from exec"\n'),
        (agi.exec_("Read", "DIGITS,silence/1,4,,1,3"), 'EXEC Read "DIGITS,silence/1,4,,1,3"\n'),
        (agi.exec_("NoOp", "x"), "EXEC NoOp x\n"),
        (agi.get_variable("MYVAR"), "GET VARIABLE MYVAR\n"),
        (agi.get_variable("CHANNEL(linkedid)"), "GET VARIABLE CHANNEL(linkedid)\n"),
        (agi.get_full_variable("${CALLERID(num)}"), "GET FULL VARIABLE ${CALLERID(num)}\n"),
        (
            agi.get_full_variable("${CALLERID(name)} / ${CHANNEL(language)}"),
            'GET FULL VARIABLE "${CALLERID(name)} / ${CHANNEL(language)}"\n',
        ),
        (agi.verbose("hello from agi", 1), 'VERBOSE "hello from agi" 1\n'),
        (agi.say_digits("1234"), 'SAY DIGITS 1234 ""\n'),
        (agi.say_number(42), 'SAY NUMBER 42 ""\n'),
        (agi.wait_for_digit(5000), "WAIT FOR DIGIT 5000\n"),
        (agi.hangup(), "HANGUP\n"),
        (agi.noop(), "NOOP\n"),
        (agi.channel_status(), "CHANNEL STATUS\n"),
        (agi.database_put("golden", "hh", "yes"), "DATABASE PUT golden hh yes\n"),
        (agi.database_get("golden", "hh"), "DATABASE GET golden hh\n"),
    ],
)
def test_builders_produce_what_the_transcripts_show(built, expected):
    assert built == expected


def test_quoting_escapes_quotes_and_backslashes():
    assert agi.format_command("SET VARIABLE", "X", 'say "hi"') == 'SET VARIABLE X "say \\"hi\\""\n'
    assert agi.format_command("SET VARIABLE", "X", "a\\b") == 'SET VARIABLE X "a\\\\b"\n'
    assert agi.format_command("VERBOSE", "tab\there") == 'VERBOSE "tab\there"\n'
    assert agi.format_command("VERBOSE", "Привет") == "VERBOSE Привет\n"
    assert agi.exec_("Set", 'X="a,b"') == 'EXEC Set "X=\\"a,b\\""\n'


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_unsendable_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        agi.set_variable("X", bad)
    with pytest.raises(ValueError):
        agi.format_command(bad)


def test_format_command_refuses_non_text_arguments():
    with pytest.raises(TypeError):
        agi.format_command("SET VARIABLE", "X", None)
    with pytest.raises(ValueError):
        agi.format_command()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            'SET VARIABLE FROMAGI "value with spaces"',
            ["SET", "VARIABLE", "FROMAGI", "value with spaces"],
        ),
        ('STREAM FILE digits/1 "" 0', ["STREAM", "FILE", "digits/1", "", "0"]),
        ('DATABASE GET ""golden"" ""hh""', ["DATABASE", "GET", "golden", "hh"]),  # pyst2's form
        ('a""b  "c d"e', ["ab", "c de"]),
        ('X "a\\"b" c\\ d \\\\', ["X", 'a"b', "c d", "\\"]),
        ("  NOOP   ", ["NOOP"]),
        ("", []),
        ("ANSWER\r", ["ANSWER\r"]),
    ],
)
def test_parse_command_args_like_asterisk(line, words):
    assert emulation.parse_command_args(line) == words


_arg_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\0", blacklist_categories=("Cs",)),
    max_size=20,
)


@given(st.lists(st.one_of(_arg_text, st.integers()), max_size=6))
def test_formatted_commands_split_back_into_the_same_arguments(args):
    line = agi.format_command("SET VARIABLE", *args)
    assert line.endswith("\n") and line.count("\n") == 1
    assert emulation.parse_command_args(line[:-1]) == ["SET", "VARIABLE", *map(str, args)]


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("ANSWER", ("ANSWER",)),
        ("ANSWER extra", ("ANSWER",)),
        ("noop lowercase works?", ("NOOP",)),
        ("channel status", ("CHANNEL", "STATUS")),
        ("GET FULL VARIABLE ${X}", ("GET", "FULL", "VARIABLE")),
        ("GET VARIABLE X", ("GET", "VARIABLE")),
        ("get data", ("GET", "DATA")),
        ("WAIT FOR DIGIT 5000", ("WAIT", "FOR", "DIGIT")),
        ("GET", None),
        ("WAIT FOR", None),
        ("FOO BAR", None),
        ("", None),
    ],
)
def test_match_command(line, command):
    assert emulation.match_command(emulation.parse_command_args(line)) == command


def test_dead_channel_table_matches_transcript_03():
    dead_ok = {"GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "VERBOSE", "NOOP", "EXEC"}
    live_only = {
        "ANSWER",
        "CHANNEL STATUS",
        "STREAM FILE",
        "GET DATA",
        "WAIT FOR DIGIT",
        "SAY DIGITS",
        "SAY NUMBER",
        "HANGUP",
    }
    for name in dead_ok | {"DATABASE GET", "DATABASE PUT"}:
        assert emulation.runs_on_dead_channel(tuple(name.split())), name
    for name in live_only:
        assert not emulation.runs_on_dead_channel(tuple(name.split())), name
