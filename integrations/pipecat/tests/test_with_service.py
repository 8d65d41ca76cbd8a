"""The plugin against the real service: ``avatar serve`` on 127.0.0.1, from its own venv.

The demo renders an espeak-ng sentence (a voice the avatar did not synthesize) through
a real pipecat pipeline; the MP4's audio is the sentence, as long as it, and the
mouth, read from the MP4's pixels by the service's own measure (run in the service's
venv: this one has no face mesh), follows its loudness. An interruption mid-speech
silences the audio and closes the mouth; a service killed mid-call is an ErrorFrame
and a clean end, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from pipecat.frames.frames import EndFrame, InterruptionFrame
from pipecat.pipeline.worker import PipelineWorker

from gwm_avatars_pipecat import GWMAvatarVideoService, SessionOptions
from gwm_avatars_pipecat.clip import assemble, find_offset, write_mp4
from gwm_avatars_pipecat.wav_source import read_wav
from tests.pipeline_support import run_pipeline
from tests.service_process import ROOT, SERVICE_API_KEY, ServiceProcess, service_python

FPS = 25
SENTENCE = "Peter bought a bubble, and we all laughed about it for a while."
LONG = "Please keep talking about the weather, the sea and the mountains for a long while."
MOUTH_SCRIPT = Path(__file__).parent / "service_side" / "mouth_openings.py"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One ``avatar serve`` for the module (restarted by a test that needs it alive)."""
    python = service_python()
    if python is None:
        pytest.skip("no service venv: set GWM_SERVICE_PYTHON (scripts/pipecat_test.sh does)")
    proc = ServiceProcess(python, tmp_path_factory.mktemp("serve") / "serve.log")
    yield proc
    proc.kill()


@pytest.fixture
def live(service: ServiceProcess) -> ServiceProcess:
    """The service, started if it is not running."""
    if not service.running:
        service.start()
    return service


