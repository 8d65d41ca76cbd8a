"""The conversation speaks and captions the shaped reply, not the LLM's raw markdown
(fake LLM and TTS: fast, no models)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np

from avatar.config import AppConfig
from avatar.motion import WorldModel
from models.assets import AssetResolver
from models.types import ChatMessage, GenerationStats, Speech
from streaming.clock import MediaClock
from streaming.conversation import Conversation, ConversationOptions
from streaming.engines import Engines
from streaming.playout import AudioPlayout

RAW = (
    "Here are **three** tips:\n1. Sleep 7-9 hrs 😴\n2. Skip coffee after 2pm\n3. See https://x.org"
)
SPOKEN = "Here are three tips: Sleep seven to nine hours. Skip coffee after two p.m. See."


class FakeLLM:
    """Streams a fixed reply in small pieces, as a tokenizer would."""

    def __init__(self) -> None:
        self.prompts: list[list[ChatMessage]] = []

    def load(self) -> None:
        return None

    async def stream(
        self, messages: list[ChatMessage], *, stats: GenerationStats | None = None
    ) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        for i in range(0, len(RAW), 3):
            await asyncio.sleep(0)
            yield RAW[i : i + 3]

    async def aclose(self) -> None:
        return None


class FakeTTS:
    """Records what it is asked to say; 20 ms of silence per sentence."""

    sample_rate = 16_000

    def __init__(self) -> None:
        self.said: list[str] = []

    def synthesize(self, text: str) -> Iterator[Speech]:
        self.said.append(text)
        yield Speech(pcm=np.zeros(320, np.float32), sample_rate=16_000, text=text, phonemes=None)

    async def stream(self, text: str) -> AsyncIterator[Speech]:
        for speech in self.synthesize(text):
            yield speech


async def test_the_avatar_says_and_captions_the_shaped_reply() -> None:
    config = AppConfig.model_validate({"vad": {"backend": "webrtc"}})
    tts = FakeTTS()
    llm = FakeLLM()
    engines = Engines(config, AssetResolver(config.assets), None, llm, tts, None)  # type: ignore[arg-type]
    clock = MediaClock()
    clock.start()
    events: list[dict[str, Any]] = []
    conv = Conversation(
        engines,
        clock,
        AudioPlayout(clock.sample_rate),
        WorldModel(config.avatar, clock.fps),
        events.append,
        ConversationOptions(
            system_prompt=config.llm.persona(), examples=config.llm.example_messages()
        ),
    )
    conv.submit_text("Give me three tips for sleeping better.")
    for _ in range(200):
        await asyncio.sleep(0.02)
        if any(e["type"] == "assistant_text" and e["final"] for e in events):
            break
    await conv.close()
    replies = [e for e in events if e["type"] == "assistant_text"]
    final = [e for e in replies if e["final"]]
    assert final and final[0]["text"] == SPOKEN
    # The caption pieces add up to the spoken text, and so does what the voice said.
    assert "".join(e["text"] for e in replies if not e["final"]) == SPOKEN
    assert " ".join(tts.said) == SPOKEN
    assert conv.turns[0].reply_text == RAW
    assert conv.history[-1] == ChatMessage("assistant", SPOKEN)
    # The persona, then the few-shot examples, then the user; the examples are not history.
    prompt = llm.prompts[0]
    assert prompt[0].role == "system" and "You are Nova," in prompt[0].content
    assert prompt[1:-1] == config.llm.example_messages() and len(prompt) > 3
    assert prompt[-1] == ChatMessage("user", "Give me three tips for sleeping better.")
    assert len(conv.history) == 2
