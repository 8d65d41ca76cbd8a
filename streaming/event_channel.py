"""The session's ``events`` data channel: events out (queued until it opens) and the
client's messages in (parsed, with a flood guard)."""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

from aiortc import RTCDataChannel

from streaming.events import (
    AnyClientMessage,
    ClientMessageError,
    error_event,
    parse_client_message,
)

log = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 256
FLOOD_MESSAGES_PER_S = 50


class ClientFloodError(Exception):
    """The client sends messages faster than :data:`FLOOD_MESSAGES_PER_S`."""


class EventChannel:
    """Events to the client over the data channel, and the client's messages."""

    def __init__(self, label: str = "") -> None:
        self._label = label
        self._channel: RTCDataChannel | None = None
        self._pending: deque[str] = deque(maxlen=MAX_PENDING_EVENTS)
        self._window_start = float("-inf")
        self._count = 0

    def attach(self, channel: RTCDataChannel) -> None:
        """Use ``channel`` (sending what was queued once it is open)."""
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def emit(self, event: dict[str, Any]) -> None:
        """Send an event to the client (queued until the data channel opens)."""
        text = json.dumps(event)
        ch = self._channel
        if ch is not None and ch.readyState == "open":
            try:
                ch.send(text)
            except Exception as exc:  # noqa: BLE001 - a dying transport must not kill the turn
                log.debug("%s: event not sent: %s", self._label, exc)
        else:
            self._pending.append(text)

    def receive(self, raw: str | bytes, now: float) -> AnyClientMessage | None:
        """A client message at ``now`` (monotonic seconds); None when it was invalid (the
        client is told why). Raises ClientFloodError when the client floods."""
        if now - self._window_start > 1.0:
            self._window_start, self._count = now, 0
        self._count += 1
        if self._count > FLOOD_MESSAGES_PER_S:
            raise ClientFloodError(f"over {FLOOD_MESSAGES_PER_S} messages a second")
        try:
            return parse_client_message(raw)
        except ClientMessageError as exc:
            self.emit(error_event("bad_message", str(exc)))
            return None

    def _flush(self) -> None:
        ch = self._channel
        while ch is not None and ch.readyState == "open" and self._pending:
            ch.send(self._pending.popleft())
