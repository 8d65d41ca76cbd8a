"""JavaScript the browser tests evaluate in pages that hold the widget."""

from __future__ import annotations

from typing import Any

MEDIA_FLOWING_JS = """async () => {
  const pc = document.querySelector("gwm-avatar").peerConnection;
  for (let i = 0; i < 100; i++) {  // inbound stats appear with the first packets
    const kinds = new Set();
    (await pc.getStats()).forEach((s) => {
      const got = s.kind === "video" ? s.framesDecoded > 0 : s.packetsReceived > 0;
      if (s.type === "inbound-rtp" && got) kinds.add(s.kind);
    });
    if (kinds.has("video") && kinds.has("audio")) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}"""
"""Resolves true once the first <gwm-avatar> on the page decodes video and receives audio
(polls getStats for up to 10 s)."""


def call_from_demo_page(page: Any) -> str:
    """On the demo page: log the widget's events in ``hostLog``, mute, press the call
    button, and wait for the call; the session id (fails on an ``error`` event)."""
    page.evaluate(
        """() => {
        window.hostLog = [];
        const el = document.getElementById("avatar-widget");
        for (const t of ["connected", "error", "ended"])
          el.addEventListener(t, (e) => hostLog.push({ type: t, detail: e.detail }));
        el.setAttribute("muted", "");
      }"""
    )
    page.locator("#avatar-widget").get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function(
        "() => hostLog.some((e) => e.type === 'connected' || e.type === 'error')", timeout=30_000
    )
    errors = page.evaluate("() => hostLog.filter((e) => e.type === 'error')")
    assert not errors, errors
    return str(page.evaluate("() => hostLog.find((e) => e.type === 'connected').detail.sessionId"))
