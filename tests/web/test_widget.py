"""The <gwm-avatar> widget and the demo page in headless Chromium, against the real service.

The host pages live on another origin than the service (two 127.0.0.1 ports), as they
would on a customer's site. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import jiwer
import numpy as np
import pytest

from avatar.identity.detect import detect_faces
from tests.web.conftest import (
    HOST_TOKEN,
    QUESTION,
    HostSite,
    PageLog,
    RunningApp,
    free_port,
    host_page,
)
from tests.web.page_scripts import MEDIA_FLOWING_JS

pytestmark = pytest.mark.timeout(180)
log = logging.getLogger(__name__)

OpenPage = Callable[..., tuple[Any, PageLog]]
NETWORK_NOISE = ("Failed to load resource", "net::ERR_", "CORS policy")

STATS_JS = """async (ms) => {
  const pc = document.querySelector("gwm-avatar").peerConnection;
  const snap = async () => {
    const out = {};
    (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") out[s.kind] = s; });
    return out;
  };
  const a = await snap();
  await new Promise((r) => setTimeout(r, ms));
  const b = await snap();
  const dt = (b.video.timestamp - a.video.timestamp) / 1000;
  return {
    decoded: b.video.framesDecoded - a.video.framesDecoded, seconds: dt,
    fps: (b.video.framesDecoded - a.video.framesDecoded) / dt,
    width: b.video.frameWidth, height: b.video.frameHeight,
    audioPackets: b.audio.packetsReceived - a.audio.packetsReceived,
  };
}"""

AUDIO_JS = """async ([base, waitMs]) => {
  // The received audio's energy (getStats); waits up to waitMs for it to pass `base`
  // (the reply's sound reaches the speaker a little after its text events).
  const el = document.querySelector("gwm-avatar");
  const video = el.shadowRoot.querySelector("video");
  const read = async () => {
    const out = { energy: 0, samples: 0, muted: video.muted, paused: video.paused };
    (await el.peerConnection.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.energy = s.totalAudioEnergy || 0;
        out.samples = s.totalSamplesReceived || 0;
      }
    });
    return out;
  };
  const until = performance.now() + waitMs;
  let now = await read();
  while (now.energy <= base && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    now = await read();
  }
  return now;
}"""

FRAMES_JS = """async (gapMs) => {
  const el = document.querySelector("gwm-avatar");
  const video = el.shadowRoot.querySelector("video");
  const grab = () => {
    const c = document.createElement("canvas");
    c.width = video.videoWidth; c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    return c.toDataURL("image/png");
  };
  const first = grab();
  await new Promise((r) => setTimeout(r, gapMs));
  return [first, grab()];
}"""


def _has(kind: str, cond: str = "true") -> str:
    return f"() => hostLog.some((e) => e.type === {kind!r} && ({cond}))"


def _events(page: Any, kind: str, widget: str | None = None) -> list[dict[str, Any]]:
    found = page.evaluate(f"() => hostLog.filter((e) => e.type === {kind!r})")
    return [e for e in found if widget is None or e["id"] == widget]


def _png(data_url: str) -> np.ndarray:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "the video frame did not decode"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).strip()


def _sessions(service: RunningApp) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{service.url}/v1/sessions", timeout=10) as resp:
        return list(json.load(resp)["sessions"])


def _offers_upload(service: RunningApp) -> bool:
    try:
        with urllib.request.urlopen(f"{service.url}/openapi.json", timeout=10) as resp:
            spec = json.load(resp)
    except urllib.error.HTTPError:
        return False
    return "post" in spec.get("paths", {}).get("/v1/avatars", {})


def _wait_no_sessions(service: RunningApp, timeout: float = 5.0) -> None:
    """Hang-up DELETEs without waiting: poll until the service has no session left."""
    deadline = time.monotonic() + timeout
    while _sessions(service):
        assert time.monotonic() < deadline, _sessions(service)
        time.sleep(0.1)


def _widget_src(service: RunningApp) -> str:
    return f"{service.url}/widget.js"


def test_voice_call_from_another_site(
    service: RunningApp, host_site: HostSite, open_page: OpenPage, artifacts: Path
) -> None:
    # The one-line loader: no `server` attribute, it comes from the script's origin.
    html = host_page(
        '<gwm-avatar id="w" audio-processing="off"></gwm-avatar>',
        widget_src=_widget_src(service),
    )
    page, console = open_page(host_site.page("voice", html))
    w = page.locator("#w")
    w.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function(_has("connected"), timeout=30_000)
    assert page.evaluate("() => document.querySelector('#w').peerConnection.connectionState") == (
        "connected"
    )

    # Video at ~25 fps and audio, as the page decodes them (getStats over 3 s).
    assert page.evaluate(MEDIA_FLOWING_JS), "no media arrived"
    sid = page.evaluate("() => document.querySelector('#w').sessionId")
    track = service.state.sessions[sid].video_out.stats
    sent0, dropped0 = track.frames, track.dropped_frames
    stats = page.evaluate(STATS_JS, 3000)
    sent, dropped = track.frames - sent0, track.dropped_frames - dropped0
    assert stats["audioPackets"] > 100, stats  # 50 packets/s of 20 ms
    assert (stats["width"], stats["height"]) == (512, 512), stats
    assert stats["decoded"] >= 0.9 * sent - 3, (stats, sent)  # the page keeps up
    if dropped <= 0.1 * 25 * stats["seconds"]:
        assert 20 <= stats["fps"] <= 30, (stats, dropped)
    else:  # other processes starved the server's renderer: its frame rate is not ours
        log.warning("server dropped %d frames (CPU starved); page fps %.1f", dropped, stats["fps"])
        assert stats["fps"] >= 5, stats

    # The fake microphone asks the question; the avatar hears it and answers.
    page.wait_for_function(_has("transcript"), timeout=40_000)
    # Mute now: the fake microphone loops and would ask again over a slow reply (barge-in).
    mute = w.get_by_role("button", name="Mute the microphone")
    mute.click()
    assert mute.get_attribute("aria-pressed") == "true"
    page.wait_for_function(_has("state", "e.detail.state === 'speaking'"), timeout=60_000)
    audio_before = page.evaluate(AUDIO_JS, [-1, 0])
    a, b = (_png(u) for u in page.evaluate(FRAMES_JS, 240))
    page.screenshot(path=str(artifacts / "voice-call.png"))
    page.wait_for_function(_has("reply", "e.detail.final"), timeout=90_000)
    audio_after = page.evaluate(AUDIO_JS, [audio_before["energy"] + 0.01, 10_000])
    captions = w.locator(".captions").inner_text()
    w.get_by_role("button", name="Hang up").click()
    page.wait_for_function(_has("ended"), timeout=10_000)

    heard = _events(page, "transcript")[0]["detail"]["text"]
    assert jiwer.wer(_norm(QUESTION), _norm(heard)) <= 0.25, heard
    reply = next(e["detail"] for e in _events(page, "reply") if e["detail"]["final"])
    assert reply["text"].strip()
    assert not reply["interrupted"]
    assert any(not e["detail"]["final"] for e in _events(page, "reply")), "no streamed pieces"
    assert heard in captions
    assert reply["text"] in captions
    states = [e["detail"]["state"] for e in _events(page, "state")]
    assert "thinking" in states and "speaking" in states, states
    metrics = _events(page, "metrics")
    assert metrics and metrics[0]["detail"]["voice_to_voice_ms"] > 0

    # The reply was heard: audio energy rose while the avatar spoke.
    energy = audio_after["energy"] - audio_before["energy"]
    assert energy > 0.01, (audio_before, audio_after)
    # The video shows a face, and it moves.
    assert a.std() > 20, "the video frame is flat"
    faces = detect_faces(a)
    assert faces, "no face in the video frame"
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
    log.info(
        "voice call: %.1f fps, %d audio packets in 3 s, reply energy %.3f, frame diff %.2f, "
        "metrics %s",
        stats["fps"],
        stats["audioPackets"],
        energy,
        diff,
        metrics[0]["detail"],
    )
    assert diff > 0.2, f"frames 240 ms apart are the same (mean diff {diff:.3f})"
    cv2.imwrite(str(artifacts / "voice-frame.png"), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))

    # Hanging up ended the session on the server; nothing went wrong in the page.
    _wait_no_sessions(service)
    assert not console.unexpected(), console


def test_demo_page_typed_message_gets_a_spoken_reply_and_reconnects(
    service: RunningApp, open_page: OpenPage, artifacts: Path
) -> None:
    page, console = open_page(f"{service.url}/")
    page.evaluate(
        """() => {
        window.hostLog = [];
        const el = document.getElementById("avatar-widget");
        for (const t of ["connected", "transcript", "reply", "metrics", "error", "ended"])
          el.addEventListener(t, (e) => hostLog.push({ type: t, detail: e.detail }));
        el.setAttribute("muted", "");  // the fake microphone must not talk over the text
      }"""
    )
    # The picker lists the service's avatars ("default" first); the upload control shows
    # exactly when the service offers POST /v1/avatars.
    page.wait_for_function("() => document.querySelector('#avatar-select option')")
    assert page.locator("#avatar-select option").first.inner_text() == "default"
    page.wait_for_timeout(300)
    assert page.locator("#upload").is_visible() == _offers_upload(service)

    w = page.locator("#avatar-widget")
    w.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function(_has("connected"), timeout=30_000)
    assert w.get_by_role("button", name="Unmute the microphone").is_visible()
    first_id = page.evaluate("() => document.getElementById('avatar-widget').sessionId")

    box = w.get_by_role("textbox", name="Type a message to the avatar")
    box.fill("Please say hello to me.")
    box.press("Enter")
    page.wait_for_function(_has("transcript"), timeout=10_000)
    audio_before = page.evaluate(AUDIO_JS, [-1, 0])
    page.wait_for_function(_has("reply", "e.detail.final"), timeout=90_000)
    page.wait_for_function(_has("metrics"), timeout=10_000)
    page.wait_for_timeout(400)
    audio_after = page.evaluate(AUDIO_JS, [audio_before["energy"] + 0.01, 10_000])
    assert _events(page, "transcript")[0]["detail"]["text"] == "Please say hello to me."
    reply = next(e["detail"] for e in _events(page, "reply") if e["detail"]["final"])
    assert reply["text"].strip()
    assert reply["text"] in w.locator(".captions").inner_text()
    energy = audio_after["energy"] - audio_before["energy"]
    assert energy > 0.01, (audio_before, audio_after)
    latency = page.locator("#latency tbody tr").first.inner_text()
    assert re.search(r"\d+ ms", latency), latency
    page.screenshot(path=str(artifacts / "demo-page.png"), full_page=True)

    # The server drops the call: the widget reconnects once by itself.
    req = urllib.request.Request(f"{service.url}/v1/sessions/{first_id}", method="DELETE")
    urllib.request.urlopen(req, timeout=10).close()
    page.wait_for_function(_has("connected", "e.detail.reconnected"), timeout=30_000)
    second_id = page.evaluate("() => document.getElementById('avatar-widget').sessionId")
    assert second_id and second_id != first_id
    assert [s["session_id"] for s in _sessions(service)] == [second_id]
    w.get_by_role("button", name="Hang up").click()
    page.wait_for_function(_has("ended"), timeout=10_000)
    _wait_no_sessions(service)
    assert not console.unexpected(), console


def test_microphone_denied_still_lets_you_type(
    service: RunningApp, host_site: HostSite, open_page: OpenPage
) -> None:
    deny = """navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException("Permission denied", "NotAllowedError"));"""
    html = host_page(
        f'<gwm-avatar id="w" server="{service.url}"></gwm-avatar>',
        widget_src=_widget_src(service),
    )
    page, console = open_page(host_site.page("denied", html), init_script=deny)
    w = page.locator("#w")
    w.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function(_has("connected"), timeout=30_000)
    assert "Microphone access was denied" in w.locator(".msg").inner_text()
    errors = [e["detail"]["code"] for e in _events(page, "error")]
    assert errors == ["mic_denied"]
    assert w.locator(".mute").is_disabled()
    sdp = page.evaluate("() => document.querySelector('#w').peerConnection.localDescription.sdp")
    audio = sdp.split("m=audio", 1)[1].split("m=", 1)[0]
    assert "a=recvonly" in audio, "no receive-only audio m-line in the offer"
    box = w.get_by_role("textbox", name="Type a message to the avatar")
    box.fill("Hello there!")
    w.get_by_role("button", name="Send").click()
    page.wait_for_function(_has("transcript"), timeout=10_000)
    assert "Hello there!" in w.locator(".captions").inner_text()
    w.get_by_role("button", name="Hang up").click()
    page.wait_for_function(_has("ended"), timeout=10_000)
    _wait_no_sessions(service)
    assert not console.unexpected(), console


def test_server_down_or_no_token_shows_a_message_and_the_host_page_keeps_working(
    service: RunningApp, host_site: HostSite, open_page: OpenPage
) -> None:
    widgets = (
        f'<gwm-avatar id="w" muted server="http://127.0.0.1:{free_port()}"></gwm-avatar>'
        f'<gwm-avatar id="t" muted server="{service.url}" token-endpoint="/token/denied">'
        "</gwm-avatar>"
    )
    page, console = open_page(
        host_site.page("down", host_page(widgets, widget_src=_widget_src(service)))
    )
    w, t = page.locator("#w"), page.locator("#t")
    w.get_by_role("button", name="Talk to the avatar").click()
    t.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function(_has("error", "e.id === 'w'"), timeout=20_000)
    page.wait_for_function(_has("error", "e.id === 't'"), timeout=20_000)
    assert [e["detail"]["code"] for e in _events(page, "error", "w")] == ["unreachable"]
    assert "cannot be reached" in w.locator(".msg").inner_text()
    assert w.get_by_role("button", name="Try again").is_enabled()
    # The site's own token endpoint said no: the service is never called.
    assert [e["detail"]["code"] for e in _events(page, "error", "t")] == ["not_allowed"]
    assert "not allowed" in t.locator(".msg").inner_text()
    assert not _sessions(service)
    page.locator("#host-button").click()
    assert page.locator("#host-button").inner_text() == "host clicks: 1"
    assert not console.unexpected(allowed=NETWORK_NOISE), console


def test_busy_service_says_when_to_try_again(
    make_service: Callable[..., RunningApp], host_site: HostSite, open_page: OpenPage
) -> None:
    small = make_service(max_sessions=1)
    widgets = (
        f'<gwm-avatar id="a" muted server="{small.url}"></gwm-avatar>'
        f'<gwm-avatar id="b" muted server="{small.url}" token-endpoint="/token/ok"></gwm-avatar>'
    )
    page, console = open_page(
        host_site.page("busy", host_page(widgets, widget_src=_widget_src(small)))
    )
    posts: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: posts.append(r.headers) if r.method == "POST" and "/v1/" in r.url else None,
    )
    a, b = page.locator("#a"), page.locator("#b")
    a.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function("() => hostLog.some((e) => e.id === 'a' && e.type === 'connected')")
    b.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function("() => hostLog.some((e) => e.id === 'b' && e.type === 'error')")
    b_errors = page.evaluate("() => hostLog.filter((e) => e.id === 'b' && e.type === 'error')")
    assert [e["detail"]["code"] for e in b_errors] == ["busy"]
    assert "busy. Try again in 5 s" in b.locator(".msg").inner_text()
    # b got a token from the host site's backend and sent it; a has none.
    assert [p.get("authorization") for p in posts] == [None, f"Bearer {HOST_TOKEN}"]
    page.locator("#host-button").click()
    assert page.locator("#host-button").inner_text() == "host clicks: 1"
    a.get_by_role("button", name="Hang up").click()
    page.wait_for_function("() => hostLog.some((e) => e.id === 'a' && e.type === 'ended')")
    _wait_no_sessions(small)
    assert not console.unexpected(allowed=("503",)), console


def test_origin_not_on_the_allow_list_is_refused(
    make_service: Callable[..., RunningApp], host_site: HostSite, open_page: OpenPage
) -> None:
    strict = make_service(allowed_origins=["https://shop.example.com"])
    html = host_page('<gwm-avatar id="w" muted></gwm-avatar>', widget_src=_widget_src(strict))
    page, console = open_page(host_site.page("refused", html))
    w = page.locator("#w")
    w.get_by_role("button", name="Talk to the avatar").click()
    page.wait_for_function(_has("error"), timeout=20_000)
    assert [e["detail"]["code"] for e in _events(page, "error")] == ["not_allowed"]
    assert "not allowed" in w.locator(".msg").inner_text()
    assert not _sessions(strict)
    assert not console.unexpected(allowed=NETWORK_NOISE), console


HOSTILE_CSS = """<style>
  body * { display: none !important; }
  body > h1, body > #host-button { display: block !important; }
  video { width: 1px !important; height: 1px !important; }
  button { font-size: 48px !important; color: transparent !important; }
  body { font-size: 40px; line-height: 0; letter-spacing: 12px; text-transform: uppercase;
         color: transparent; }
