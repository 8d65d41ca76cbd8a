"""Real conversations on loopback with unseen voices: voice-to-voice, stages, WER, cut-ins.

Voice-to-voice latency, its per-stage breakdown, user-transcript WER, false cut-ins,
A/V sync and fps of real conversations on loopback, with voices the service never heard.

Usage: python benchmarks/conversation.py [--turns 10] [--sessions 1 2] [--config default]
       [--set key=value ...] [--voice en-us:160:50 --voice piper ...] [--pause-s 0.55]

Starts ``avatar serve`` as a subprocess on 127.0.0.1, then for each session count runs
that many aiortc clients at once, each holding ``--turns`` spoken turns. The questions
are spoken by several espeak-ng voices (speed and pitch varied; ``piper``, the avatar's
own voice, on request) and every ``--paused-every``-th one has a pause of ``--pause-s``
mid-sentence ("Could you tell me ... what bees make?"). Per run it prints:

- voice-to-voice p50/p95 at the client: end of the user's speech in the sent audio →
  first loud reply sample received that belongs to the turn answering that question
  (after the turn's first event on the data channel, so a previous reply's tail is
  never counted), and the server's own ``voice_to_voice_ms``;
- the server's per-turn metrics (every key it sends: end-of-turn wait, STT tail, LLM
  first token and first clause, TTS first chunk, speculation shares, ...) and the rest
  of the server's voice-to-voice that no stage accounts for (the speech lead and
  scheduling);
- the user transcript's WER against the question (overall and per voice);
- false cut-ins: a question answered before it was finished (a transcript, or reply
  audio, before the end of its speech) or heard as more than one turn;
- received fps, the A/V offset at the client, server CPU per session, and the machine
  with its load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avatar.analysis import mouth_opening  # noqa: E402
from avatar.identity import load_rig  # noqa: E402
from benchmarks.common import arg_parser, config_arg, machine, pct  # noqa: E402
from benchmarks.spoken import (  # noqa: E402
    RATE,
    Voice,
    espeak,
    espeak_available,
    parse_voice,
    plain,
    speak,
)
from benchmarks.wer import word_error_rate  # noqa: E402
from gwm_avatars.arguments import non_negative_int, positive_int  # noqa: E402
from models.assets import AssetResolver  # noqa: E402
from models.tts import create_tts  # noqa: E402
from streaming.client import ClientPeer  # noqa: E402
from streaming.config import AppConfig  # noqa: E402
from streaming.ice import use_host_addresses  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky on a clear day?",
    "Can you name a fruit that is yellow?",
    "What is two plus three?",
    "Which animal says moo?",
    "What do bees make?",
    "How many days are in a week?",
    "What is the opposite of hot?",
    "Where does the sun rise?",
    "What is frozen water called?",
    "Name a planet in our solar system.",
]
PAUSED = [
    "Could you tell me | what the capital of Italy is?",
    "I was wondering | how many minutes are in an hour.",
    "Can you tell me the name of | the largest ocean on Earth?",
    "I would like to know | what cows drink.",
    "Tell me please | which animal is the tallest.",
]
"""Questions with a pause mid-sentence (at the ``|``), where the turn is not over."""
VOICES = (
    "en-us:160:50",
    "en+f3:150:65",
    "en-gb+m3:175:40",
    "en-gb-scotland:155:50",
    "en-029+f2:165:55",
)
"""espeak-ng voices, unlike the avatar's own (Piper) voice."""
STAGES = (
    "end_of_turn_wait_ms",
    "stt_ms",
    "llm_first_token_ms",
    "llm_first_clause_ms",
    "tts_first_chunk_ms",
)
"""The stages from the end of the user's speech to the reply's first sound, printed first."""
PATH = ("end_of_turn_wait_ms", "stt_ms", "llm_first_clause_ms", "tts_first_chunk_ms")
"""The stages that follow one another (the first clause includes the first token; a reply
of one clause has it at ``llm_total_ms``): what they leave of ``voice_to_voice_ms`` is
the speech lead and scheduling."""
FLAG_SUFFIXES = ("_speculative", "_failed")
"""Metrics that are 1.0 when something happened in the turn (absent otherwise): printed
as the share of turns."""
LOUD = 0.02
MIC_TIMEOUT_S = 30.0
"""A question the call has not started sending by then means the call is gone."""
TURN_TIMEOUT_S = 90.0
SETTLE_S = 1.5
"""After the end of speech, how long the turn events must have been quiet to count the
question as answered (a second turn for its second half would have started by then)."""
NOTHING_HEARD_S = 15.0
"""A question with no transcript this long after its end, the avatar listening, was
heard as nothing."""
QUIET_S = 0.6
"""Silence received before the next question is spoken (the reply's tail is over)."""


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def av_offset_ms(peer: ClientPeer, box: tuple[int, int, int, int]) -> float:
    """Lag (ms) of the mouth behind the audio at the client; positive: video late."""
    vt = np.array([t for t, img in peer.received.video if img.size])
    vo = np.array([mouth_opening(img, box) for _, img in peer.received.video if img.size])
    at = np.array([t for t, _ in peer.received.audio])
    ae = np.array([float(np.sqrt(np.mean(a**2))) for _, a in peer.received.audio])
    if len(vt) < 50 or len(at) < 100:
        return float("nan")
    grid = np.arange(max(vt[0], at[0]), min(vt[-1], at[-1]), 0.005)
    v = np.interp(grid, vt, vo)
    a = np.interp(grid, at, ae)
    v = (v - v.mean()) / (v.std() + 1e-9)
    a = (a - a.mean()) / (a.std() + 1e-9)
    best, best_lag = -2.0, 0
    for lag in range(-40, 41):  # ±200 ms in 5 ms steps
        if lag >= 0:
            r = float(np.mean(a[: len(a) - lag] * v[lag:]))
        else:
            r = float(np.mean(a[-lag:] * v[: len(v) + lag]))
        if r > best:
            best, best_lag = r, lag
    return best_lag * 5.0


