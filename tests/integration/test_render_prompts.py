"""``callcenter prompts render``: the real espeak-ng and sox, files Asterisk can play."""

from __future__ import annotations

import argparse
import shutil
import sys
import wave
from array import array
from pathlib import Path

import pytest

from callcenter.telephony import render_prompts
from callcenter.telephony.prompts import LANGUAGES, PROMPTS

TOOLS_MISSING = [t for t in render_prompts.TOOLS if shutil.which(t) is None]
needs_tools = pytest.mark.skipif(
    bool(TOOLS_MISSING),
    reason=f"{', '.join(TOOLS_MISSING)} not installed (apt-get install espeak-ng sox)",
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[Path]]:
    if TOOLS_MISSING:
        pytest.skip(f"{', '.join(TOOLS_MISSING)} not installed (apt-get install espeak-ng sox)")
    out = tmp_path_factory.mktemp("sounds")
    return out, render_prompts.render(out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    render_prompts.add_parser(parser.add_subparsers(dest="command", required=True), common)
    return parser


@needs_tools
def test_every_prompt_in_every_language_as_wav_and_ulaw(rendered):
    out, files = rendered
    expected = {
        out / lang / "callcenter" / f"{name}.{ext}"
        for lang in LANGUAGES
        for name in PROMPTS
        for ext in ("wav", "ulaw")
    }
    assert set(files) == expected
    assert all(path.is_file() for path in expected)


@needs_tools
@pytest.mark.skipif(sys.byteorder != "little", reason="WAV samples are little-endian")
def test_wav_is_what_asterisk_reads_and_ulaw_has_the_same_samples(rendered):
    out, _ = rendered
    for lang in LANGUAGES:
        for name in PROMPTS:
            wav_path = out / lang / "callcenter" / f"{name}.wav"
            with wave.open(str(wav_path), "rb") as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert w.getcomptype() == "NONE"
                frames = w.getnframes()
                pcm = w.readframes(frames)
            assert frames / 8000 > 0.3, f"{wav_path} lasts only {frames / 8000:.2f} s"
            assert max(map(abs, array("h", pcm))) > 3000, f"{wav_path} is silent"
            ulaw_size = (out / lang / "callcenter" / f"{name}.ulaw").stat().st_size
            assert abs(ulaw_size - frames) <= 8, (name, lang, ulaw_size, frames)


@needs_tools
def test_russian_and_english_differ(rendered):
    out, _ = rendered
    ru = (out / "ru" / "callcenter" / "welcome.ulaw").read_bytes()
    en = (out / "en" / "callcenter" / "welcome.ulaw").read_bytes()
    assert ru != en


@needs_tools
async def test_cli_renders_a_selection_and_says_where_to_copy(tmp_path, capsys):
    args = _parser().parse_args(
        ["prompts", "render", "--out", str(tmp_path), "--lang", "ru", "--prompt", "goodbye"]
    )
    assert await args.func(args) == 0
    assert sorted(p.name for p in (tmp_path / "ru" / "callcenter").iterdir()) == [
        "goodbye.ulaw",
        "goodbye.wav",
    ]
    assert not (tmp_path / "en").exists()
    out = capsys.readouterr().out
    assert "/var/lib/asterisk/sounds/ru/callcenter" in out
    assert str(tmp_path) in out


async def test_missing_tools_give_one_line_and_a_non_zero_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    args = _parser().parse_args(["prompts", "render", "--out", str(tmp_path / "out")])
    assert await args.func(args) != 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "apt-get install espeak-ng sox" in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


def test_unknown_names_are_refused_before_any_work(tmp_path):
    with pytest.raises(render_prompts.RenderError, match="unknown prompt"):
        render_prompts.render(tmp_path, names=["no-such-prompt"])
    with pytest.raises(render_prompts.RenderError, match="unknown language"):
        render_prompts.render(tmp_path, languages=["de"])
    assert list(tmp_path.iterdir()) == []


def test_the_cli_rejects_an_unknown_language():
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["prompts", "render", "--lang", "de"])
    assert exc.value.code == 2


def test_the_voice_prompts_doc_lists_every_prompt_with_its_texts():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "voice-prompts.md").read_text(
        encoding="utf-8"
    )
    for name, texts in PROMPTS.items():
        assert f"| `{name}` | {texts['ru']} | {texts['en']} |" in doc, name


@needs_tools
def test_the_offer_of_the_other_language_is_said_in_that_language(rendered, tmp_path):
    """The Russian menu's "For English, press star" is voiced by the English voice."""
    from callcenter.telephony.render_prompts import VOICES, _render_one

    out, _ = rendered
    text = PROMPTS["other-language"]["ru"]
    by_english, _ = _render_one(text, VOICES["en"], tmp_path / "en-voice")
    by_russian, _ = _render_one(text, VOICES["ru"], tmp_path / "ru-voice")
    kept = (out / "ru" / "callcenter" / "other-language.wav").stat().st_size
    # sox dithers, so the samples differ run to run; the length is the voice's
    assert kept == by_english.stat().st_size
    assert kept != by_russian.stat().st_size
