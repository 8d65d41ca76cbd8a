"""The avatar speaks and captions the shaped reply, not the LLM's raw markdown (fake
LLM and TTS on the turn pipeline's parts: fast, no models)."""

from __future__ import annotations

from models.types import ChatMessage
from streaming.config import AppConfig
from streaming.conversation import ConversationOptions
from tests.streaming.fakes import Rig, answered

RAW = (
    "Here are **three** tips:\n1. Sleep 7-9 hrs 😴\n2. Skip coffee after 2pm\n3. See https://x.org"
)
SPOKEN = "Here are three tips: Sleep seven to nine hours. Skip coffee after two p.m. See."


async def test_the_avatar_says_and_captions_the_shaped_reply() -> None:
    config = AppConfig.model_validate({})
    options = ConversationOptions(
        system_prompt=config.llm.persona(), examples=config.llm.example_messages()
    )
    rig = Rig(options=options)
    rig.llm.pieces = [RAW[i : i + 3] for i in range(0, len(RAW), 3)]  # as a tokenizer would
    rig.conversation.submit_text("Give me three tips for sleeping better.")
    await answered(rig, 1)
    replies = rig.of("assistant_text")
    final = [e for e in replies if e["final"]]
    assert final and final[0]["text"] == SPOKEN
    # The caption pieces add up to the spoken text, and so does what the voice said.
    assert "".join(e["text"] for e in replies if not e["final"]) == SPOKEN
    assert " ".join(rig.tts.texts) == SPOKEN
    assert rig.conversation.turns[0].reply_text == RAW
    assert rig.conversation.history[-1] == ChatMessage("assistant", SPOKEN)
    # The persona, then the few-shot examples, then the user; the examples are not history.
    prompt = rig.llm.requests[0]
    assert prompt[0].role == "system" and f"You are {config.llm.persona_name}," in prompt[0].content
    assert prompt[1:-1] == config.llm.example_messages() and len(prompt) > 3
    assert prompt[-1] == ChatMessage("user", "Give me three tips for sleeping better.")
    assert len(rig.conversation.history) == 2
    await rig.conversation.close()


async def test_a_goodbye_is_shaped_too() -> None:
    rig = Rig()
    chunks = rig.responder.speak("Bye! See **you** at 5pm 👋")
    async for _ in chunks:
        pass
    assert rig.tts.texts == ["Bye! See you at five p.m."]


def test_warming_names_the_conversation_and_needs_a_key() -> None:
    rig = Rig(key="session-7")
    rig.llm.warmed.clear()  # the conversation's own warm-up at its start
    messages = [ChatMessage("user", "What is the")]
    rig.responder.warm(messages)
    assert rig.llm.warmed == [(messages, "session-7")]
    rig.responder.key = None
    rig.responder.warm(messages)
    assert len(rig.llm.warmed) == 1
