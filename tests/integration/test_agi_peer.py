"""The fake Asterisk (tests/agi_peer.py) is faithful to the Asterisk 22 recordings.

Real subprocesses (a raw-stdio script that replays the recorded command lines, and pyst2
scripts) and a real TCP FastAGI server; the expected replies are read from the transcript
files themselves wherever possible.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import textwrap
from pathlib import Path

import pytest

from callcenter.telephony.agi import HANGUP, EnvParser, ReplyParser, parse_env
from tests.agi_peer import (
    Caller,
    Dtmf,
    FakeAsterisk,
    Hangup,
    PeerOptions,
    PeerTimeout,
    ScenarioError,
    Timeout,
    UnsupportedCommand,
    run_fastagi,
    run_process_agi,
)
from tests.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = Path("/work/shared/asterisk-transcripts")
PYENV = {"PYTHONPATH": str(ROOT)}
_LINE = re.compile(r"^\s+\d+\.\d+ (<<|>>)(?: (.*))?$")

needs_transcripts = pytest.mark.skipif(
    not TRANSCRIPTS.is_dir(), reason="golden transcripts not available"
)


def recorded_steps(name: str, start: str, end: str | None = None) -> list[dict]:
    """The dialogue of one transcript section as replay steps:
    ``[{"send": [command], "replies": n, "expected": [reply text, ...]}, ...]``."""
    text = (TRANSCRIPTS / name).read_text()
    i = text.index(start)
    section = text[i : text.index(end, i)] if end else text[i:]
    lines = [m.groups() for m in map(_LINE.match, section.splitlines()) if m]
    # skip the raw-bytes reprs (04:144) and notes like "[EOF on stdin]"
    lines = [(d, t or "") for d, t in lines if not (t or "").startswith(("b'", "["))]
    if ("<<", "(empty line)") in lines:
        lines = lines[lines.index(("<<", "(empty line)")) + 1 :]
    steps: list[dict] = []
    parser = ReplyParser()
    for direction, text_ in lines:
        if direction == ">>":
            steps.append({"send": [text_], "expected": []})
        else:
            event = parser.feed_line(text_)
            if event is not None:
                steps[-1]["expected"].append("HANGUP" if event is HANGUP else event.raw)
    for step in steps:
        step["replies"] = len(step["expected"])
    return steps


# A raw-stdio AGI script: reads the env block, then replays a JSON plan of steps, reading
# the replies with callcenter's ReplyParser, and reports everything as JSON.
REPLAY_SCRIPT = textwrap.dedent(
    """\
    import json, os, signal, sys, time
    from callcenter.telephony.agi import HANGUP, ReplyParser

    plan = json.load(open(os.environ["PLAN"]))
    sighups = []
    signal.signal(signal.SIGHUP, lambda *a: sighups.append(1))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    env = b""
    while True:
        line = inp.readline()
        env += line
        if line in (b"\\n", b""):
            break
    result = {"env": env.decode("latin-1"), "steps": [], "argv": sys.argv[1:]}
    parser = ReplyParser()

    def report(code):
        with open(os.environ["REPORT"], "w") as f:
            json.dump(result, f)
        os._exit(code)

    for step in plan:
        rec = {}
        if "wait_sighup" in step:
            deadline = time.monotonic() + step["wait_sighup"]
            while not sighups and time.monotonic() < deadline:
                time.sleep(0.002)
        if "send" in step:
            try:
                out.write("".join(c + "\\n" for c in step["send"]).encode())
                out.flush()
            except BrokenPipeError:
                rec["write_error"] = "EPIPE"
            replies = []
            while len(replies) < step.get("replies", 1):
                line = inp.readline()
                if not line:
                    rec["eof"] = True
                    break
                event = parser.feed_line(line.decode())
                if event is not None:
                    replies.append("HANGUP" if event is HANGUP else event.raw)
            rec["replies"] = replies
        if step.get("read_eof"):
            rec["eof"] = inp.read() == b""
        rec["sighups"] = len(sighups)
        result["steps"].append(rec)
        if "exit" in step:
            report(step["exit"])
    report(0)
    """
)


def replay(tmp_path: Path, plan: list[dict], caller: Caller, args=("x",), **kw):
    script = tmp_path / "replay_agi.py"
    script.write_text(REPLAY_SCRIPT)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    report = tmp_path / "report.json"
    result = run_process_agi(
        [script, *args],
        caller,
        extra_env={**PYENV, "PLAN": str(plan_file), "REPORT": str(report)},
        timeout=kw.pop("timeout", 10.0),
        **kw,
    )
    return result, json.loads(report.read_text()) if report.exists() else None


def caller_01(**kw) -> Caller:
    """The channel of transcript 01 (dialplan [golden-agi] exten 1)."""
    base = dict(
        caller_id="79001234567",
        caller_name="Golden Caller",
        language="en",
        variables={"MYVAR": "hello world"},
        channel="Local/1@golden-caller-00000000;1",
        uniqueid="1795482833.0",
        context="golden-agi",
        extension="1",
        priority=5,
    )
    base.update(kw)
    return Caller(**base)


# ---------------------------------------------------------------------------------------
# Process AGI: env block and the recorded dialogues, replayed line by line
# ---------------------------------------------------------------------------------------


@needs_transcripts
def test_env_block_is_byte_for_byte_transcript_01(tmp_path):
    result, report = replay(
        tmp_path,
        [],
        caller_01(),
        args=("s1", "second arg", "third quoted arg"),
        env_overrides={"agi_request": "/opt/recorder/agilog.py"},
    )
    recorded = (TRANSCRIPTS / "01-agi-env-and-basic-commands.txt").read_text()
    raw = re.search(r"0\.000 << (b'agi_request.*)$", recorded, re.M).group(1)
    expected = ast.literal_eval(raw)  # the Python repr of the read() chunk, 01:87
    assert report["env"].encode("latin-1") == expected
    assert result.env_block == expected
    assert result.sent[: len(parse_env(expected)) + 1][-1] == ""
    assert result.agistatus == "SUCCESS" and result.exit_code == 0


def test_env_defaults_and_unknown_caller(tmp_path):
    _, report = replay(tmp_path, [], Caller(caller_id=None), args=())
    env = parse_env(report["env"])
    assert list(env)[:2] == ["agi_request", "agi_channel"]
    assert len(env) == 20 and "agi_network" not in env
    assert env["agi_request"].endswith("replay_agi.py")
    assert (env["agi_callerid"], env["agi_calleridname"], env["agi_callingpres"]) == (
        "unknown",
        "unknown",
        "67",
    )
    assert env["agi_language"] == "ru"
    assert env["agi_type"] == "PJSIP"
    assert report["env"].endswith("agi_accountcode: \nagi_threadid: 140520195507904\n\n")


@needs_transcripts
@pytest.mark.parametrize(
    ("section", "end", "xmldoc", "agistatus"),
    [
        ("B. Commands and replies", "C. What AGISTATUS", False, "FAILURE"),
        ("D.1 build WITHOUT xml docs", "D.2 build WITH xml docs", False, "SUCCESS"),
        ("D.2 build WITH xml docs", "E. Asterisk full log", True, "SUCCESS"),
    ],
)
def test_transcript_01_replayed(tmp_path, section, end, xmldoc, agistatus):
    steps = recorded_steps("01-agi-env-and-basic-commands.txt", section, end)
    assert len(steps) > 10
    result, report = replay(tmp_path, steps, caller_01(), options=PeerOptions(xmldoc=xmldoc))
    got = [s["replies"] for s in report["steps"]]
    assert got == [s["expected"] for s in steps]
    assert result.agistatus == agistatus
    if section.startswith("B."):
        assert result.variables["FROMAGI"] == "last value"
        assert result.variables["EXECVAR"] == "from exec"
        assert result.variables["EMPTYVAR"] == ""
        assert result.channel_variables["PLAYBACKSTATUS"] == "FAILED"
        assert result.verbose == ["hello from agi", "hello"]


def caller_02(actions, **kw) -> Caller:
    # the recording sent DTMF during STREAM FILE with escape digits without waiting
    return Caller(language="en", caller_id=None, actions=actions, waits_for_questions=False, **kw)


CASES_02 = {
    "2a": ("2a. digits terminated", "2b. max length", [Dtmf("123#")]),
    "2b": ("2b. max length", "2c. timeout", [Dtmf("123456")]),
    "2c": ("2c. timeout", "2d. partial", []),
    "2d": ("2d. partial", "2e. '*' and '#'", [Dtmf("12", then_timeout=True)]),
    "2e": (
        "2e. '*' and '#'",
        "2f. WAIT FOR DIGIT",
        [Dtmf("*12#"), Dtmf("#"), Dtmf("1*2*3#"), Dtmf("4#5#")],
    ),
    "2f": (
        "2f. WAIT FOR DIGIT",
        "2g. Read()",
        [Dtmf("7"), Dtmf("*"), Dtmf("#"), Timeout(), Dtmf("5", at_ms=2460)],
    ),
    "2g": ("2g. Read()", "2h. DTMF sent", [Dtmf("42#"), Timeout()]),
    "2h": ("2h. DTMF sent", "2j. GET DATA with a prompt", []),
    "2j": ("2j. GET DATA with a prompt", "2i. pipelining", []),
}


@needs_transcripts
@pytest.mark.parametrize("case", sorted(CASES_02))
def test_transcript_02_replayed(tmp_path, case):
    start, end, actions = CASES_02[case]
    steps = recorded_steps("02-agi-get-data-and-dtmf.txt", start, end)
    result, report = replay(tmp_path, steps, caller_02(actions))
    assert [s["replies"] for s in report["steps"]] == [s["expected"] for s in steps]
    assert result.agistatus == "SUCCESS"
    # 2e: the final '#' of "4#5#" arrives after the script ended
    assert result.unused_actions == ([Dtmf("#")] if case == "2e" else [])


def test_pipelined_lines_abort_get_data_stream_file_and_wait_for_digit(tmp_path):
    """02:345-370: a second line written while the first runs."""
    plan = [
        {"send": ["ANSWER"]},
        {"send": ["GET DATA silence/1 5000 16", "NOOP"], "replies": 1},
        {"send": ['STREAM FILE silence/10 ""', "NOOP"], "replies": 1},
        {"send": ["WAIT FOR DIGIT 5000", "NOOP"], "replies": 2},
        {"send": ["EXEC Playback silence/3", "NOOP"], "replies": 2},
    ]
    result, report = replay(
        tmp_path, plan, caller_02([]), options=PeerOptions(sound_patterns=("silence/*",))
    )
    assert [s["replies"] for s in report["steps"]] == [
        ["200 result=0"],
        ["200 result=0"],
        ["200 result=0"],
        ["200 result=1", "200 result=0"],
        ["200 result=0", "200 result=0"],
    ]
    assert result.reply_to("GET DATA silence/1 5000 16") == []


@needs_transcripts
@pytest.mark.parametrize("sighup", [True, False])
def test_transcript_03_hangup_during_get_data_replayed(tmp_path, sighup):
    """3.1 / 3.2: 200 result=-1, SIGHUP (unless AGISIGHUP=no), then 511 / 200 / 510."""
    if sighup:
        steps = recorded_steps("03-agi-hangup-during-get-data.txt", "3.1 default", "3.2 Set(")
        variables = {"MYVAR": "hello"}
        channel = "Local/3d@golden-caller-0000000c;1"
    else:
        steps = recorded_steps("03-agi-hangup-during-get-data.txt", "3.2 Set(", "3.3 Set(")
        variables = {"AGISIGHUP": "no", "MYVAR": "hello"}
        channel = "Local/3n@golden-caller-0000000d;1"
    caller = Caller(variables=variables, channel=channel, actions=[Dtmf("12", then_hangup=True)])
    result, report = replay(tmp_path, steps, caller)
    assert [s["replies"] for s in report["steps"]] == [s["expected"] for s in steps]
    sighups = [s["sighups"] for s in report["steps"]]
    if sighup:
        # the signal is there before the script reads the "200 result=-1"
        assert sighups[:2] == [0, 1] and sighups[-1] == 1
        assert ("!!", "SIGHUP") in result.transcript
    else:
        assert set(sighups) == {0}
        assert result.sighups == 0
    assert all(d != "<<" or line != "HANGUP" for d, line in result.transcript)
    assert result.agistatus == "HANGUP"
    assert result.hung_up
    assert result.variables["AFTERHANGUP"] == "1"


@pytest.mark.parametrize("agisighup", [None, "no"])
def test_hangup_while_idle(tmp_path, agisighup):
    """3.4 / 3.5: SIGHUP arrives while no command runs; the next commands get 511/200."""
    variables = {"MYVAR": "hello"} | ({"AGISIGHUP": agisighup} if agisighup else {})
    plan = [
        {"send": ["ANSWER"]},
        {"wait_sighup": 2.0 if agisighup is None else 0.05},
        {"send": ["CHANNEL STATUS"]},
        {"send": ['STREAM FILE digits/1 ""']},
        {"send": ["GET VARIABLE MYVAR"]},
    ]
    caller = Caller(variables=variables, hangup_after_commands=1)
    result, report = replay(tmp_path, plan, caller)
    assert [s.get("replies") for s in report["steps"]] == [
        ["200 result=0"],
        None,
        ["511 Command Not Permitted on a dead channel or intercept routine"],
        ["511 Command Not Permitted on a dead channel or intercept routine"],
        ["200 result=1 (hello)"],
    ]
    assert report["steps"][-1]["sighups"] == (1 if agisighup is None else 0)
    assert result.agistatus == "HANGUP"


def test_agiexitonhangup_closes_both_pipes(tmp_path):
    """3.3: SIGHUP, 200 result=-1, then EOF on stdin and EPIPE on writes."""
    plan = [
        {"send": ["ANSWER"]},
        {"send": ["GET DATA silence/1 5000 16"]},
        {"read_eof": True},
        {"send": ["CHANNEL STATUS"]},
    ]
    caller = Caller(variables={"AGIEXITONHANGUP": "yes"}, actions=[Hangup()])
    result, report = replay(tmp_path, plan, caller)
    steps = report["steps"]
    assert steps[1]["replies"] == ["200 result=-1"]
    assert steps[1]["sighups"] >= 1
    assert steps[2]["eof"] is True
    assert steps[3]["write_error"] == "EPIPE"
    assert result.agistatus == "HANGUP"
    assert result.commands == ["ANSWER", "GET DATA silence/1 5000 16"]


# ---------------------------------------------------------------------------------------
# AGISTATUS
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "caller", "status", "exit_code"),
    [
        # 01 C.1: a failed command makes FAILURE although the exit is clean
        ([{"send": ["ANSWER"]}, {"send": ['STREAM FILE no-such-file ""']}], Caller(), "FAILURE", 0),
        # 01 C.2
        ([{"send": ["ANSWER"]}, {"send": ['STREAM FILE silence/1 ""']}], Caller(), "SUCCESS", 0),
        # 01 C.3
        ([{"send": ["ANSWER"], "exit": 3}], Caller(), "FAILURE", 3),
        # 02 2j: a missing GET DATA prompt does NOT count
        ([{"send": ["GET DATA no-such-file 2000 4"]}], Caller(), "SUCCESS", 0),
        # 03: hangup
        ([{"send": ["GET DATA silence/1 5000 16"]}], Caller(actions=[Hangup()]), "HANGUP", 0),
        # res_agi.c: HANGUP is kept even with a non-zero exit ...
        (
            [{"send": ["GET DATA silence/1 5000 16"], "exit": 2}],
            Caller(actions=[Hangup()]),
            "HANGUP",
            2,
        ),
        # ... and a failure before the hangup wins over HANGUP
        (
            [{"send": ['STREAM FILE nope ""']}, {"send": ["GET DATA silence/1 5000 16"]}],
            Caller(actions=[Hangup()]),
            "FAILURE",
            0,
        ),
        # hangup handler: dead from the start, no SIGHUP, 511 for live-only commands
        (
            [{"send": ["CHANNEL STATUS"]}, {"send": ["GET VARIABLE X"]}],
            Caller(dead=True, variables={"X": "1"}),
            "SUCCESS",
            0,
        ),
    ],
)
def test_agistatus(tmp_path, plan, caller, status, exit_code):
    result, report = replay(tmp_path, plan, caller)
    assert result.agistatus == status
    assert result.exit_code == exit_code
    if caller.dead:
        assert [s["replies"] for s in report["steps"]] == [
            ["511 Command Not Permitted on a dead channel or intercept routine"],
            ["200 result=1 (1)"],
        ]
        assert result.sighups == 0


def test_script_without_sighup_handler_is_killed_and_status_is_hangup(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(
            """\
            import sys
            while sys.stdin.readline() not in ("\\n", ""):
                pass
            print("GET DATA silence/1 5000 16", flush=True)
            sys.stdin.readline()
            print("NOOP", flush=True)
            sys.stdin.readline()
            """
        )
    )
    result = run_process_agi([script], Caller(actions=[Dtmf("1", then_hangup=True)]))
    assert result.exit_code == -1  # killed by SIGHUP (default action)
    assert result.agistatus == "HANGUP"


def test_hangup_during_a_non_input_command_and_the_hangup_command(tmp_path):
    plan = [
        {"send": ["ANSWER"]},
        {"send": ['SAY DIGITS 1234 ""']},
        {"send": ["SET VARIABLE X 1"]},
    ]
    result, report = replay(tmp_path, plan, Caller(hangup_during_command=2))
    assert [s["replies"] for s in report["steps"]] == [
        ["200 result=0"],
        ["200 result=-1"],
        ["200 result=1"],
    ]
    assert result.agistatus == "HANGUP" and result.sighups == 1

    plan = [{"send": ["HANGUP"]}, {"send": ["ANSWER"]}]
    result, report = replay(tmp_path, plan, Caller())
    assert [s["replies"] for s in report["steps"]] == [
        ["200 result=1"],
        ["511 Command Not Permitted on a dead channel or intercept routine"],
    ]
    assert result.agistatus == "HANGUP" and result.sighups == 1


def test_script_that_crashes_before_reading_the_env_is_a_failure(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("raise SystemExit('cannot start')\n")
    result = run_process_agi([script], Caller())
    assert (result.exit_code, result.agistatus) == (1, "FAILURE")
    assert "cannot start" in result.stderr
    assert result.commands == []


def test_script_that_never_answers_times_out(tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text("import time\ntime.sleep(30)\n")
    with pytest.raises(PeerTimeout) as info:
        run_process_agi([script], Caller(), timeout=0.5)
    assert info.value.result.agistatus == "TIMEOUT"
    assert info.value.result.exit_code == -9


# ---------------------------------------------------------------------------------------
# pyst2 against the peer
# ---------------------------------------------------------------------------------------

PYST2_SCRIPT = textwrap.dedent(
    """\
    import json, os, sys
    from asterisk.agi import AGI

    plan = json.load(open(sys.argv[1]))
    agi = AGI()
    log = {"env": agi.env, "ops": []}

    def plain(value):
        if isinstance(value, dict):
            return {k: list(v) for k, v in value.items()}
        return value

    for name, args in plan:
        try:
            if name == "clear_sighup":
                agi._got_sighup = False
                out = ["ok", None]
            else:
                out = ["ok", plain(getattr(agi, name)(*args))]
        except Exception as exc:
            out = [type(exc).__name__, str(exc)]
        out.append(agi._got_sighup)
        log["ops"].append(out)
    with open(os.environ["REPORT"], "w") as f:
        json.dump(log, f)
    sys.stdout.flush()
    """
)


def run_pyst2(tmp_path, plan, caller, **kw):
    script = tmp_path / "pyst2_agi.py"
    script.write_text(PYST2_SCRIPT)
    plan_file = tmp_path / "pyst2_plan.json"
    plan_file.write_text(json.dumps(plan))
    report = tmp_path / "pyst2_report.json"
    result = run_process_agi([script, plan_file], caller, extra_env={"REPORT": str(report)}, **kw)
    return result, json.loads(report.read_text())["ops"]


def test_pyst2_normal_dialogue(tmp_path):
    plan = [
        ["answer", []],
        ["get_data", ["silence/1", 3000, 16]],
        ["get_data", ["silence/1", 3000, 16]],
        ["get_data", ["silence/1", 3000, 16]],
        ["get_data", ["silence/1"]],
        ["execute", ["GET DATA", "silence/1", 3000, 16]],
        ["execute", ["GET DATA", "silence/1", 3000, 16]],
        ["wait_for_digit", [5000]],
        ["wait_for_digit", [5000]],
        ["stream_file", ["silence/10", "123"]],
        ["set_variable", ["RESULT", "value with spaces"]],
        ["set_variable", ["QUOTED", 'say "hi"']],
        ["get_variable", ["RESULT"]],
        ["get_variable", ["UNSET"]],
        ["get_full_variable", ["${CALLERID(num)}"]],
        ["database_put", ["callcenter", "k", "v"]],
        ["database_get", ["callcenter", "k"]],
        ["appexec", ["Set", "EXECVAR=1"]],
        ["verbose", ["привет", 1]],
        ["channel_status", []],
    ]
    caller = Caller(
        actions=[
            Dtmf("1234#"),
            Dtmf("12", then_timeout=True),
            Timeout(),
            Dtmf("#"),
            Timeout(),
            Dtmf("12"),
            Dtmf("7"),
            Timeout(),
            Dtmf("93"),
        ],
        waits_for_questions=False,  # the last action interrupts a STREAM FILE
    )
    result, ops = run_pyst2(tmp_path, plan, caller)
    values = [op[1] for op in ops]
    assert [op[0] for op in ops] == ["ok"] * len(plan)
    assert values[1:5] == ["1234", "12", "", ""]  # timeout and lone '#' both give ""
    assert values[5] == {"result": ["", ""]}  # "200 result= (timeout)": the marker is lost
    assert values[6] == {"result": ["12", "timeout"]}
    assert values[7:9] == ["7", ""]
    assert values[9] == "3"  # the first escape digit; '9' was not an escape digit
    assert values[12:14] == ["value with spaces", ""]
    assert values[14] == "79001234567"
    assert values[16] == "v"
    assert values[19] == 6
    assert result.commands[1] == "GET DATA silence/1 3000 16"
    assert result.commands[4] == "GET DATA silence/1 2000 255"  # pyst2's defaults
    assert result.commands[9] == 'STREAM FILE silence/10 "123" 0'
    assert result.commands[10] == 'SET VARIABLE "RESULT" "value with spaces"'
    assert result.commands[16] == 'DATABASE GET ""callcenter"" ""k""'
    assert result.variables == {
        "RESULT": "value with spaces",
        "QUOTED": "say hi",  # pyst2 does not escape inner quotes; Asterisk drops them
        "EXECVAR": "1",
    }
    assert result.verbose == ["привет"]
    assert result.agistatus == "SUCCESS"


def test_pyst2_hangup_during_get_data(tmp_path):
    plan = [
        ["answer", []],
        ["get_data", ["silence/1", 5000, 16]],
        ["set_variable", ["AFTER", "1"]],
        ["clear_sighup", []],
        ["set_variable", ["AFTER", "1"]],
        ["answer", []],
        ["channel_status", []],
        ["get_variable", ["MYVAR"]],
    ]
    caller = Caller(variables={"MYVAR": "hello"}, actions=[Dtmf("12", then_hangup=True)])
    result, ops = run_pyst2(tmp_path, plan, caller)
    assert ops[1] == ["AGIAppError", "Error executing application, or hangup", True]
    assert ops[2] == ["AGISIGHUPHangup", "Received SIGHUP from Asterisk", True]
    assert ops[4] == ["ok", None, False]  # dead-safe once the flag is cleared
    assert ops[5][0] == ops[6][0] == "AGIUnknownError"  # 511
    assert "511" in ops[5][1]
    assert ops[7] == ["ok", "hello", False]
    # the refused command was never sent
    assert result.commands == [
        "ANSWER",
        "GET DATA silence/1 5000 16",
        'SET VARIABLE "AFTER" "1"',
        "ANSWER",
        "CHANNEL STATUS",
        'GET VARIABLE "MYVAR"',
    ]
    assert result.agistatus == "HANGUP"


def test_pyst2_with_agisighup_no_sees_only_results(tmp_path):
    plan = [["get_data", ["silence/1", 5000, 16]], ["answer", []], ["get_variable", ["MYVAR"]]]
    caller = Caller(variables={"AGISIGHUP": "no", "MYVAR": "hello"}, actions=[Hangup()])
    result, ops = run_pyst2(tmp_path, plan, caller)
    assert ops[0][:1] == ["AGIAppError"] and ops[0][2] is False
    assert ops[1][0] == "AGIUnknownError"
    assert ops[2] == ["ok", "hello", False]
    assert result.sighups == 0 and result.agistatus == "HANGUP"


def test_pyst2_after_agiexitonhangup(tmp_path):
    """3.3 with AGISIGHUP=no: pyst2 sees -1, then a closed pipe (or EOF, whichever it hits
    first - the same race exists with Asterisk)."""
    plan = [["get_data", ["silence/1", 5000, 16]], ["answer", []]]
    caller = Caller(variables={"AGISIGHUP": "no", "AGIEXITONHANGUP": "yes"}, actions=[Hangup()])
    result, ops = run_pyst2(tmp_path, plan, caller)
    assert ops[0][0] == "AGIAppError"
    assert ops[1][0] in ("AGISIGPIPEHangup", "ValueError")
    assert result.agistatus == "HANGUP"


def test_pyst2_errors_510_520_and_missing_files(tmp_path):
    plan = [
        ["execute", ["FOO BAR"]],
        ["say_number", ["abc"]],
        ["stream_file", ["no-such-file"]],
        ["get_data", ["no-such-file", 1000, 4]],
        ["appexec", ["NoSuchApplication", "x"]],
        ["noop", []],
    ]
    result, ops = run_pyst2(tmp_path, plan, Caller(), options=PeerOptions(xmldoc=True))
    assert ops[0] == ["AGIInvalidCommand", "Invalid or unknown command", False]
    assert ops[1][0] == "AGIUsageError"
    assert ops[1][1].startswith("520-Invalid command syntax.  Proper usage follows:\n")
    assert ops[1][1].endswith("520 End of proper usage.\n")
    assert ops[2][0] == ops[3][0] == "AGIAppError"  # same as a hangup, but no SIGHUP
    assert ops[4] == ["AGIAppError", "Unable to find application: NoSuchApplication", False]
    assert ops[5] == ["ok", None, False]
    assert result.agistatus == "FAILURE"  # the missing STREAM FILE


def test_pyst2_blocks_on_the_single_line_520(tmp_path):
    """Without XML docs pyst2 reads one more line after '520 ...' and waits forever."""
    with pytest.raises(PeerTimeout) as info:
        run_pyst2(
            tmp_path,
            [["say_number", ["abc"]]],
            Caller(),
            options=PeerOptions(xmldoc=False),
            timeout=1.0,
        )
    result = info.value.result
    assert result.commands == ['SAY NUMBER "abc" ""']
    assert result.replies == [["520 Invalid command syntax.  Proper usage not available."]]


def test_pyst2_reads_the_env(tmp_path):
    _, ops = run_pyst2(tmp_path, [["noop", []]], Caller(caller_name="Иван Петров"))
    assert ops == [["ok", None, False]]
    report = json.loads((tmp_path / "pyst2_report.json").read_text())
    assert report["env"]["agi_calleridname"] == "Иван Петров"
    assert report["env"]["agi_accountcode"] == ""
    assert report["env"]["agi_arg_1"].endswith("pyst2_plan.json")


# ---------------------------------------------------------------------------------------
# The simulated channel without a transport
# ---------------------------------------------------------------------------------------


def sim_replies(caller: Caller, *lines: str, **opts) -> list[list[str]]:
    sim = FakeAsterisk(caller, PeerOptions(**opts))
    return [sim.on_command(line).reply for line in lines]


def test_agent_channel_variables_of_transcript_05():
    caller = Caller(
        caller_id="5",
        channel="Local/agent1@agents-0000001c;1",
        uniqueid="1795483251.56",
        linkedid="1795483251.54",
        connected_line_num="79001234567",
        variables={"CALLER_LINKEDID": "1795483251.54", "ARG1": "1795483251.54"},
    )
    assert sim_replies(
        caller,
        "GET VARIABLE CHANNEL(name)",
        "GET VARIABLE CHANNEL(uniqueid)",
        "GET VARIABLE CHANNEL(linkedid)",
        "GET VARIABLE BRIDGEPEER",
        "GET FULL VARIABLE ${CALLERID(num)}",
        "GET FULL VARIABLE ${CONNECTEDLINE(num)}",
        "GET FULL VARIABLE ${CHANNEL(linkedid)}/${UNIQUEID}",
        "GET FULL VARIABLE ${CALLER_LINKEDID:-2}",
        "GET FULL VARIABLE ${IMPORT(${CALLER_CHANNEL},QUEUENAME)}",
        "GET VARIABLE NOSUCHFUNC(x)",
        "GET FULL VARIABLE ${NOSUCHFUNC(x)}",
    ) == [
        ["200 result=1 (Local/agent1@agents-0000001c;1)"],
        ["200 result=1 (1795483251.56)"],
        ["200 result=1 (1795483251.54)"],
        ["200 result=0"],
        ["200 result=1 (5)"],
        ["200 result=1 (79001234567)"],
        ["200 result=1 (1795483251.54/1795483251.56)"],
        ["200 result=1 (54)"],
        ["200 result=1 ()"],
        ["200 result=0"],
        ["200 result=1 ()"],
    ]


def test_hangup_handler_channel_of_transcript_05():
    caller = Caller(dead=True, context="hangup-handlers", variables={"CDR(billsec)": "3"})
    assert sim_replies(
        caller,
        "CHANNEL STATUS",
        "GET VARIABLE QUEUESTATUS",
        "GET VARIABLE HANGUPCAUSE",
        "GET FULL VARIABLE ${CDR(billsec)}",
        "DATABASE PUT golden hh yes",
        "DATABASE GET golden hh",
        "DATABASE GET golden nope",
        "EXEC Playback silence/1",
        "GET DATA silence/1 1000 4",
    ) == [
        ["511 Command Not Permitted on a dead channel or intercept routine"],
        ["200 result=0"],
        ["200 result=1 (16)"],
        ["200 result=1 (3)"],
        ["200 result=1"],
        ["200 result=1 (yes)"],
        ["200 result=0"],
        ["200 result=0"],
        ["511 Command Not Permitted on a dead channel or intercept routine"],
    ]


def test_sound_files_prompt_prefix_and_leftover_digits():
    caller = Caller(actions=[Dtmf("12345"), Dtmf("9#"), Hangup()])
    replies = sim_replies(
        caller,
        "GET DATA callcenter/menu 5000 3",
        "WAIT FOR DIGIT 1000",
        'STREAM FILE callcenter/welcome ""',
        "GET DATA callcenter/menu 5000 3",
        'STREAM FILE other/x ""',
        "GET DATA beep&other/nope 1000 3",
        "WAIT FOR DIGIT 1000",
        sound_patterns=("callcenter/*",),
        sound_durations={"callcenter/welcome": 24000},
    )
    assert replies == [
        ["200 result=123"],  # max digits: '4' and '5' stay queued
        ["200 result=52"],  # '4'
        ["200 result=0 endpos=24000"],  # '5' arrives during a playback that ignores DTMF
        ["200 result=9"],
        ["200 result=-1 endpos=0"],  # not a known sound
        ["200 result=-1"],  # the last prompt of a '&' list is missing
        ["200 result=-1"],  # Hangup()
    ]


def test_queued_hangup_happens_during_the_next_playback():
    caller = Caller(actions=[Dtmf("12", then_hangup=True)])
    sim = FakeAsterisk(caller)
    assert sim.on_command("GET DATA beep 3000 1").reply == ["200 result=1"]
    out = sim.on_command('SAY DIGITS 42 ""')
    assert (out.reply, out.hangup) == (["200 result=-1"], True)
    assert sim.on_command("GET VARIABLE X").reply == ["200 result=0"]
    assert sim.finish(0) == "HANGUP"


def test_scenario_errors_and_unsupported_commands():
    sim = FakeAsterisk(Caller())
    with pytest.raises(ScenarioError):
        sim.on_command("WAIT FOR DIGIT -1")
    with pytest.raises(UnsupportedCommand):
        sim.on_command('CONTROL STREAM FILE x ""')
    with pytest.raises(ValueError):
        Dtmf("12x")


# ---------------------------------------------------------------------------------------
# FastAGI
# ---------------------------------------------------------------------------------------


class RecordingServer:
    """A tiny FastAGI server built on callcenter's parsers: it reads the env (recording the
    TCP chunks), sends ``commands``, records every reply/HANGUP, then half-closes its side
    (or closes) and records what still arrives."""

    def __init__(self, commands: list[str], *, half_close: bool = True) -> None:
        self.commands = commands
        self.half_close = half_close
        self.chunks: list[bytes] = []
        self.env: dict[str, str] = {}
        self.events: list[str] = []
        self.after_close: list[str] = []
        self.done = asyncio.Event()

    async def next_reply(self, parser, reader, pending):
        while True:
            while pending:
                event = pending.pop(0)
                if event is HANGUP:
                    self.events.append("HANGUP")
                    continue
                return event
            data = await reader.read(65536)
            if not data:
                return None
            pending.extend(parser.feed(data))

    async def handle(self, reader, writer):
        try:
            env = EnvParser()
            while not env.complete:
                data = await reader.read(65536)
                if not data:
                    return
                self.chunks.append(data)
                env.feed(data)
            self.env = env.env
            parser = ReplyParser()
            pending = parser.feed(env.remainder)
            for command in self.commands:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                reply = await self.next_reply(parser, reader, pending)
                if reply is None:
                    break
                self.events.append(reply.raw)
            if self.half_close:
                writer.write_eof()
                while data := await reader.read(65536):
                    self.after_close += [
                        "HANGUP" if e is HANGUP else e.raw for e in parser.feed(data)
                    ]
        finally:
            writer.close()
            self.done.set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


def caller_04(**kw) -> Caller:
    """The channel of transcript 04 4.1."""
    return Caller(
        caller_id=None,
        language="en",
        channel="Local/41@golden-caller-00000010;1",
        uniqueid="1795483069.32",
        context="golden-agi",
        extension="41",
        priority=3,
        **kw,
    )


@needs_transcripts
async def test_fastagi_env_in_two_chunks_dialogue_and_final_hangup():
    commands = [
        s["send"][0]
        for s in recorded_steps("04-fastagi-env-and-failures.txt", "4.1 normal", "4.2 server")
    ]
    expected = [
        s["expected"]
        for s in recorded_steps("04-fastagi-env-and-failures.txt", "4.1 normal", "4.2 server")
    ]
    assert commands[1] == "GET DATA silence/1 5000 16"
    caller = caller_04(variables={"MYVAR": "hello"}, actions=[Dtmf("5550001#")])
    async with RecordingServer(commands) as server:
        result = await run_fastagi(
            "127.0.0.1",
            server.port,
            "collect_certificate",
            caller,
            args=("arg1", "arg2"),
            query="x=1",
            options=PeerOptions(threadid="140520194995904"),
            env_overrides={"agi_request": "agi://127.0.0.1:4573/collect_certificate?x=1"},
        )
        await asyncio.wait_for(server.done.wait(), 5)
    recorded = (TRANSCRIPTS / "04-fastagi-env-and-failures.txt").read_text()
    chunks = [ast.literal_eval(m) for m in re.findall(r"^  0\.001 << (b'.*')$", recorded, re.M)]
    assert server.chunks == chunks  # byte for byte, in the same two TCP reads (04:144-145)
    assert list(server.env)[:3] == ["agi_network", "agi_network_script", "agi_request"]
    assert [[e] for e in server.events] == expected
    assert server.after_close == ["HANGUP"]  # 04:224: HANGUP then close, call still up
    assert result.agistatus == "SUCCESS"
    assert result.variables == {"CERT": "5550001"}
    assert result.transcript[-1] == ("<<", "HANGUP")


async def test_fastagi_request_url_and_args():
    async with RecordingServer(["NOOP"]) as server:
        await run_fastagi("127.0.0.1", server.port, "/ivr", Caller(), args=("a b",))
        await asyncio.wait_for(server.done.wait(), 5)
    assert server.env["agi_network_script"] == "ivr"
    assert server.env["agi_request"] == f"agi://127.0.0.1:{server.port}/ivr"
    assert server.env["agi_arg_1"] == "a b"
    assert len(server.chunks) == 2 and server.chunks[0].endswith(b"agi_context: callcenter-ivr\n")


@needs_transcripts
@pytest.mark.parametrize("sighup", [True, False])
async def test_fastagi_hangup_during_get_data(sighup):
    """03 3.6 / 3.7: '200 result=-1', then a HANGUP line (not with AGISIGHUP=no)."""
    start, end = ("3.6 FastAGI", "3.7 FastAGI") if sighup else ("3.7 FastAGI", None)
    steps = recorded_steps("03-agi-hangup-during-get-data.txt", start, end)
    commands = [s["send"][0] for s in steps]
    variables = {} if sighup else {"AGISIGHUP": "no"}
    caller = Caller(variables=variables, actions=[Dtmf("12", then_hangup=True)])
    async with RecordingServer(commands) as server:
        result = await run_fastagi("127.0.0.1", server.port, "hangup_during_getdata", caller)
        await asyncio.wait_for(server.done.wait(), 5)
    expected = [line for s in steps for line in s["expected"]]
    assert server.events == expected
    if sighup:
        assert server.events.index("HANGUP") == 2
        assert server.after_close == ["HANGUP"]
    else:
        assert "HANGUP" not in server.events and server.after_close == []
    assert result.agistatus == "HANGUP"
    assert result.variables == {"AFTERHANGUP": "1"}


async def test_fastagi_server_closing_early_is_success():
    async with RecordingServer([], half_close=False) as server:
        result = await run_fastagi("127.0.0.1", server.port, "close_after_env", Caller())
        await asyncio.wait_for(server.done.wait(), 5)
    assert result.agistatus == "SUCCESS"
    assert result.commands == []


async def test_fastagi_connection_refused_is_failure():
    result = await run_fastagi("127.0.0.1", free_port(), "x", Caller())
    assert result.agistatus == "FAILURE"
    assert result.commands == []


async def test_fastagi_server_that_never_closes_times_out():
    async def silent(reader, writer):
        while await reader.read(65536):  # reads the env, never answers, until the peer gives up
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(PeerTimeout):
            await run_fastagi(
                "127.0.0.1", server.sockets[0].getsockname()[1], "x", Caller(), timeout=0.3
            )
    finally:
        server.close()
        await server.wait_closed()