def espeak(text: str, path: Path) -> Path:
    """``text`` spoken by espeak-ng into a WAV."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, timeout=60)
    return path


def mouth_openings(mp4: Path, python: Path) -> np.ndarray:
    """Per frame, how open the mouth is (the service's measure, in its venv)."""
    proc = subprocess.run(
        [str(python), str(MOUTH_SCRIPT), str(mp4)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.array(json.loads(proc.stdout.strip().splitlines()[-1]))


def decode_audio(mp4: Path) -> tuple[np.ndarray, int]:
    with av.open(str(mp4)) as c:
        rate = c.streams.audio[0].rate
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return pcm.astype(np.float64), rate


def loudness_per_frame(pcm: np.ndarray, rate: int, n: int) -> np.ndarray:
    """RMS around each video frame's time (as the service's lip-sync tests measure)."""
    spf = rate / FPS
    out = np.zeros(n)
    for k in range(n):
        seg = pcm[max(0, round((k - 0.5) * spf)) : round((k + 0.5) * spf)]
        out[k] = np.sqrt(np.mean(seg * seg)) if len(seg) else 0.0
    return out


def speech_span_s(loudness: np.ndarray) -> float:
    """Seconds from the first to the last frame louder than a tenth of the loudest."""
    loud = np.flatnonzero(loudness > 0.1 * loudness.max())
    return float(loud[-1] - loud[0] + 1) / FPS


def best_lag_r(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    """Pearson r at the best shift (positive: ``a`` follows ``b``)."""
    n = min(len(a), len(b))
    best = (-1.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, lag) : n + min(0, lag)]
        y = b[max(0, -lag) : n - max(0, lag)]
        best = max(best, (float(np.corrcoef(x, y)[0, 1]), lag))
    return best


@pytest.mark.timeout(600)
def test_the_demo_renders_the_speech_with_lips_that_track_it(
    live: ServiceProcess, tmp_path: Path
) -> None:
    wav = espeak(SENTENCE, tmp_path / "in.wav")
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gwm_avatars_pipecat.render", "--server", live.url),
            *("--audio", str(wav), "-o", str(out), "--api-key", SERVICE_API_KEY),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sent, sent_rate = read_wav(wav)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
    pcm, rate = decode_audio(out)
    # the audio is the sentence: as long as it (within 0.5 s: the service's delay grows
    # when the caller's audio comes late), loud where it is loud, its speech as long
    assert abs(len(pcm) / rate - len(sent) / sent_rate) < 0.5
    frames = round(len(sent) / sent_rate * FPS)
    loudness = loudness_per_frame(pcm, rate, frames)
    sent_loudness = loudness_per_frame(sent.astype(np.float64), sent_rate, frames)
    same, shift = best_lag_r(loudness, sent_loudness, max_lag=2)
    assert same > 0.7, f"not the speech sent: loudness r={same:.2f} (at {shift} frames)"
    assert abs(speech_span_s(loudness) - speech_span_s(sent_loudness)) < 0.3
    # the lips follow it, on time
    opening = mouth_openings(out, live.python)
    assert abs(len(opening) - round(len(pcm) / rate * FPS)) <= 1
    r, lag = best_lag_r(opening, loudness_per_frame(pcm, rate, len(opening)))
    assert r >= 0.8, f"mouth vs loudness r={r:.2f} (lag {lag})"
    assert abs(lag) <= 1, f"best lag {lag} frames"


@pytest.mark.timeout(600)
async def test_an_interruption_silences_the_speech_and_closes_the_mouth(
    live: ServiceProcess, tmp_path: Path
) -> None:
    pcm, rate = read_wav(espeak(LONG, tmp_path / "long.wav"))

    async def interrupt_then_end(worker: PipelineWorker) -> None:
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(1.5)
        await worker.queue_frame(EndFrame())

    avatar = GWMAvatarVideoService(url=live.url, api_key=SERVICE_API_KEY)
    # a TTS twice as fast as real time: most of the speech waits in the plugin
    run = await run_pipeline(
        avatar, pcm, rate, speed=2.0, at=2.0, action=interrupt_then_end, end_when_done=False
    )
    assert not run.errors, [e.error for e in run.errors]
    rec = run.recording
    (cut_ns,) = rec.interruptions
    clip = assemble(rec, FPS)
    delay_s = find_offset(clip, pcm, rate)
    assert delay_s < 1.5, f"echo delay {delay_s:.2f} s"
    cut_s = (cut_ns - clip.start_ns) / 1e9
    # what came back spoke before the interruption, and is silent from its echo + 200 ms on
    quiet_from = round((cut_s + delay_s + 0.2) * clip.sample_rate)
    spoken_until = round(cut_s * clip.sample_rate)
    assert np.abs(clip.pcm[:spoken_until]).max() > 3000
    assert np.abs(clip.pcm[quiet_from:]).max() < 300, "speech after the interruption"
    # ... and the mouth closes with it
    mp4 = tmp_path / "interrupted.mp4"
    write_mp4(clip, mp4)
    opening = mouth_openings(mp4, live.python)
    first_quiet = round((cut_s + delay_s + 0.2) * FPS)
    spoke = opening[: round(cut_s * FPS)]
    assert spoke.max() > 0.0
    closed = opening[first_quiet:] < 0.1 * np.percentile(spoke, 99)
    assert closed.all(), f"mouth open {np.flatnonzero(~closed)[:5] / FPS + first_quiet / FPS} s"


@pytest.mark.timeout(600)
async def test_a_killed_service_is_an_error_frame_and_a_clean_end(
    live: ServiceProcess, tmp_path: Path
) -> None:
    pcm, rate = read_wav(espeak(LONG, tmp_path / "long.wav"))  # ~5 s

    async def kill(worker: PipelineWorker) -> None:
        live.kill()

    options = SessionOptions(media_timeout_s=2.0)
    avatar = GWMAvatarVideoService(url=live.url, api_key=SERVICE_API_KEY, options=options)
    run = await run_pipeline(avatar, pcm, rate, at=1.0, action=kill, limit_s=60)
    assert len(run.errors) == 1, [e.error for e in run.errors]
    assert run.errors[0].processor is avatar and not avatar.is_usable
    assert "from the avatar service" in run.errors[0].error
    # the speech went on without the face, and the pipeline ended when it was done
    assert run.recording.audio_types["TTSAudioRawFrame"] > 0
    assert avatar.session is None and not avatar._tasks
    assert run.seconds < len(pcm) / rate + options.media_timeout_s + 5.0
