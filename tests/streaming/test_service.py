"""The real-time service end to end: real aiortc peers on 127.0.0.1, real models."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import aiohttp
import jiwer
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection

from avatar.analysis import mouth_opening
from models.audio import resample
from streaming.client import ClientPeer
from streaming.engines import Engines
from streaming.server import STATE_KEY

pytestmark = pytest.mark.timeout(240)

LOUD = 0.02


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).strip()


def _wer(ref: str, hyp: str) -> float:
    return float(jiwer.wer(_norm(ref), _norm(hyp)))


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def _rms_at(peer: ClientPeer, t: float, half: float = 0.04) -> float:
    """RMS of the audio that arrived within ±half seconds of t."""
    frames = [a for at, a in peer.received.audio if abs(at - t) <= half]
    if not frames:
        return 0.0
    x = np.concatenate(frames)
    return float(np.sqrt(np.mean(x**2)))


async def _connected(server: TestServer) -> ClientPeer:
    peer = ClientPeer(_url(server))
    failed = await peer.connect()
    assert failed is None, f"session refused: {failed.status if failed else ''}"
    await peer.wait_open()
    return peer


async def test_voice_turn_is_heard_answered_and_lip_synced(
    server: TestServer, engines: Engines, speak
) -> None:
    # A question whose answer is a sentence, not one word: the mouth checks below need
    # some speech ("Paris." alone is ~0.4 s of sound, which a short reply may be).
    question = "What is the capital of France, and what is it known for?"
    peer = await _connected(server)
    try:
        await asyncio.sleep(0.5)
        t_start = time.monotonic()
        peer.mic.say(speak(question))
        heard = await peer.wait_event("user_transcript", 30)
        final = await peer.wait_event("assistant_text", 90, pred=lambda m: m["final"])
        metrics = await peer.wait_event("turn_metrics", 10)
        await asyncio.sleep(0.6)
        t_end = time.monotonic()
    finally:
        await peer.hangup()

    # The user was heard.
    assert _wer(question, heard["text"]) <= 0.2, heard["text"]
    # The reply was spoken: Whisper on the received audio matches the final text.
    assert final["text"].strip()
    assert not final["interrupted"]
    pcm16 = resample(peer.received.audio_pcm(), 48_000, 16_000)
    loud = np.flatnonzero(np.abs(pcm16) > LOUD)
    words = len(final["text"].split())
    # The whole reply was heard: at least 80 ms of loud samples a word (Piper speaks
    # ~0.3 s a word, about half of it above LOUD), whatever the reply's length.
    assert len(loud) > 16_000 * 0.08 * words, (len(loud) / 16_000, final["text"])
    reply_audio = pcm16[max(0, loud[0] - 1600) : loud[-1] + 1600]
    said = engines.stt.transcribe(reply_audio, 16_000).text
    assert _wer(final["text"], said) <= 0.3, (final["text"], said)
    # Every stage was timed; the transcript may be ready as the turn ends (0 ms to wait
    # for it: the guess was transcribed during the end-of-turn silence).
    for stage in ("end_of_turn_wait_ms", "llm_first_token_ms", "tts_first_chunk_ms"):
        assert metrics[stage] > 0, (stage, metrics)
    assert metrics["stt_ms"] >= 0
    assert metrics["voice_to_voice_ms"] > metrics["end_of_turn_wait_ms"]

    # Video at 25 ± 3 fps over the call.
    times = np.array([t for t, _ in peer.received.video])
    window = times[(times > t_start) & (times < t_end)]
    fps = (len(window) - 1) / (window[-1] - window[0])
    assert 22 <= fps <= 28, fps

    # The mouth moves while the reply is loud and rests in silence.
    box = engines.avatar("default").rig.mouth_box()
    openings, levels = [], []
    for t, img in peer.received.video:
        if img.size == 0 or t < t_start:
            continue
        openings.append(mouth_opening(img, box))
        levels.append(_rms_at(peer, t))
    o, lv = np.array(openings), np.array(levels)
    speaking = lv > 0.05
    silent = lv < 0.002
    assert speaking.sum() > 10 and silent.sum() > 10
    assert o[speaking].mean() > o[silent].mean() + 0.5 * o[speaking].std()
    assert np.median(o[silent]) <= np.percentile(o[speaking], 25)


async def test_barge_in_stops_the_reply_and_answers_the_new_question(
    server: TestServer, speak
) -> None:
    peer = await _connected(server)
    try:
        await asyncio.sleep(0.3)
        peer.send(
            {"type": "text", "text": "Tell me a long story about a brave knight and a dragon."}
        )
        await peer.wait_event("state", 60, pred=lambda m: m["state"] == "speaking")
        await asyncio.sleep(1.0)
        peer.mic.say(speak("Wait, what is two plus two?"))
        listening = await peer.wait_event("state", 10, pred=lambda m: m["state"] == "listening")
        t_detect = time.monotonic()
        first_final = await peer.wait_event("assistant_text", 10, pred=lambda m: m["final"])
        second = await peer.wait_event("user_transcript", 30)
        second_final = await peer.wait_event("assistant_text", 90, pred=lambda m: m["final"])
    finally:
        await peer.hangup()
    del listening
    assert first_final["interrupted"] is True
    # Reply audio stopped within 300 ms of the barge-in being detected.
    after = [
        t
        for t, a in peer.received.audio
        if t_detect <= t <= t_detect + 1.0 and np.sqrt(np.mean(a**2)) > LOUD
    ]
    assert not after or max(after) - t_detect <= 0.3, max(after) - t_detect
    assert "two" in _norm(second["text"]) or "2" in second["text"]
    assert second_final["text"].strip()
    assert not second_final["interrupted"]


async def test_text_turn_gets_a_spoken_answer(server: TestServer) -> None:
    peer = await _connected(server)
    try:
        peer.send({"type": "text", "text": "Please say hello to me."})
        user = await peer.wait_event("user_transcript", 10)
        final = await peer.wait_event("assistant_text", 90, pred=lambda m: m["final"])
        await asyncio.sleep(0.5)
    finally:
        await peer.hangup()
    assert user["text"] == "Please say hello to me."
    assert final["text"].strip()
    pcm = peer.received.audio_pcm()
    assert (np.abs(pcm) > LOUD).sum() > 48_000 * 0.3, final["text"]


async def test_hangup_mid_reply_leaves_nothing_behind(server: TestServer) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    peer = await _connected(server)
    sid = peer.session_id
    assert sid
    peer.send({"type": "text", "text": "Tell me a long story about the sea."})
    await peer.wait_event("state", 60, pred=lambda m: m["state"] == "speaking")
    await peer.hangup()
    async with aiohttp.ClientSession() as http:
        listed = await (await http.get(f"{_url(server)}/v1/sessions")).json()
    assert all(s["session_id"] != sid for s in listed["sessions"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        tasks = [t for t in asyncio.all_tasks() if sid in t.get_name() and not t.done()]
        new_threads = [
            t
            for t in threading.enumerate()
            if t.ident not in threads_before
            and t.is_alive()
            and not t.name.startswith(("render", "asyncio", "ThreadPoolExecutor"))
        ]
        if not tasks and not new_threads:
            break
        await asyncio.sleep(0.1)
    assert not tasks, tasks
    assert not new_threads, [t.name for t in new_threads]
    assert not server.app[STATE_KEY].sessions


async def _offer_sdp(audio: bool) -> str:
    pc = RTCPeerConnection()
    try:
        if audio:
            pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_bad_requests_get_json_errors_while_a_session_stays_healthy(
    server: TestServer,
) -> None:
    url = _url(server)
    peer = await _connected(server)
    try:
        frames_before = len(peer.received.video)
        no_audio = await _offer_sdp(audio=False)
        good = await _offer_sdp(audio=True)
        cases = [
            (b"{not json", "application/json", 400, "invalid_json"),
            (b'{"type": "offer"}', "application/json", 400, "invalid_request"),
            (b'{"sdp": "hello", "type": "offer"}', "application/json", 400, "invalid_sdp"),
            (
                b'{"sdp": "v=0\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n", "type": "offer"}',
                "application/json",
                400,
                "invalid_sdp",
            ),
            (
                json.dumps({"sdp": no_audio, "type": "offer"}).encode(),
                "application/json",
                400,
                "offer_without_audio",
            ),
            (
                json.dumps({"sdp": good, "type": "offer", "avatar": "nobody"}).encode(),
                "application/json",
                404,
                "unknown_avatar",
            ),
            (b"x" * 400_000, "application/json", 413, "body_too_large"),
            (b"sdp=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ]
        async with aiohttp.ClientSession() as http:
            for body, ctype, status, code in cases:
                resp = await http.post(
                    f"{url}/v1/sessions", data=body, headers={"Content-Type": ctype}
                )
                data = await resp.json()
                assert resp.status == status, (code, resp.status, data)
                assert data["error"]["code"] == code
                assert data["error"]["message"]
            resp = await http.delete(f"{url}/v1/sessions/nope")
            assert resp.status == 404
            assert (await http.get(f"{url}/healthz")).status == 200
            ready = await (await http.get(f"{url}/readyz")).json()
            assert ready["ready"] is True
            # Fill the cap (2): the third session is refused with 503 and Retry-After.
            second = await _connected(server)
            third = ClientPeer(url)
            refused = await third.connect()
            await third.close()
            await second.hangup()
            assert refused is not None
            assert refused.status == 503
            assert refused.headers.get("Retry-After")
            metrics = await (await http.get(f"{url}/metrics")).text()
            assert "gwm_active_sessions" in metrics
            assert 'gwm_sessions_rejected_total{reason="capacity"} 1.0' in metrics
        # The healthy session kept streaming and still answers.
        await asyncio.sleep(0.5)
        assert len(peer.received.video) > frames_before + 10
        peer.send({"type": "text", "text": "Hi!"})
        final = await peer.wait_event("assistant_text", 90, pred=lambda m: m["final"])
        assert final["text"].strip()
    finally:
        await peer.hangup()
