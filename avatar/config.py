"""The one validated config tree, and its loading from YAML, environment and CLI.

Precedence (last wins): the YAML profile, then environment variables
``GWM_<SECTION>__<FIELD>`` (``__`` separates nesting levels, e.g.
``GWM_STT__DEVICE=cuda`` or ``GWM_LLM__OPENAI__BASE_URL=...``), then CLI
``--set section.field=value`` overrides. Values from the environment and the CLI are
parsed as YAML scalars (``true``, ``3``, ``0.5``, ``null``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from models.config import (
    AssetsConfig,
    Device,
    LlmConfig,
    ModelsConfig,
    SttConfig,
    TtsConfig,
    VadConfig,
)

ENV_PREFIX = "GWM_"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AvatarConfig(_Section):
    """Which avatar to animate and how it behaves."""

    bundle: Path | None = Field(
        default=None, description="Avatar bundle folder or a photo; None: the default portrait"
    )
    seed: int = 0
    lookahead_ms: int = Field(
        default=60, ge=0, le=200, description="How far ahead of the sound the mouth may prepare"
    )
    blink_rate_per_min: float = Field(default=17.0, gt=0.0, le=60.0)


class RenderConfig(_Section):
    """The renderer and the video it produces."""

    backend: Literal["cpu", "torch"] = "cpu"
    device: Device = "auto"
    size: int = Field(default=512, ge=64, le=2160, description="Output height (square: width too)")
    width: int | None = Field(default=None, ge=64, le=3840, description="None: square")
    fps: int = Field(default=25, ge=1, le=60)
    max_batch: int = Field(default=16, ge=1, le=256)


class ServerConfig(_Section):
    """The real-time service."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_sessions: int = Field(default=3, ge=1, le=10000)
    idle_timeout_s: float = Field(default=120.0, gt=0.0)
    max_session_s: float = Field(default=3600.0, gt=0.0)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    audio_sample_rate: Literal[48000] = 48000
    allow_public_without_auth: bool = False
    ice_host_addresses: list[str] = Field(
        default_factory=list,
        description="Host candidate addresses to offer (empty: every interface but loopback)",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Web origins (scheme://host[:port]) whose pages may call /v1/ from a browser "
            "(CORS); empty: any origin, for local use"
        ),
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "API keys; when set every /v1/ call needs 'Authorization: Bearer <key>' (or a "
            "session token for POST /v1/sessions). Env: GWM_SERVER__API_KEYS=k1,k2. Empty: "
            "no auth (local use; serve binds 127.0.0.1 unless allow_public_without_auth)"
        ),
    )
    token_secret: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC key signing session tokens; None: random per start (tokens do not "
            "survive a restart, nor work across replicas)"
        ),
    )
    token_ttl_s: float = Field(
        default=120.0, gt=0.0, le=600.0, description="Default session-token lifetime"
    )
    rate_limit_per_minute: int = Field(
        default=60,
        ge=1,
        description="/v1/ requests per minute per API key (per client IP without keys)",
    )
    session_rate_limit_per_minute: int = Field(
        default=30, ge=1, description="POST /v1/sessions per minute per key (or client IP)"
    )
    max_sessions_per_key: int | None = Field(
        default=None, ge=1, description="Concurrent sessions per key (or client IP); None: no cap"
    )
    avatars_dir: Path | None = Field(
        default=None,
        description="Where avatars uploaded with POST /v1/avatars live; None: <cache>/uploads",
    )
    max_avatar_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest avatar upload in bytes"
    )
    max_avatar_pixels: int = Field(
        default=40_000_000, ge=4096, description="Largest avatar upload in pixels (from header)"
    )
    max_avatars: int = Field(
        default=100, ge=1, description="Most uploaded avatars kept in server.avatars_dir"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """Accept a comma-separated string (handy in an environment variable)."""
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    database_url: str | None = Field(
        default=None,
        description=(
            "Where sessions and transcripts are kept: sqlite:///<path> or postgresql://...; "
            "None: sqlite under $XDG_DATA_HOME/gwm-avatars/sessions.db"
        ),
    )
    drain_timeout_s: float = Field(
        default=10.0,
        ge=0.0,
        le=600.0,
        description="On SIGTERM: how long active sessions get to say goodbye before exit",
    )
    goodbye_line: str = Field(
        default="I have to go now. Goodbye!",
        min_length=1,
        max_length=200,
        description="What the avatar says to each active session when the server drains",
    )


class ServiceLlmConfig(LlmConfig):
    """The language model plus how a turn degrades when it fails (service-only fields)."""

    first_token_timeout_s: float = Field(
        default=15.0,
        gt=0.0,
        le=300.0,
        description="No first token from the LLM within this long: speak the fallback reply",
    )
    fallback_reply: str = Field(
        default="Sorry, I lost my train of thought. Could you say that again?",
        min_length=1,
        max_length=200,
        description="Spoken instead of a reply when the LLM errors or times out",
    )


class AppConfig(ModelsConfig):
    """The whole tree: engines, avatar, renderer and server."""

    llm: ServiceLlmConfig = Field(default_factory=ServiceLlmConfig)
    avatar: AvatarConfig = Field(default_factory=AvatarConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending field."""


def profile_path(name_or_path: str | Path) -> Path:
    """Resolve a profile name (``default``, ``gpu``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or p.exists():
        return p
    return CONFIG_DIR / f"{name_or_path}.yaml"


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_path(tree: dict[str, Any], dotted: list[str], value: Any) -> None:
    node = tree
    for key in dotted[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[dotted[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Collect ``GWM_SECTION__FIELD=value`` variables into a nested dict."""
    tree: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if parts:
            _set_path(tree, parts, _parse_scalar(raw))
    return tree


def cli_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``section.field=value`` strings into a nested dict."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.field=value")
        _set_path(tree, [k.strip() for k in key.split(".")], _parse_scalar(raw))
    return tree


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(err: ValidationError) -> str:
    """One line per problem, each naming the dotted field path."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        lines.append(f"{loc}: {e['msg']}")
    return "invalid config: " + "; ".join(lines)


def load_config(
    profile: str | Path = "default",
    *,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> AppConfig:
    """Load a profile, apply environment and CLI overrides, and validate the result."""
    path = profile_path(profile)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    data = _merge(data, env_overrides(os.environ if environ is None else environ))
    data = _merge(data, cli_overrides(overrides))
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


__all__ = [
    "AppConfig",
    "AssetsConfig",
    "AvatarConfig",
    "ConfigError",
    "LlmConfig",
    "RenderConfig",
    "ServerConfig",
    "ServiceLlmConfig",
    "SttConfig",
    "TtsConfig",
    "VadConfig",
    "load_config",
]
