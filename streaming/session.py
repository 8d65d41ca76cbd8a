"""One call: a peer connection, its media clock, tracks, conversation and lifecycle.

A session is a conversation (the avatar listens, thinks and answers) or, with
``"mode": "echo"``, the face of another voice agent: the caller's audio is the avatar's
speech (streaming/echo.py; no STT, LLM or VAD is made for it).

A session ends when the peer hangs up (DELETE, a closed connection or ended tracks),
when ICE fails, when the peer sends no audio for ``idle_timeout_s``, or after
``max_session_s``. Ending cancels and awaits every task it started and closes the
peer connection; nothing keeps running for a ghost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal

import av
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatar.motion import WorldModel
from avatar.render.reuse import frame_reuse
from avatar.state import AvatarState
from streaming.audio_io import InboundAudioConverter, silence
from streaming.clock import MediaClock
from streaming.conversation import Conversation, ConversationOptions
from streaming.echo import Echo
from streaming.engines import AvatarAssets, Engines
from streaming.event_channel import ClientFloodError, EventChannel
from streaming.events import SpeakMessage, TextMessage, error_event
from streaming.inbound_audio import GapFiller, use_arrival_audio_buffer
from streaming.listener import Listener
from streaming.playout import AudioPlayout
from streaming.responder import Responder
from streaming.session_ids import new_session_id
from streaming.speaker import Speaker
from streaming.tracks import AvatarAudioTrack, AvatarVideoTrack
from streaming.turn_end import WordEndPolicy
from streaming.turn_record import TurnHook, TurnRecord

log = logging.getLogger(__name__)

SessionMode = Literal["conversation", "echo"]


@dataclass(frozen=True)
class SessionRequest:
    """What the client asked for when it opened the session."""

    avatar: str = "default"
    voice: str | None = None
    system_prompt: str | None = None
    language: str | None = None
    mode: SessionMode = "conversation"


class Session:
    """A live WebRTC conversation with the avatar."""

    def __init__(
        self,
        engines: Engines,
        avatar: AvatarAssets,
        request: SessionRequest,
        *,
        render_executor: Executor | None = None,
        on_closed: Callable[[Session], None] | None = None,
        on_turn: Callable[[Session, TurnRecord], Awaitable[None] | None] | None = None,
        rtc_config: RTCConfiguration | None = None,
        id_prefix: str = "",
    ) -> None:
        cfg = engines.config
        self.id = new_session_id(id_prefix)
        self.created = time.time()
        self.request = request
        self.avatar = avatar
        self._engines, self._on_closed, self._on_turn = engines, on_closed, on_turn
        self.clock = MediaClock(sample_rate=cfg.server.audio_sample_rate, fps=cfg.render.fps)
        self.playout = AudioPlayout(self.clock.sample_rate)
        self.world = WorldModel(cfg.avatar, fps=cfg.render.fps, seed=cfg.avatar.seed)
        self.last_state: AvatarState | None = None
        # ICE servers (STUN/TURN, relay-only) from streaming/turn.py; none: host candidates.
        self.pc = RTCPeerConnection(rtc_config or RTCConfiguration(iceServers=[]))
        self.audio_out = AvatarAudioTrack(self.clock, self.playout)
        self.video_out = AvatarVideoTrack(
            self.clock,
            self.world,
            avatar.renderer,
            render_executor,
            on_state=self._remember_state,
            reuse=frame_reuse(avatar.renderer, cfg.render.reuse_below_px),
        )
        # emit() may run from Conversation.__init__ (its first state event): set it first.
        self.events = EventChannel(f"session {self.id}")
        self.emit = self.events.emit
        self.mode: SessionMode = request.mode
        self.part: Conversation | Echo = (
            build_echo(engines, self.clock, self.playout, self.world, self.emit)
            if request.mode == "echo"
            else build_conversation(
                engines,
                request,
                self.clock,
                self.playout,
                self.world,
                self.emit,
                self._turn_done,
                key=self.id,
            )
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._last_inbound = time.monotonic()
        self.close_reason = ""
        self._wire()

    @property
    def conversation(self) -> Conversation:
        """The conversation of a conversation session (AttributeError in echo mode)."""
        if not isinstance(self.part, Conversation):
            raise AttributeError(f"session {self.id} is an echo session: it has no conversation")
        return self.part

    def _wire(self) -> None:
        self.pc.addTrack(self.audio_out)
        self.pc.addTrack(self.video_out)

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self._read_audio(track), "inbound-audio")

        @self.pc.on("datachannel")
        def _on_channel(channel: RTCDataChannel) -> None:
            if channel.label != "events":
                return
            channel.on("message", self._on_client_message)
            self.events.attach(channel)

        @self.pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = self.pc.connectionState
            log.info("session %s: connection %s", self.id, state)
            if state in ("failed", "closed"):
                self.close_soon(f"connection {state}")

    async def accept(self, offer_sdp: str) -> str:
        """Apply the client's offer and return our answer SDP."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        use_arrival_audio_buffer(self.pc)  # the caller's audio as it arrives, no 80 ms hold
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        self._spawn(self._watchdog(), "watchdog")
        return self.pc.localDescription.sdp

    # --- media and messages ------------------------------------------------------

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        converter = InboundAudioConverter()
        # echo mode plays the caller's audio: at the outbound rate too
        full = (
            InboundAudioConverter(self.clock.sample_rate) if isinstance(self.part, Echo) else None
        )
        gaps = GapFiller()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.close_soon("peer audio ended")
                return
            self._last_inbound = time.monotonic()
            assert isinstance(frame, av.AudioFrame)
            missing = gaps.missing_s(frame)  # lost packets: their time, as silence
            if isinstance(self.part, Echo):
                assert full is not None
                if missing:
                    self.part.feed_audio(silence(missing, full.rate), silence(missing))
                self.part.feed_audio(full.convert(frame), converter.convert(frame))
            else:
                if missing:
                    self.part.feed_audio(silence(missing))
                self.part.feed_audio(converter.convert(frame))

    def _on_client_message(self, raw: str | bytes) -> None:
        self._last_inbound = now = time.monotonic()  # a typing-only user is not idle
        try:
            msg = self.events.receive(raw, now)
        except ClientFloodError:
            log.warning("session %s: data channel flood, closing", self.id)
            self.close_soon("data channel flood")
            return
        if msg is None:
            return
        part = self.part
        if isinstance(part, Echo):
            if isinstance(msg, SpeakMessage):
                part.speak(msg.text.strip())
            elif isinstance(msg, TextMessage):
                self.emit(error_event("unsupported", "an echo session speaks; send 'speak'"))
            else:  # interrupt or clear
                part.clear()
        elif isinstance(msg, TextMessage):
            part.submit_text(msg.text.strip())
        elif isinstance(msg, SpeakMessage):
            self.emit(error_event("unsupported", "'speak' needs an echo session"))
        else:
            part.interrupt()

    def _remember_state(self, state: AvatarState) -> None:
        self.last_state = state

    def _turn_done(self, record: TurnRecord) -> Awaitable[None] | None:
        if self._on_turn is not None:
            return self._on_turn(self, record)
        return None

    async def goodbye(self, text: str, timeout_s: float) -> None:
        """Say ``text`` (within ``timeout_s``), then hang up: the server is going away.

        An echo session hangs up without a word: its voice is the caller's agent's."""
        if self._closing is None and isinstance(self.part, Conversation):
            try:
                await asyncio.wait_for(self.conversation.say(text), timeout_s)
            except asyncio.TimeoutError:
                log.info("session %s: goodbye cut short after %.1f s", self.id, timeout_s)
            except Exception as exc:  # noqa: BLE001 - a failed goodbye must not stop the drain
                log.warning("session %s: goodbye failed: %s", self.id, exc)
        await self.close("server draining")

    # --- lifecycle ----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"session-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watchdog(self) -> None:
        cfg = self._engines.config.server
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if now - self._last_inbound > cfg.idle_timeout_s:
                self.close_soon("idle timeout")
                return
            if time.time() - self.created > cfg.max_session_s:
                self.close_soon("maximum session length")
                return

    @property
    def closed(self) -> bool:
        """Whether teardown finished."""
        return self._closed.is_set()

    def close_soon(self, reason: str, *, notify: bool = True) -> None:
        """Start teardown without waiting for it (safe from callbacks).

        ``notify``: send the client a ``closing`` event first, so it knows the end is
        planned (idle, time limit, shutdown) and does not reconnect. A hang-up the
        client asked for itself needs no notice.
        """
        if self._closing is None:
            self.close_reason = reason
            self._closing = asyncio.get_running_loop().create_task(
                self._close(notify), name=f"session-{self.id}-close"
            )

    async def close(self, reason: str = "closed", *, notify: bool = True) -> None:
        """Tear the session down and wait until everything of it has stopped."""
        self.close_soon(reason, notify=notify)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _close(self, notify: bool) -> None:
        log.info("session %s: closing (%s)", self.id, self.close_reason)
        if notify:
            self.emit({"type": "closing", "reason": self.close_reason})
        await self.part.close()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.audio_out.stop()
        self.video_out.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self._closed.set()
        if self._on_closed is not None:
            self._on_closed(self)

    def describe(self) -> dict[str, Any]:
        """A JSON summary for ``GET /v1/sessions``."""
        return {
            "session_id": self.id,
            "created": self.created,
            "avatar": self.avatar.name,
            "mode": self.mode,
            "voice": self.request.voice,
            "state": self.part.state,
            "connection": self.pc.connectionState,
            "turns": len(self.part.turns) if isinstance(self.part, Conversation) else 0,
            **({"echo": self.part.describe()} if isinstance(self.part, Echo) else {}),
            "video_frames": self.video_out.stats.frames,
            "audio_frames": self.audio_out.stats.frames,
            "dropped_frames": self.video_out.stats.dropped_frames,
        }