@dataclass(frozen=True)
class Question:
    """One spoken question: its text (``|`` marks a pause), voice and microphone clip."""

    text: str
    voice: str
    clip: np.ndarray = field(repr=False)
    speech_s: float
    """Seconds of speech in the clip (after its leading pad)."""

    @property
    def paused(self) -> bool:
        """Whether it has a pause mid-sentence."""
        return "|" in self.text


@dataclass
class Answer:
    """What the call showed of one question: the turns it started and the reply."""

    question: Question
    transcripts: list[str] = field(default_factory=list)
    turn_ids: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    v2v_s: float | None = None
    cut_in: str = ""
    """Why this question counts as a false cut-in (empty: it does not)."""
    error: str = ""


def score(
    question: Question,
    events: Sequence[tuple[float, dict[str, Any]]],
    loud: Sequence[float],
    speech_start: float,
    speech_end: float,
) -> Answer:
    """The answer to ``question`` from the events received since it was sent and the
    arrival times of loud received audio frames.

    The answering turn is the last one whose transcript arrived; its reply sound is the
    first loud audio after both the end of speech and that turn's first event.
    """
    answer = Answer(question)
    first_event: dict[int, float] = {}
    for t, e in events:
        turn = e.get("turn_id")
        if isinstance(turn, int) and e.get("type") in ("user_transcript", "assistant_text"):
            first_event.setdefault(turn, t)
        if e.get("type") == "user_transcript":
            answer.transcripts.append(str(e.get("text", "")))
            answer.turn_ids.append(int(e.get("turn_id", -1)))
            if t < speech_end and not answer.cut_in:
                answer.cut_in = f"transcript {e.get('text', '')!r} before the end of speech"
        elif e.get("type") == "turn_metrics" and answer.turn_ids:
            if e.get("turn_id") == answer.turn_ids[-1]:
                answer.metrics = {
                    k: float(v)
                    for k, v in e.items()
                    if k not in ("type", "turn_id") and isinstance(v, int | float)
                }
        elif e.get("type") == "error":
            answer.error = str(e.get("code", "error"))
        elif e.get("state") == "thinking" and speech_start < t < speech_end and not answer.cut_in:
            answer.cut_in = "a turn started before the end of speech"
    if len(set(answer.turn_ids)) > 1 and not answer.cut_in:
        answer.cut_in = f"heard as {len(set(answer.turn_ids))} turns: {answer.transcripts}"
    if not answer.cut_in and any(speech_start < t < speech_end for t in loud):
        answer.cut_in = "the avatar spoke before the end of speech"
    if answer.turn_ids:
        since = max(speech_end, first_event.get(answer.turn_ids[-1], speech_end))
        reply = [t for t in loud if t > since]
        if reply:
            answer.v2v_s = reply[0] - speech_end
    return answer


