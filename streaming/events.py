"""Messages on the ``events`` data channel, both directions.

Server → client: ``state``, ``user_transcript``, ``assistant_text`` (streamed pieces,
then one with ``final: true``), ``turn_metrics``, ``error``.
Client → server: ``text`` (talk by typing) and ``interrupt``; in echo sessions
(streaming/echo.py) ``speak`` (say this text with the service's voice) and ``clear``
(the same as ``interrupt``), and the server also sends ``speak_done``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_CLIENT_MESSAGE_BYTES = 16 * 1024
MAX_TEXT_CHARS = 2000


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextMessage(_Msg):
    """The user typed something instead of speaking."""

    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class InterruptMessage(_Msg):
    """The user asks the avatar to stop talking."""

    type: Literal["interrupt"]


class ClearMessage(_Msg):
    """Drop the speech queued for playing (echo sessions; elsewhere an interrupt)."""

    type: Literal["clear"]


class SpeakMessage(_Msg):
    """Speak this text with the service's voice (echo sessions)."""

    type: Literal["speak"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


AnyClientMessage = TextMessage | InterruptMessage | ClearMessage | SpeakMessage
ClientMessage = Annotated[AnyClientMessage, Field(discriminator="type")]
_client_adapter: TypeAdapter[AnyClientMessage] = TypeAdapter(ClientMessage)


class ClientMessageError(ValueError):
    """A data channel message from the client that we cannot accept."""


def parse_client_message(raw: str | bytes) -> AnyClientMessage:
    """Validate one client message; raises ClientMessageError with a short reason."""
    if len(raw) > MAX_CLIENT_MESSAGE_BYTES:
        raise ClientMessageError(f"message over {MAX_CLIENT_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientMessageError("message is not JSON") from exc
    try:
        msg = _client_adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ClientMessageError(f"invalid message: {loc}: {first['msg']}") from exc
    if isinstance(msg, TextMessage | SpeakMessage) and not msg.text.strip():
        raise ClientMessageError("invalid message: text: empty")
    return msg


def state_event(state: str) -> dict[str, Any]:
    """The avatar's conversation state changed."""
    return {"type": "state", "state": state}


def user_transcript_event(text: str, turn_id: int, **extra: Any) -> dict[str, Any]:
    """What the user said (or typed)."""
    return {"type": "user_transcript", "text": text, "turn_id": turn_id, **extra}


def assistant_text_event(
    text: str, turn_id: int, *, final: bool, interrupted: bool = False
) -> dict[str, Any]:
    """A streamed piece of the reply, or (final) the whole reply as spoken."""
    msg: dict[str, Any] = {"type": "assistant_text", "text": text, "turn_id": turn_id}
    msg["final"] = final
    if final:
        msg["interrupted"] = interrupted
    return msg


def turn_metrics_event(turn_id: int, metrics: dict[str, float]) -> dict[str, Any]:
    """Per-stage milliseconds of one turn."""
    return {
        "type": "turn_metrics",
        "turn_id": turn_id,
        **{k: round(v, 1) for k, v in metrics.items()},
    }


def error_event(code: str, message: str) -> dict[str, Any]:
    """Something went wrong that the client should know about."""
    return {"type": "error", "code": code, "message": message}
