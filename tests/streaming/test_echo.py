"""Echo sessions end to end: a real aiortc client sends an agent's speech (an espeak-ng
voice) and gets it back with a face that speaks it, measured on what the client
received; interrupt, speak, the mode checks. Real models, except that the echo
sessions run on engines whose STT, LLM and VAD fail the test if anything touches them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jiwer
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from avatar.analysis import best_lag_correlation
from avatar.media import read_audio
from avatar.state import NEUTRAL
from models.audio import resample
from streaming.client import RATE, ClientPeer
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.server import create_app
from tests.avatar.speech_support import espeak_wav
from tests.streaming.echo_support import loud_span, openings, timeline
from tests.streaming.limits import base_url, custom_server, offer_sdp, wait_frames

pytestmark = pytest.mark.timeout(240)

LINE = "Thank you for calling. How can I help you today?"
LONG = "I would be glad to help you with that. Let me look up your order and check when it ships."
FPS = 25
KEY = "test-key-echo-0123456789"


class Untouchable:
    """Stands in for an engine an echo session must never use: any use fails the test.
    (A stand-in only for this check; everything the session does use is real.)"""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"an echo session used the {self._name} ({attr})")


@pytest.fixture
async def echo_server(service_config: AppConfig, engines: Engines) -> AsyncIterator[TestServer]:
    """A server whose sessions cannot reach STT, LLM or VAD (echo sessions need none)."""
    guarded = dataclasses.replace(
        engines, stt=Untouchable("STT"), llm=Untouchable("LLM"), vad_model=Untouchable("VAD")
    )
    srv = TestServer(create_app(service_config, engines=guarded), host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).strip()


def _speech48(text: str, path: Path) -> np.ndarray:
    pcm, rate = read_audio(espeak_wav(text, path))
    return resample(pcm, rate, RATE)


async def _echo_peer(server: TestServer) -> ClientPeer:
    peer = ClientPeer(base_url(server))
    failed = await peer.connect(mode="echo")
    assert failed is None, f"echo session refused: {failed.status if failed else ''}"
    await peer.wait_open()
    await wait_frames(peer, 5)
    return peer


async def test_echo_session_plays_the_speech_back_with_a_face_that_speaks_it(
    echo_server: TestServer, engines: Engines, tmp_path: Path
) -> None:
    sent = _speech48(LINE, tmp_path / "line.wav")
    peer = await _echo_peer(echo_server)
    try:
        await asyncio.sleep(0.5)
        peer.mic.say(sent)
        t_sent = time.monotonic()
        await peer.wait_event("state", 10, pred=lambda m: m["state"] == "speaking")
        await peer.wait_event("state", 20, pred=lambda m: m["state"] == "listening")
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http:
            listed = await (await http.get(f"{base_url(echo_server)}/v1/sessions")).json()
            metrics = await (await http.get(f"{base_url(echo_server)}/metrics")).text()
    finally:
        await peer.hangup()
    assert listed["sessions"][0]["mode"] == "echo"
    assert 'gwm_sessions_by_mode_total{mode="echo"} 1.0' in metrics

    got = timeline(peer.received, around=(t_sent, t_sent + len(sent) / RATE + 1.0))
    a, b = loud_span(got.audio, RATE)
    a0, b0 = loud_span(sent, RATE)
    # the same speech came back: as long, and Whisper hears the line in it
    assert abs((b - a) - (b0 - a0)) / RATE < 0.5, ((b - a) / RATE, (b0 - a0) / RATE)
    heard = engines.stt.transcribe(resample(got.audio[a - 4800 : b + 4800], RATE, 16_000))
    assert jiwer.wer(_norm(LINE), _norm(heard.text)) <= 0.2, heard.text
    # with a mouth that follows it, frame for frame, as the client received them
    avatar = engines.avatar("default")
    opening = openings(peer.received, avatar.rig.mouth_box(), avatar.renderer.render(NEUTRAL))
    frames = np.flatnonzero(
        (got.video_t >= got.audio_t0 + a / RATE - 0.5)
        & (got.video_t <= got.audio_t0 + b / RATE + 0.5)
    )
    r, lag = best_lag_correlation(opening[frames], got.envelope()[frames], 3)
    assert r >= 0.8, f"mouth pixels vs received loudness: r={r:.2f} at lag {lag}"
    # the aiortc receiver holds audio back 4 packets (80 ms) and video not at all, so
    # as received the mouth may lead by a frame (a browser syncs the two with RTCP)
    assert abs(lag) <= 1, lag


async def test_interrupt_silences_and_closes_the_mouth_then_speak_talks(
    echo_server: TestServer, engines: Engines, tmp_path: Path
) -> None:
    sent = _speech48(LONG, tmp_path / "long.wav")
    peer = await _echo_peer(echo_server)
    try:
        await asyncio.sleep(0.3)
        peer.mic.say(sent)
        await peer.wait_event("state", 10, pred=lambda m: m["state"] == "speaking")
        await asyncio.sleep(1.5)  # mid-speech
        peer.mic.hush()  # the agent stops sending its speech...
        t_cut = time.monotonic()
        peer.send({"type": "interrupt"})  # ...and tells the face
        await peer.wait_event("state", 5, pred=lambda m: m["state"] == "listening")
        await asyncio.sleep(1.0)
        peer.send({"type": "speak", "text": "Sure, go ahead."})
        done = await peer.wait_event("speak_done", 30)
        await asyncio.sleep(0.3)
        peer.send({"type": "text", "text": "hello"})  # not in an echo session
        error = await peer.wait_event("error", 5)
    finally:
        await peer.hangup()
    assert error["code"] == "unsupported"
    assert done["text"] == "Sure, go ahead." and not done["interrupted"]

    # as a player would play them: each stream at its typical delay (a player's jitter
    # buffer evens out the bursts in which frames reach a loaded client)
    got = timeline(peer.received, around=(t_cut - 1.0, t_cut + 1.0))

    def loudest(t0: float, t1: float) -> float:
        """The loudest 20 ms (RMS) played between t0 and t1."""
        pcm = got.audio[got.at(t0) : got.at(t1)].astype(np.float64)
        frames = pcm[: len(pcm) // 960 * 960].reshape(-1, 960)
        return float(np.sqrt(np.mean(frames**2, axis=1)).max())

    assert loudest(t_cut - 0.3, t_cut) > 0.05, "the speech was not playing when interrupted"
    # silent (under -40 dBFS, 30 dB under the speech) from 200 ms after the interrupt
    # until the speak (1 s later)
    assert loudest(t_cut + 0.2, t_cut + 1.0) < 0.01
    avatar = engines.avatar("default")
    opening = openings(peer.received, avatar.rig.mouth_box(), avatar.renderer.render(NEUTRAL))
    talking = opening[(got.video_t >= t_cut - 1.0) & (got.video_t < t_cut)]
    closed = opening[(got.video_t >= t_cut + 0.2) & (got.video_t < t_cut + 1.0)]
    assert closed.max() < 0.15 * float(np.percentile(talking, 95)), (closed.max(), talking.max())
    # the speak line came back in the service's voice
    start = got.at(t_cut + 1.0)
    said = got.audio[start:]
    a, b = loud_span(said, RATE)
    heard = engines.stt.transcribe(resample(said[max(0, a - 4800) : b + 4800], RATE, 16_000))
    assert jiwer.wer(_norm("Sure, go ahead."), _norm(heard.text)) <= 0.34, heard.text


async def test_modes_are_checked_and_tokens_open_only_their_mode(
    service_config: AppConfig, engines: Engines
) -> None:
    async with (
        custom_server(service_config, engines, api_keys=[KEY]) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        auth = {"Authorization": f"Bearer {KEY}"}
        sdp = await offer_sdp()

        async def open_session(mode: str, headers: dict[str, str]) -> tuple[int, Any]:
            body = {"sdp": sdp, "type": "offer", "mode": mode}
            resp = await http.post(f"{url}/v1/sessions", json=body, headers=headers)
            return resp.status, await resp.json()

        async def mint(**scope: Any) -> dict[str, str]:
            resp = await http.post(f"{url}/v1/tokens", json=scope, headers=auth)
            body = await resp.json()
            assert resp.status == 201, body
            return {"Authorization": f"Bearer {body['token']}"}

        status, body = await open_session("karaoke", auth)
        assert status == 400 and body["error"]["code"] == "invalid_request"
        assert "mode" in body["error"]["message"]
        resp = await http.post(f"{url}/v1/tokens", json={"mode": "karaoke"}, headers=auth)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_request"
        # a token opens only the mode it was minted for (none: conversation)
        status, body = await open_session("echo", await mint())
        assert status == 403 and body["error"]["code"] == "scope_mismatch"
        status, body = await open_session("conversation", await mint(mode="echo"))
        assert status == 403 and body["error"]["code"] == "scope_mismatch"
        status, body = await open_session("echo", await mint(mode="echo"))
        assert status == 201, body
        await http.delete(f"{url}/v1/sessions/{body['session_id']}", headers=auth)
        spec = await (await http.get(f"{url}/openapi.json", headers=auth)).json()
        mode = spec["components"]["schemas"]["SessionOffer"]["properties"]["mode"]
        assert set(mode["enum"]) == {"conversation", "echo"}