def answered(events: Sequence[tuple[float, dict[str, Any]]], now: float, speech_end: float) -> bool:
    """Whether the question whose events these are is over: its last transcript's turn
    has reported its metrics (or failed), the avatar listens again, and no turn event
    came for :data:`SETTLE_S`."""
    if now < speech_end + SETTLE_S:
        return False
    transcripts = [e for _, e in events if e.get("type") == "user_transcript"]
    states = [e.get("state") for _, e in events if e.get("type") == "state"]
    if states and states[-1] != "listening":
        return False
    if not transcripts:  # heard as nothing (or not yet): give the recognizer its time
        return now - speech_end > NOTHING_HEARD_S
    last = transcripts[-1].get("turn_id")
    done = any(
        (e.get("type") == "turn_metrics" and e.get("turn_id") == last) or e.get("type") == "error"
        for _, e in events
    )
    return done and now - events[-1][0] >= SETTLE_S


def loud_times(peer: ClientPeer, since: float) -> list[float]:
    """Arrival times of the loud audio frames received after ``since``."""
    return [
        t
        for t, a in peer.received.audio
        if t > since and a.size and float(np.sqrt(np.mean(a**2))) > LOUD
    ]


async def quiet(peer: ClientPeer, limit_s: float = 10.0) -> None:
    """Wait until no loud audio has arrived for :data:`QUIET_S` (at most ``limit_s``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        recent = loud_times(peer, time.monotonic() - QUIET_S)
        if not recent:
            return
        await asyncio.sleep(0.1)


async def ask(peer: ClientPeer, q: Question) -> Answer:
    """Speak ``q`` on the call and wait until it has been answered."""
    sent = len(peer.mic.sent_log)
    cursor = len(peer.received.events)
    peer.mic.say(q.clip)
    t0 = time.monotonic()
    while len(peer.mic.sent_log) == sent:
        if time.monotonic() - t0 > MIC_TIMEOUT_S:  # the call died: stop, don't hang
            return Answer(q, error=f"microphone not read ({peer.pc.connectionState})")
        await asyncio.sleep(0.01)
    pad_s = (len(q.clip) / RATE - q.speech_s) / 2
    speech_start = peer.mic.sent_log[-1][0] + pad_s
    speech_end = speech_start + q.speech_s
    while True:
        events = peer.received.events[cursor:]
        now = time.monotonic()
        if answered(events, now, speech_end):
            break
        if now - speech_end > TURN_TIMEOUT_S:
            answer = score(q, events, loud_times(peer, speech_start), speech_start, speech_end)
            answer.error = answer.error or "turn timed out"
            return answer
        await asyncio.sleep(0.05)
    await quiet(peer)
    events = peer.received.events[cursor:]
    return score(q, events, loud_times(peer, speech_start), speech_start, speech_end)


@dataclass
class RunResult:
    """The pooled measurements of one run (all its clients)."""

    answers: list[Answer] = field(default_factory=list)
    fps: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peers: list[ClientPeer] = field(default_factory=list)
    cpu_per_session: float = 0.0

    def v2v(self) -> list[float]:
        """Voice-to-voice seconds of the questions answered without a cut-in."""
        return [a.v2v_s for a in self.answers if a.v2v_s is not None and not a.cut_in]

    def stage(self, key: str) -> list[float]:
        """One per-turn metric's values."""
        return [a.metrics[key] for a in self.answers if key in a.metrics]


