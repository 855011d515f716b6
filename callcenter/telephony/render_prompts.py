"""Render the IVR's voice prompts with espeak-ng and sox, in formats Asterisk plays.

For each prompt in :data:`callcenter.telephony.prompts.PROMPTS` and each language this writes
``<out>/<lang>/callcenter/<name>.wav`` (8 kHz, mono, 16-bit signed PCM: what Asterisk's
``wav`` format module reads) and ``<name>.ulaw`` (raw G.711 mu-law, 8 kHz: played to ulaw
channels without transcoding). Copy ``<out>/<lang>/callcenter`` to
``/var/lib/asterisk/sounds/<lang>/callcenter``. Synthetic speech is a stand-in until studio
recordings exist (docs/voice-prompts.md).

``callcenter prompts render [--out DIR] [--lang ru|en ...] [--prompt NAME ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from callcenter.telephony.prompts import LANGUAGES, PREFIX, PROMPTS, spoken_in

DEFAULT_OUT = Path("var/sounds")
TOOLS = ("espeak-ng", "sox")
INSTALL_HINT = "apt-get install espeak-ng sox"
ASTERISK_SOUNDS = Path("/var/lib/asterisk/sounds")

#: espeak-ng voice per prompt language (``espeak-ng --voices`` lists them).
VOICES: dict[str, str] = {"ru": "ru", "en": "en"}
#: Words per minute: a little slower than espeak-ng's 175, for a phone line.
SPEED = 150
#: Peak level after normalisation, in dBFS: loud enough, with room for the codec.
PEAK_DB = -3


class RenderError(RuntimeError):
    """A prompt could not be rendered; the message is one line meant for the user."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def render(
    out_dir: str | os.PathLike[str],
    languages: Iterable[str] = LANGUAGES,
    voice_map: Mapping[str, str] | None = None,
    names: Iterable[str] | None = None,
    *,
    jobs: int | None = None,
) -> list[Path]:
    """Render the prompts (all, or ``names``) in each language; return the files written."""
    languages = list(dict.fromkeys(languages))
    names = list(dict.fromkeys(names)) if names is not None else list(PROMPTS)
    voices = {**VOICES, **(voice_map or {})}
    for lang in languages:
        if lang not in LANGUAGES:
            raise RenderError(f"unknown language {lang!r}; choose from {', '.join(LANGUAGES)}")
    for name in names:
        if name not in PROMPTS:
            raise RenderError(f"unknown prompt {name!r}; see callcenter/telephony/prompts.py")
    missing = missing_tools()
    if missing:
        raise RenderError(f"{' and '.join(missing)} not found: install them with `{INSTALL_HINT}`")

    work = []
    for lang in languages:
        folder = Path(out_dir) / lang / PREFIX.rstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        work += [
            (PROMPTS[name][lang], voices[spoken_in(name, lang)], folder / name) for name in names
        ]
    # Each prompt is two short subprocesses; run a few at once.
    with ThreadPoolExecutor(max_workers=jobs or min(8, os.cpu_count() or 1)) as pool:
        done = list(pool.map(lambda job: _render_one(*job), work))
    return [path for pair in done for path in pair]


def _render_one(text: str, voice: str, base: Path) -> tuple[Path, Path]:
    wav, ulaw = base.with_suffix(".wav"), base.with_suffix(".ulaw")
    with tempfile.TemporaryDirectory(prefix="callcenter-prompt-") as tmp:
        text_file, raw = Path(tmp) / "text.txt", Path(tmp) / "espeak.wav"
        text_file.write_text(text, encoding="utf-8")
        _run(["espeak-ng", "-v", voice, "-s", str(SPEED), "-f", str(text_file), "-w", str(raw)])
        # 8 kHz mono 16-bit signed PCM, peaks normalised (sox resamples with its `rate` effect).
        _run(
            [
                "sox",
                str(raw),
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(wav),
                "norm",
                str(PEAK_DB),
            ]
        )
        # The same samples as headerless mu-law: one byte per sample.
        _run(["sox", str(wav), "-t", "ul", "-r", "8000", "-c", "1", str(ulaw)])
    return wav, ulaw


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise RenderError(f"{command[0]} not found: install it with `{INSTALL_HINT}`") from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        reason = detail[-1] if detail else f"exit status {exc.returncode}"
        raise RenderError(f"{command[0]} failed: {reason}") from None


# --- command line ----------------------------------------------------------------------------


def add_parser(subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``prompts render`` on the ``callcenter`` command's subparsers."""
    prompts = subparsers.add_parser("prompts", help="IVR voice prompts").add_subparsers(
        dest="sub", required=True
    )
    p = prompts.add_parser(
        "render",
        parents=[common],
        help="synthesise the prompts with espeak-ng and sox for Asterisk",
        description="Render the IVR's voice prompts to <out>/<lang>/callcenter/<name>.wav "
        "(8 kHz mono 16-bit) and .ulaw with espeak-ng and sox.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default: {DEFAULT_OUT})",
    )
    p.add_argument(
        "--lang",
        action="append",
        choices=LANGUAGES,
        help="a language to render; repeat for several (default: all)",
    )
    p.add_argument(
        "--prompt",
        action="append",
        choices=list(PROMPTS),
        metavar="NAME",
        help="render only this prompt; repeat for several (default: all)",
    )
    p.set_defaults(func=cmd_prompts_render)


async def cmd_prompts_render(args) -> int:
    languages = args.lang or list(LANGUAGES)
    try:
        files = await asyncio.to_thread(render, args.out, languages, None, args.prompt)
    except RenderError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 1
    print(f"rendered {len(files)} files under {args.out}")
    for lang in languages:
        folder = Path(args.out) / lang / PREFIX.rstrip("/")
        target = ASTERISK_SOUNDS / lang / PREFIX.rstrip("/")
        print(f"  {lang}: {folder}")
        print(f"    install: sudo mkdir -p {target} && sudo cp {folder}/* {target}/")
    return 0
