"""Custom avatars over the API: hostile uploads are refused, a real portrait becomes a session."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import Image
from skimage import data

from streaming.client import ClientPeer
from streaming.config import AppConfig
from streaming.engines import Engines
from tests.streaming.limits import base_url, custom_server, offer_sdp, wait_frames

pytestmark = pytest.mark.timeout(120)


def _png(img: Image.Image | np.ndarray, **save: object) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", **save)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` RGB pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)


@pytest.fixture(scope="module")
def portrait_png() -> bytes:
    """A real portrait (the astronaut, mirrored so it is not the default avatar)."""
    return _png(np.ascontiguousarray(data.astronaut()[:, ::-1]))


async def test_hostile_uploads_get_json_errors(
    service_config: AppConfig, engines: Engines, tmp_path: Path, portrait_png: bytes
) -> None:
    bomb = _png(Image.new("1", (20_000, 20_000)), optimize=False)
    assert len(bomb) < 200_000  # small on disk, 400 MP once decoded
    cases = [
        ("decompression bomb", bomb, "image/png", 413, "image_too_large"),
        ("huge header", _png_header_only(100_000, 100_000), "image/png", 413, "image_too_large"),
        ("above 40 MP", _png_header_only(8_000, 6_000), "image/png", 413, "image_too_large"),
        ("truncated", portrait_png[: len(portrait_png) // 2], "image/png", 400, "invalid_image"),
        ("not an image", b"hello, this is not a PNG", "image/png", 400, "invalid_image"),
        ("JPEG label on a PNG", portrait_png, "image/jpeg", 400, "invalid_image"),
        ("empty", b"", "image/png", 400, "empty_body"),
        ("text", b"hello", "text/plain", 415, "unsupported_media_type"),
        ("too many bytes", b"\x89PNG" + b"\0" * 9_000_000, "image/png", 413, "body_too_large"),
        ("tiny", _png(np.zeros((32, 32, 3), np.uint8)), "image/png", 422, "image_too_small"),
        ("no face", _png(np.full((256, 256, 3), 128, np.uint8)), "image/png", 422, "no_face"),
    ]
    async with (
        custom_server(service_config, engines, avatars_dir=tmp_path / "avatars") as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        for name, body, ctype, status, code in cases:
            resp = await http.post(f"{url}/v1/avatars", data=body, headers={"Content-Type": ctype})
            got = await resp.json()
            assert (resp.status, got["error"]["code"]) == (status, code), (name, got)
            assert got["error"]["message"]
            assert "upload.img" not in got["error"]["message"]
        # A client-chosen avatar name never becomes a path.
        sdp = await offer_sdp()
        for avatar in ("../avatars", "/etc", "default/../default"):
            resp = await http.post(
                f"{url}/v1/sessions", json={"sdp": sdp, "type": "offer", "avatar": avatar}
            )
            assert resp.status == 404, avatar
        listed = await (await http.get(f"{url}/v1/avatars")).json()
        assert [a["avatar_id"] for a in listed["avatars"]] == ["default"]
        assert (await http.get(f"{url}/healthz")).status == 200
    # Nothing half-written is left behind.
    root = tmp_path / "avatars"
    assert not root.exists() or not any(root.iterdir())


async def test_an_uploaded_portrait_becomes_a_session_avatar(
    service_config: AppConfig, engines: Engines, tmp_path: Path, portrait_png: bytes
) -> None:
    async with (
        custom_server(
            service_config, engines, avatars_dir=tmp_path / "avatars", max_avatars=1
        ) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        resp = await http.post(
            f"{url}/v1/avatars", data=portrait_png, headers={"Content-Type": "image/png"}
        )
        made = await resp.json()
        assert resp.status == 201, made
        avatar_id = made["avatar_id"]
        assert avatar_id.startswith("av_")
        assert made["source_size"] == [512, 512]
        assert (tmp_path / "avatars" / avatar_id / "rig.json").is_file()
        listed = await (await http.get(f"{url}/v1/avatars")).json()
        assert {a["avatar_id"] for a in listed["avatars"]} == {"default", avatar_id}
        resp = await http.post(
            f"{url}/v1/avatars", data=portrait_png, headers={"Content-Type": "image/png"}
        )
        assert (resp.status, (await resp.json())["error"]["code"]) == (507, "too_many_avatars")

        peer = ClientPeer(url)
        try:
            assert await peer.connect(avatar=avatar_id) is None
            await peer.wait_open()
            await wait_frames(peer, 15)
            sessions = await (await http.get(f"{url}/v1/sessions")).json()
        finally:
            await peer.hangup()
        frames = [img for _, img in peer.received.video if img.size]
        assert len(frames) >= 10
        # The mirrored portrait is rendered: the frame matches the uploaded avatar's
        # portrait better than the default one's.
        own = engines.avatar(avatar_id).rig.portrait.astype(np.float32)
        default = engines.avatar("default").rig.portrait.astype(np.float32)
        last = frames[-1].astype(np.float32)
        assert np.abs(last - own).mean() < np.abs(last - default).mean()
    assert [s.get("avatar") for s in sessions["sessions"]] == [avatar_id]


async def test_an_avatar_names_its_voice(
    service_config: AppConfig, engines: Engines, tmp_path: Path, portrait_png: bytes
) -> None:
    """An upload may name the avatar's voice (``?voice=``); a session that names none
    speaks with it, one that names a voice overrides it; a voice the server cannot load
    is refused at upload and at the call, never a path."""
    default_voice = service_config.tts.voice
    async with (
        custom_server(service_config, engines, avatars_dir=tmp_path / "avatars") as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)

        async def upload(voice: str) -> tuple[int, dict[str, object]]:
            resp = await http.post(
                f"{url}/v1/avatars",
                params={"voice": voice},
                data=portrait_png,
                headers={"Content-Type": "image/png"},
            )
            return resp.status, await resp.json()

        for voice, code in (("no-such-voice", "unknown_voice"), ("../etc/x.onnx", "invalid_voice")):
            status, body = await upload(voice)
            assert (status, body["error"]["code"]) == (400, code), body  # type: ignore[index]
        status, made = await upload(default_voice)
        assert status == 201, made
        avatar_id = str(made["avatar_id"])
        assert made["voice"] == default_voice
        listed = await (await http.get(f"{url}/v1/avatars")).json()
        assert {a["avatar_id"]: a["voice"] for a in listed["avatars"]} == {
            "default": None,
            avatar_id: default_voice,
        }

        # The bundle names a voice this server does not have (prepared elsewhere).
        rig_json = tmp_path / "avatars" / avatar_id / "rig.json"
        doc = json.loads(rig_json.read_text())
        rig_json.write_text(json.dumps({**doc, "voice": "piper-amy-medium"}))
        sdp = await offer_sdp()
        resp = await http.post(
            f"{url}/v1/sessions", json={"sdp": sdp, "type": "offer", "avatar": avatar_id}
        )
        refused = await resp.json()
        assert (resp.status, refused["error"]["code"]) == (400, "unknown_voice"), refused
        assert "piper-amy-medium" in refused["error"]["message"]
        assert avatar_id in refused["error"]["message"]

        # A session that names the voice overrides the avatar's.
        peer = ClientPeer(url)
        try:
            assert await peer.connect(avatar=avatar_id, voice=default_voice) is None
            sessions = await (await http.get(f"{url}/v1/sessions")).json()
        finally:
            await peer.hangup()
        assert [(s["avatar"], s["voice"]) for s in sessions["sessions"]] == [
            (avatar_id, default_voice)
        ]