async def one_client(
    url: str, questions: list[Question], result: RunResult, *, keep_video: bool = True
) -> None:
    """Ask every question in turn on one call; add the answers to ``result``.

    ``keep_video=False`` counts frames without decoding them (for load runs, where the
    client shares the CPU with the server).
    """
    peer = ClientPeer(url, keep_video=keep_video)
    failed = await peer.connect()
    if failed is not None:
        result.errors.append(f"refused {failed.status}")
        return
    try:
        await peer.wait_open()
        await asyncio.sleep(1.0)
        t_first = time.monotonic()
        for q in questions:
            answer = await ask(peer, q)
            result.answers.append(answer)
            if answer.error.startswith("microphone"):
                result.errors.append(answer.error)
                return
        dur = time.monotonic() - t_first
        result.fps.append(len([t for t, _ in peer.received.video if t >= t_first]) / dur)
        result.errors.extend(e["code"] for e in peer.received.events_of("error"))
        result.peers.append(peer)
    finally:
        await peer.hangup()


def plan(
    clips: dict[tuple[str, str], Question],
    voices: list[str],
    turns: int,
    client: int,
    paused_every: int,
) -> list[Question]:
    """The questions client ``client`` asks: voices and questions rotate per client, every
    ``paused_every``-th question has a pause."""
    chosen: list[Question] = []
    plain_i = paused_i = 0
    for i in range(turns):
        voice = voices[(i + client) % len(voices)]
        if paused_every and i % paused_every == paused_every - 1:
            text = PAUSED[(paused_i + client) % len(PAUSED)]
            paused_i += 1
        else:
            text = QUESTIONS[(plain_i + 3 * client) % len(QUESTIONS)]
            plain_i += 1
        chosen.append(clips[(text, voice)])
    return chosen


def synthesize(
    cfg: AppConfig,
    voices: list[Voice],
    pause_s: float,
    sessions: int,
    turns: int,
    paused_every: int,
) -> dict[tuple[str, str], Question]:
    """Every clip the clients will need, spoken once."""
    tts = create_tts(cfg.tts, AssetResolver(cfg.assets)) if any(v.piper for v in voices) else None

    def piper(text: str) -> tuple[np.ndarray, int]:
        assert tts is not None
        return np.concatenate([c.pcm for c in tts.synthesize(text)]), tts.sample_rate

    needed: set[tuple[str, str]] = set()
    names = [str(v) for v in voices]
    dummy = np.zeros(0, np.float32)
    stub = {(t, v): Question(t, v, dummy, 0.0) for t in QUESTIONS + PAUSED for v in names}
    for client in range(sessions):
        needed |= {(q.text, q.voice) for q in plan(stub, names, turns, client, paused_every)}
    by_name = dict(zip(names, voices, strict=True))
    clips: dict[tuple[str, str], Question] = {}
    for text, name in sorted(needed):
        voice = by_name[name]
        synth = piper if voice.piper else partial(espeak, voice=voice)
        clip, speech_s = speak(text, synth, pause_s)
        clips[(text, name)] = Question(text, name, clip, speech_s)
    return clips


async def run_sessions(url: str, plans: list[list[Question]], pid: int) -> RunResult:
    """One client per plan, at once; returns their pooled measurements."""
    result = RunResult()
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(one_client(url, p, result) for p in plans))
    result.cpu_per_session = (proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) / len(plans)
    return result