def build_conversation(
    engines: Engines,
    request: SessionRequest,
    clock: MediaClock,
    playout: AudioPlayout,
    world: WorldModel,
    emit: Callable[[dict[str, Any]], None],
    on_turn_complete: TurnHook,
    *,
    key: str | None = None,
) -> Conversation:
    """A session's conversation: its parts made from the shared engines and the config
    (``key``: the session's name for the LLM, which keeps its evaluated prompt)."""
    cfg = engines.config
    listener = Listener(
        engines.new_vad(),
        engines.stt,
        max_utterance_s=cfg.stt.max_utterance_s,
        policy=WordEndPolicy(cfg.end_of_turn),
        prompt_chars=cfg.stt.prompt_chars,
        partial_every_s=cfg.end_of_turn.partial_every_ms / 1000,
        spare_cpu=engines.headroom.spare(cfg.end_of_turn.partial_min_idle),
        now=clock.now,
    )
    responder = Responder(
        engines.llm,
        engines.voice(request.voice) if request.voice else engines.tts,
        first_token_timeout_s=cfg.llm.first_token_timeout_s,
        fallback_reply=cfg.llm.fallback_reply,
        now=clock.now,
        key=key,
    )
    options = ConversationOptions(
        system_prompt=cfg.llm.persona(request.system_prompt),
        examples=cfg.llm.example_messages(),
        language=request.language,
    )
    return Conversation(
        listener,
        responder,
        Speaker(clock, playout, world),
        world,
        emit,
        options,
        on_turn_complete=on_turn_complete,
        now=clock.now,
    )


def build_echo(
    engines: Engines,
    clock: MediaClock,
    playout: AudioPlayout,
    world: WorldModel,
    emit: Callable[[dict[str, Any]], None],
) -> Echo:
    """An echo session's speech part: the speaker and the voice (for ``speak``), no
    STT, LLM or VAD."""
    speaker = Speaker(clock, playout, world)
    return Echo(
        speaker, playout, world, clock, engines.tts, emit, engines.config.echo, now=clock.now
    )
