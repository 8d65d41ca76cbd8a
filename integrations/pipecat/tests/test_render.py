"""``python -m gwm_avatars_pipecat.render``: bad input is one line and exit 2; a clip is
an H.264 + AAC MP4 as long as the speech (against the stand-in echo service)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from gwm_avatars_pipecat.render import main
from gwm_avatars_pipecat.render_pipeline import render
from tests.conftest import API_KEY
from tests.fake_echo import FakeEchoService


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def _exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--audio", "{wav}", "-o", "{out}"], "--server"),
        (["--server", "ftp://x", "--audio", "{wav}", "-o", "{out}"], "not an http(s) URL"),
        (["--server", "http://127.0.0.1:9", "--audio", "{missing}", "-o", "{out}"], "no such"),
        (["--server", "http://127.0.0.1:9", "--audio", "{wav}", "-o", "{txt}"], ".mp4"),
        (["--server", "http://127.0.0.1:9", "--audio", "{text}", "-o", "{out}"], "not a PCM WAV"),
        (["--server", "http://127.0.0.1:9", "--audio", "{wav}", "-o", "{out}"], "cannot reach"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {
        "wav": write_wav(tmp_path / "in.wav", np.zeros(1600, np.int16), 16_000),
        "missing": tmp_path / "missing.wav",
        "out": tmp_path / "out.mp4",
        "txt": tmp_path / "out.txt",
        "text": tmp_path / "notes.wav",
    }
    names["text"].write_text("not audio")
    code, err = _exit([a.format(**names) for a in args], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_render_writes_an_h264_aac_mp4_as_long_as_the_speech(
    fake_service: FakeEchoService, speech16k: np.ndarray, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "in.wav", speech16k, 16_000)
    out = tmp_path / "out.mp4"
    result = await render(fake_service.url, wav, out, api_key=API_KEY)
    assert 0.0 < result.echo_delay_s < 0.5
    with av.open(str(out)) as mp4:
        v, a = mp4.streams.video[0], mp4.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        frames = sum(1 for _ in mp4.decode(video=0))
    with av.open(str(out)) as mp4:
        samples = sum(f.samples for f in mp4.decode(audio=0))
    assert frames == round(2.5 * 25)
    assert abs(samples / 48_000 - 2.5) < 0.05  # AAC priming/padding aside


def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    """``python -m gwm_avatars_pipecat.render`` as a user types it (no service: exit 2)."""
    wav = write_wav(tmp_path / "in.wav", np.zeros(1600, np.int16), 16_000)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gwm_avatars_pipecat.render"),
            *("--server", "http://127.0.0.1:9", "--audio", str(wav), "-o", str(tmp_path / "o.mp4")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot reach the avatar service at http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_refused_session_is_one_line_and_exit_2(
    fake_service: FakeEchoService, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "in.wav", np.zeros(8000, np.int16), 16_000)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gwm_avatars_pipecat.render", "--server", fake_service.url),
        *("--audio", str(wav), "-o", str(tmp_path / "o.mp4"), "--api-key", "wrong"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    message = err.decode().strip()
    assert "401 unauthorized" in message
    assert len(message.splitlines()) == 1, message
