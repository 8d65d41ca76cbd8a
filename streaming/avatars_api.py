"""Custom avatars over the API: ``POST /v1/avatars`` (a portrait in) and ``GET /v1/avatars``.

The upload is the raw image as the request body, ``Content-Type: image/png`` or
``image/jpeg`` (no multipart), at most ``server.max_avatar_bytes``; ``?voice=NAME``
names the voice the avatar speaks with when a session names none (it must be
available on the server). Its pixel count is
read from the header and checked against ``server.max_avatar_pixels`` before anything
is decoded; then the photo is prepared (face found, framed, rigged) in a worker thread
into ``server.avatars_dir`` under a server-generated id, which a session may then ask
for as ``avatar``. No client-supplied name ever touches the filesystem.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from avatar.identity import (
    FaceTooSmallError,
    IdentityError,
    ImageDecodeError,
    ImageTooLargeError,
    ImageTooSmallError,
    NoFaceError,
    avatar_cache_dir,
    prepare_bundle,
)
from avatar.identity.bundle import VOICE_RE
from avatar.identity.image import check_dimensions
from streaming.api_error import ApiError
from streaming.config import AppConfig, ServerConfig

if TYPE_CHECKING:
    from streaming.engines import Engines

log = logging.getLogger(__name__)

ACCEPTED_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}
MAX_WAITING_UPLOADS = 3
AVATAR_ID_RE = re.compile(r"av_[0-9a-f]{16}")
READ_CHUNK = 64 * 1024


class AvatarInfo(BaseModel):
    """One avatar a session may ask for."""

    avatar_id: str
    source_size: list[int] | None = Field(default=None, description="Uploaded photo (W, H)")
    face_height: float | None = Field(default=None, description="Face height in output pixels")
    voice: str | None = Field(
        default=None, description="The avatar's voice (null: the server's configured one)"
    )


class AvatarList(BaseModel):
    """Answer of ``GET /v1/avatars``."""

    avatars: list[AvatarInfo]


def avatars_dir(config: ServerConfig) -> Path:
    """Where uploaded avatars live (``server.avatars_dir``, else ``<cache>/uploads``)."""
    return config.avatars_dir if config.avatars_dir is not None else avatar_cache_dir() / "uploads"


def _info(bundle: Path) -> AvatarInfo:
    try:
        doc = json.loads((bundle / "rig.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    size = doc.get("source_size")
    face = doc.get("face_height")
    voice = doc.get("voice")
    return AvatarInfo(
        avatar_id=bundle.name,
        source_size=[int(v) for v in size] if isinstance(size, list) else None,
        face_height=float(face) if isinstance(face, (int, float)) else None,
        voice=voice if isinstance(voice, str) else None,
    )


class AvatarStore:
    """The server-owned folder of uploaded avatars (added to ``engines.avatar_dirs``)."""

    def __init__(self, config: AppConfig, engines: Engines | None = None) -> None:
        self.root = avatars_dir(config.server)
        self._engines = engines
        if engines is not None and self.root not in engines.avatar_dirs:
            engines.avatar_dirs.append(self.root)
        self.max_bytes = config.server.max_avatar_bytes
        self.max_pixels = config.server.max_avatar_pixels
        self.max_avatars = config.server.max_avatars
        self.waiting = 0
        r = config.render
        self.size = (r.width or r.size, r.size)
        self.busy = asyncio.Semaphore(1)
        """One preparation at a time (it is CPU-heavy)."""

    def list(self) -> AvatarList:
        """``default`` and every prepared upload."""
        items = [AvatarInfo(avatar_id="default")]
        if self.root.is_dir():
            items += [
                _info(p)
                for p in sorted(self.root.iterdir())
                if AVATAR_ID_RE.fullmatch(p.name) and (p / "rig.json").is_file()
            ]
        return AvatarList(avatars=items)

    def check_header(self, data: bytes, expected: str) -> None:
        """Refuse a body that is not a PNG/JPEG of sane dimensions, without decoding it."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:
                    fmt, (w, h) = img.format, img.size
        except Image.DecompressionBombError as exc:
            raise ApiError(
                413, "image_too_large", f"the image has far too many pixels ({exc})"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ApiError(400, "invalid_image", "the body is not a readable image") from exc
        if fmt != expected:
            raise ApiError(
                400, "invalid_image", f"the body is {fmt or 'not an image'}, not {expected}"
            )
        try:
            check_dimensions(w, h, max_pixels=self.max_pixels)
        except IdentityError as exc:
            raise _identity_error(exc) from exc

    def check_voice(self, voice: str) -> None:
        """Refuse a voice name this server cannot speak with (loads it: run in a thread)."""
        from streaming.engines import UnknownVoiceError

        if not VOICE_RE.fullmatch(voice):
            raise ApiError(400, "invalid_voice", "voice: letters, digits, '.', '_' or '-'")
        if self._engines is None:
            return
        try:
            self._engines.voice(voice)
        except UnknownVoiceError:
            raise ApiError(
                400, "unknown_voice", f"voice {voice!r} is not available on this server"
            ) from None

    def prepare(self, data: bytes, voice: str | None = None) -> AvatarInfo:
        """Prepare an uploaded photo into a new avatar (slow: run it in a thread)."""
        self.root.mkdir(parents=True, exist_ok=True)
        avatar_id = f"av_{secrets.token_hex(8)}"
        work = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.root))
        try:
            photo = work / "upload.img"
            photo.write_bytes(data)
            bundle = prepare_bundle(
                photo,
                work / "bundle",
                size=self.size,
                name=avatar_id,
                voice=voice,
                max_pixels=self.max_pixels,
            )
            os.chmod(bundle, 0o755)
            target = self.root / avatar_id
            os.replace(bundle, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("avatar %s prepared from an upload of %d bytes", avatar_id, len(data))
        return _info(target)


AVATARS_KEY: web.AppKey[AvatarStore] = web.AppKey("gwm_avatars", AvatarStore)


def _identity_error(exc: IdentityError) -> ApiError:
    """The JSON error for a photo that cannot become an avatar."""
    status, code = {
        ImageTooLargeError: (413, "image_too_large"),
        ImageTooSmallError: (422, "image_too_small"),
        NoFaceError: (422, "no_face"),
        FaceTooSmallError: (422, "face_too_small"),
        ImageDecodeError: (400, "invalid_image"),
    }.get(type(exc), (422, "invalid_avatar"))
    return ApiError(status, code, str(exc).replace("upload.img", "the image"))


async def _read_capped(request: web.Request, cap: int) -> bytes:
    if request.content_length is not None and request.content_length > cap:
        raise ApiError(413, "body_too_large", f"the image is larger than {cap} bytes")
    buf = bytearray()
    while True:
        chunk = await request.content.read(READ_CHUNK)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            raise ApiError(413, "body_too_large", f"the image is larger than {cap} bytes")


async def upload_avatar(request: web.Request) -> web.Response:
    """``POST /v1/avatars``: raw PNG/JPEG body → ``201`` :class:`AvatarInfo`."""
    store = request.app[AVATARS_KEY]
    expected = ACCEPTED_TYPES.get(request.content_type)
    if expected is None:
        raise ApiError(
            415, "unsupported_media_type", "send the image as the body, image/png or image/jpeg"
        )
    if store.waiting >= MAX_WAITING_UPLOADS:
        raise ApiError(503, "busy", "too many avatars are being prepared", {"Retry-After": "5"})
    data = await _read_capped(request, store.max_bytes)
    if not data:
        raise ApiError(400, "empty_body", "the request body is empty; send an image")
    store.check_header(data, expected)
    voice = request.query.get("voice")
    if voice is not None:
        await asyncio.to_thread(store.check_voice, voice)
    if len((await asyncio.to_thread(store.list)).avatars) > store.max_avatars:
        raise ApiError(507, "too_many_avatars", f"this server keeps at most {store.max_avatars}")
    store.waiting += 1
    try:
        async with store.busy:
            info = await asyncio.to_thread(store.prepare, data, voice)
    except IdentityError as exc:
        raise _identity_error(exc) from exc
    finally:
        store.waiting -= 1
    return web.json_response(info.model_dump(), status=201)


async def list_avatars(request: web.Request) -> web.Response:
    """``GET /v1/avatars``: the avatars a session may ask for."""
    store = request.app[AVATARS_KEY]
    listing = await asyncio.to_thread(store.list)
    return web.json_response(listing.model_dump())


def upload_schema() -> dict[str, Any]:
    """The OpenAPI request body of ``POST /v1/avatars``."""
    media = {"schema": {"type": "string", "format": "binary"}}
    return {"required": True, "content": {t: media for t in ACCEPTED_TYPES}}