def voice_arg(text: str) -> str:
    """An argparse ``type``: a voice spec (see :func:`benchmarks.spoken.parse_voice`)."""
    try:
        return str(parse_voice(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def pause_arg(text: str) -> float:
    """An argparse ``type``: a pause of 0.1..2 seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"expected seconds within 0.1..2, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--turns", type=positive_int, default=10)
    parser.add_argument("--sessions", type=positive_int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for the server (and Piper's voice)",
    )
    parser.add_argument(
        "--voice",
        dest="voices",
        type=voice_arg,
        action="append",
        help="piper or an espeak-ng voice[:speed[:pitch]] (repeatable; default: "
        + ", ".join(VOICES)
        + ")",
    )
    parser.add_argument(
        "--pause-s", type=pause_arg, default=0.55, help="the pause inside paused questions"
    )
    parser.add_argument(
        "--paused-every",
        type=non_negative_int,
        default=3,
        help="every N-th question has a pause mid-sentence (0: none)",
    )
    parser.add_argument(
        "--server-log",
        type=Path,
        default=None,
        help="write the server's log to this file instead of discarding it",
    )
    args = parser.parse_args(argv)
    args.app_config = config_arg(parser, args.config, args.overrides)
    args.voices = args.voices or list(VOICES)
    if not all(v == "piper" for v in args.voices) and not espeak_available():
        parser.error("--voice: espeak-ng is not installed (apt-get install -y espeak-ng)")
    return args


def rest_ms(metrics: dict[str, float]) -> float | None:
    """What the server's voice-to-voice leaves after the stages of :data:`PATH`, or None
    when a stage is missing (the turn did not get that far)."""
    m = dict(metrics)
    m.setdefault("llm_first_clause_ms", m.get("llm_total_ms", float("nan")))
    m.setdefault("end_of_turn_wait_ms", 0.0)
    if "voice_to_voice_ms" not in m or not all(k in m and m[k] == m[k] for k in PATH):
        return None
    return m["voice_to_voice_ms"] - sum(m[k] for k in PATH)


def stage_lines(answers: list[Answer]) -> list[str]:
    """The server's per-turn metrics: every key it sent, known stages first."""
    values: dict[str, list[float]] = {}
    for a in answers:
        for k, v in a.metrics.items():
            values.setdefault(k, []).append(v)
    keys = [k for k in STAGES if k in values] + sorted(set(values) - set(STAGES))
    lines = []
    for k in keys:
        vals = values[k]
        if k.endswith(FLAG_SUFFIXES):  # a flag: absent means 0
            share = sum(vals) / len(answers)
            lines.append(f"  {k:24} share {share:6.0%}        (n={len(answers)})")
        else:
            unit = "ms" if k.endswith("_ms") else "  "
            lines.append(
                f"  {k:24} p50 {pct(vals, 50):7.0f} {unit}  p95 {pct(vals, 95):7.0f} {unit}"
                f"  (n={len(vals)})"
            )
    rest = [r for a in answers if (r := rest_ms(a.metrics)) is not None]
    if rest:
        lines.append(
            f"  {'rest (lead, scheduling)':24} p50 {pct(rest, 50):7.0f} ms  p95 "
            f"{pct(rest, 95):7.0f} ms  (voice_to_voice_ms minus "
            f"{' + '.join(k.removesuffix('_ms') for k in PATH)}; stages that overlap make it "
            "small or negative)"
        )
    return lines


def report(n: int, res: RunResult, box: tuple[int, int, int, int]) -> None:
    """Print one run's figures."""
    answers = [a for a in res.answers if not a.error.startswith("microphone")]
    out(f"\n== {n} concurrent session(s): {len(answers)} questions")
    v2v = [a.v2v_s for a in answers if a.v2v_s is not None and not a.cut_in]
    if v2v:
        out(
            f"voice-to-voice at the client s: p50 {pct(v2v, 50):.2f}  p95 {pct(v2v, 95):.2f}"
            f"  (n={len(v2v)}, questions answered without a cut-in)"
        )
    for line in stage_lines([a for a in answers if not a.cut_in]):
        out(line)
    beyond = [
        a.v2v_s * 1000 - a.metrics["voice_to_voice_ms"]
        for a in answers
        if a.v2v_s is not None and not a.cut_in and "voice_to_voice_ms" in a.metrics
    ]
    if beyond:
        out(
            f"  {'client minus server':24} p50 {pct(beyond, 50):7.0f} ms  p95 "
            f"{pct(beyond, 95):7.0f} ms  (the transport both ways, the jitter buffers, the "
            "server VAD's view of the end of speech, the first loud sample)"
        )
    heard = [a for a in answers if a.transcripts]
    if heard:
        refs = [plain(a.question.text) for a in heard]
        hyps = [" ".join(a.transcripts) for a in heard]
        out(
            f"user transcript WER: {word_error_rate(refs, hyps):.1%} (n={len(heard)}; "
            f"{len(answers) - len(heard)} questions heard as nothing)"
        )
        per_voice = []
        for voice in sorted({a.question.voice for a in heard}):
            mine = [a for a in heard if a.question.voice == voice]
            wer = word_error_rate(
                [plain(a.question.text) for a in mine], [" ".join(a.transcripts) for a in mine]
            )
            per_voice.append(f"{voice} {wer:.0%}")
        out("  per voice: " + ", ".join(per_voice))
    for label, group in (("paused", True), ("plain", False)):
        mine = [a for a in answers if a.question.paused == group]
        cut = [a for a in mine if a.cut_in]
        if mine:
            out(f"false cut-ins, {label} questions: {len(cut)}/{len(mine)}")
        for a in cut:
            out(f"  {a.question.text!r} ({a.question.voice}): {a.cut_in}")
    misheard = [
        a for a in heard if word_error_rate([plain(a.question.text)], [" ".join(a.transcripts)]) > 0
    ]
    for a in misheard[:6]:
        out(f"  misheard ({a.question.voice}): {plain(a.question.text)!r} -> {a.transcripts}")
    offsets = [av_offset_ms(p, box) for p in res.peers]
    out("A/V offset at client (ms, + = video late): " + ", ".join(f"{o:.0f}" for o in offsets))
    out("received fps: " + ", ".join(f"{f:.1f}" for f in res.fps))
    out(f"server CPU per session: {res.cpu_per_session * 100:.0f}% of one core")
    errors = res.errors + [a.error for a in answers if a.error]
    if errors:
        out(f"errors: {errors}")


def start_server(
    config: str,
    overrides: Sequence[str],
    port: int,
    max_sessions: int,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``avatar serve`` on 127.0.0.1:``port`` with the profile and its overrides (its log
    to ``log_path``, or discarded)."""
    sets = ["server.ice_host_addresses=[127.0.0.1]", f"server.max_sessions={max_sessions}"]
    cmd = [sys.executable, "-m", "gwm_avatars.cli", "--config", config]
    for o in [*sets, *overrides]:
        cmd += ["--set", o]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if log_path is None:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log_path.open("ab") as log_file:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Terminate the server (kill it if it does not stop within 10 s)."""
    server.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(10)
    if server.poll() is None:
        server.kill()


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, run the sessions, print the numbers."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    use_host_addresses(["127.0.0.1"])
    cfg: AppConfig = args.app_config
    voices = [parse_voice(v) for v in args.voices]
    clips = synthesize(cfg, voices, args.pause_s, max(args.sessions), args.turns, args.paused_every)
    rig = load_rig(cfg.avatar.bundle, size=(cfg.render.width or cfg.render.size, cfg.render.size))
    box = rig.mouth_box()
    port = free_port()
    server = start_server(args.config, args.overrides, port, max(args.sessions), args.server_log)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_ready(url))
        out(f"machine: {machine()}; load average {load_average()} before")
        eot = cfg.end_of_turn
        out(
            f"config: {args.config} {' '.join(args.overrides)}; LLM {cfg.llm.model} "
            f"({cfg.llm.threads} threads), STT {cfg.stt.model} {cfg.stt.compute_type} "
            f"(window {cfg.stt.window_s:g} s), end of turn question/statement/unfinished "
            f"{eot.question_ms}/{eot.statement_ms}/{eot.unfinished_ms} ms, "
            f"{cfg.render.size}px at {cfg.render.fps} fps"
        )
        out(
            f"{args.turns} turns per session; voices {', '.join(args.voices)}; "
            + (
                f"1 question in {args.paused_every} has a {args.pause_s:.2f} s pause mid-sentence"
                if args.paused_every
                else "no paused questions"
            )
            + f"; server pid {server.pid}"
        )
        for n in args.sessions:
            plans = [plan(clips, args.voices, args.turns, c, args.paused_every) for c in range(n)]
            res = asyncio.run(run_sessions(url, plans, server.pid))
            report(n, res, box)
            out(f"load average after: {load_average()}")
    finally:
        stop_server(server)
    return 0


async def _wait_ready(url: str, timeout: float = 120.0) -> None:
    """Wait until the server answers ``/readyz`` with 200."""
    t = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - t < timeout:
            with contextlib.suppress(aiohttp.ClientError):
                r = await http.get(f"{url}/readyz")
                if r.status == 200:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError("server did not become ready")


if __name__ == "__main__":
    raise SystemExit(main())