</style>"""


def test_host_page_css_cannot_break_the_widget_on_a_phone(
    service: RunningApp, host_site: HostSite, open_page: OpenPage, artifacts: Path
) -> None:
    html = host_page(
        f'<gwm-avatar id="w" muted server="{service.url}"></gwm-avatar>',
        widget_src=_widget_src(service),
        module=True,
        head=HOSTILE_CSS,
    )
    page, console = open_page(host_site.page("hostile", html), width=360, height=740)
    w = page.locator("#w")
    launch = w.get_by_role("button", name="Talk to the avatar")
    launch.wait_for(state="visible")
    lb = launch.bounding_box()
    assert lb and lb["width"] > 150 and lb["height"] >= 36, lb
    assert lb["x"] >= 0 and lb["x"] + lb["width"] <= 360, lb
    launch.click()
    page.wait_for_function(_has("connected"), timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#w').shadowRoot.querySelector('video').videoWidth > 0"
    )
    vb = w.locator("video").bounding_box()
    assert vb and vb["width"] >= 250 and abs(vb["width"] - vb["height"]) < 2, vb
    assert vb["x"] >= 0 and vb["x"] + vb["width"] <= 360, vb
    scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= 360, scroll_width
    for name in ("Unmute the microphone", "Stop the avatar talking", "Hang up", "Send"):
        box = w.get_by_role("button", name=name).bounding_box()
        assert box and box["x"] + box["width"] <= 360 and box["height"] >= 36, (name, box)
    assert w.locator(".captions").get_attribute("aria-live") == "polite"
    # The widget added no global name but its element, and no style to the page.
    added = page.evaluate(
        "() => Object.getOwnPropertyNames(window).filter((n) => !hostGlobals.includes(n))"
    )
    assert set(added) <= {"hostGlobals", "hostLog"}, added
    assert page.evaluate("() => document.styleSheets.length") == 1
    page.screenshot(path=str(artifacts / "hostile-css-360px.png"), full_page=True)
    page.locator("#host-button").click()
    assert "1" in page.locator("#host-button").inner_text()
    w.get_by_role("button", name="Hang up").click()
    page.wait_for_function(_has("ended"), timeout=10_000)
    _wait_no_sessions(service)
    assert not console.unexpected(), console
