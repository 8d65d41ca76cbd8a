"""The service's config: its own sections (server, router, ICE, serving) and the one
validated tree of every package's sections, with its loading from YAML, environment and
CLI.

Each package keeps its sections next to it (``models.config``, ``avatar.config``,
here); this module composes them, since the service is what needs the whole tree.
Precedence (last wins): the YAML profile, then environment variables
``GWM_<SECTION>__<FIELD>`` (``__`` separates nesting levels, e.g.
``GWM_STT__DEVICE=cuda`` or ``GWM_LLM__OPENAI__BASE_URL=...``), then CLI
``--set section.field=value`` overrides. Values from the environment and the CLI are
parsed as YAML scalars (``true``, ``3``, ``0.5``, ``null``).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from avatar.config import AvatarConfig, RenderConfig, Section
from models.config import (
    AssetsConfig,
    LlmConfig,
    ModelsConfig,
    SttConfig,
    TtsConfig,
    VadConfig,
)

ENV_PREFIX = "GWM_"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Where a regular (non-editable) install puts the profiles (pyproject data-files).
INSTALLED_CONFIG_DIR = Path(sys.prefix) / "share" / "gwm-avatars" / "configs"


class ServerConfig(Section):
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
        """Accept a comma-separated string (handy in an environment variable).

        An empty variable (parsed as null) means no keys, not an invalid list.
        """
        if value is None:
            return []
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
    drain_grace_s: float = Field(
        default=0.0,
        ge=0.0,
        le=86400.0,
        description=(
            "On SIGTERM: how long active sessions may go on to their natural end (no new "
            "ones admitted) before the goodbye; 0: say goodbye at once. Behind a "
            "Kubernetes rollout, set it near max_session_s and the pod's "
            "terminationGracePeriodSeconds above grace + drain_timeout_s"
        ),
    )
    goodbye_line: str = Field(
        default="I have to go now. Goodbye!",
        min_length=1,
        max_length=200,
        description="What the avatar says to each active session when the server drains",
    )
    worker_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$",
        description=(
            "This worker's name behind a router (e.g. the pod name); session ids then start "
            "with '<worker_id>.' so the router pins a session's later calls to this worker"
        ),
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses or CIDRs of proxies (the router, an ingress) whose X-Forwarded-For "
            "names the real client for rate limits and per-client caps"
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        """Every entry must parse as an address or a network."""
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value


class EchoConfig(Section):
    """Echo sessions (``"mode": "echo"``): the caller's audio is the avatar's speech."""

    silence_dbfs: float = Field(
        default=-50.0,
        ge=-100.0,
        le=0.0,
        description="A 20 ms inbound frame quieter than this (RMS, dBFS) is silence",
    )
    end_after_s: float = Field(
        default=0.5,
        gt=0.0,
        le=10.0,
        description=(
            "Silence this long ends a stretch of the caller's speech: the avatar listens "
            "once it has played, and the next speech starts at the echo delay again"
        ),
    )
    pre_roll_ms: int = Field(
        default=40,
        ge=0,
        le=500,
        description="Inbound audio kept before the first loud frame (soft onsets)",
    )
    max_speak_queue: int = Field(
        default=8, ge=1, le=100, description="Speak requests waiting at most (more: an error)"
    )


class RouterConfig(Section):
    """``avatar route``: the session router in front of several workers."""

    workers: list[str] = Field(
        default_factory=list,
        description="Worker base URLs (http://host:port); used when dns_name is not set",
    )
    dns_name: str | None = Field(
        default=None,
        description=(
            "A DNS name whose A/AAAA records are the workers (a Kubernetes headless "
            "Service); re-resolved every poll"
        ),
    )
    worker_port: int = Field(default=8080, ge=1, le=65535, description="Port of DNS workers")
    poll_interval_s: float = Field(
        default=2.0, gt=0.0, le=60.0, description="How often each worker's /readyz is read"
    )
    request_timeout_s: float = Field(
        default=20.0, gt=0.0, le=300.0, description="Longest a forwarded request may take"
    )


class IceConfig(Section):
    """STUN/TURN servers for the calls: the service's own peer and every client's.

    TURN uses time-limited credentials (the coturn REST scheme, ``use-auth-secret``):
    the service derives them from ``turn_secret``, the coturn ``static-auth-secret``.
    """

    stun_urls: list[str] = Field(
        default_factory=list,
        description="STUN urls (stun:host[:port]) handed to clients; env: comma-separated",
    )
    turn_urls: list[str] = Field(
        default_factory=list,
        description=(
            "TURN urls (turn:host[:port][?transport=udp|tcp], turns:host[:port]); the "
            "service's own peer uses the first one aiortc supports; env: comma-separated"
        ),
    )
    turn_secret: SecretStr | None = Field(
        default=None,
        description=(
            "coturn's static-auth-secret (env GWM_ICE__TURN_SECRET); required with turn_urls"
        ),
    )
    turn_ttl_s: int = Field(
        default=7200,
        ge=60,
        le=86400,
        description=(
            "Lifetime of the TURN credentials handed out; coturn refuses to refresh an "
            "allocation after it, so keep it above server.max_session_s"
        ),
    )
    relay_only: bool = Field(
        default=False,
        description="The service's peer offers TURN relay candidates only (needs turn_urls)",
    )
    turn_check_interval_s: float = Field(
        default=60.0,
        ge=0.0,
        le=3600.0,
        description="How often the TURN server is re-checked (an allocation); 0: at start only",
    )

    @field_validator("stun_urls", "turn_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        """Accept a comma-separated string (handy in an environment variable).

        An empty variable (parsed as null) means no keys, not an invalid list.
        """
        if value is None:
            return []
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("turn_secret", mode="before")
    @classmethod
    def _secret_text(cls, value: Any) -> Any:
        """A secret that YAML parsed as a number is still a string."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("stun_urls", "turn_urls")
    @classmethod
    def _check_urls(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Each url has a scheme that fits its list, a host, and at most a transport."""
        kind = "stun" if info.field_name == "stun_urls" else "turn"
        for url in value:
            scheme, _, rest = url.partition(":")
            where, _, query = rest.partition("?")
            if scheme not in (kind, kind + "s") or not where.split(":")[0] or " " in url:
                raise ValueError(f"{url!r} must look like {kind}:host[:port]")
            if query and (kind == "stun" or query not in ("transport=udp", "transport=tcp")):
                raise ValueError(f"{url!r}: only turn urls take ?transport=udp|tcp")
        return value

    @model_validator(mode="after")
    def _turn_needs_secret(self) -> IceConfig:
        """TURN urls need the shared secret; relay-only needs a TURN url."""
        if self.turn_urls and (self.turn_secret is None or not self.turn_secret.get_secret_value()):
            raise ValueError("turn_urls need turn_secret (env GWM_ICE__TURN_SECRET)")
        if self.relay_only and not self.turn_urls:
            raise ValueError("relay_only needs at least one of turn_urls")
        return self


RayStage = Literal["stt", "tts", "render"]
"""A heavy stage that ``serving.backend: ray`` can run as a Ray Serve deployment."""


def _all_ray_stages() -> list[RayStage]:
    return ["stt", "tts", "render"]


class RayDeploymentConfig(Section):
    """Replicas and resources of one Ray Serve deployment (autoscaled from min to max)."""

    min_replicas: int = Field(
        default=1, ge=0, le=1000, description="Fewest replicas (0: scale to zero when idle)"
    )
    max_replicas: int = Field(
        default=1, ge=1, le=1000, description="Most replicas the autoscaler may run"
    )
    target_ongoing_requests: float = Field(
        default=2.0, gt=0.0, description="Requests in flight per replica the autoscaler aims at"
    )
    max_ongoing_requests: int = Field(
        default=8, ge=1, le=10000, description="Requests one replica takes at once"
    )
    num_cpus: float = Field(default=1.0, ge=0.0, description="CPUs reserved per replica")
    num_gpus: float = Field(default=0.0, ge=0.0, description="GPUs (or a fraction) per replica")

    @model_validator(mode="after")
    def _min_le_max(self) -> RayDeploymentConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class RayRenderDeploymentConfig(RayDeploymentConfig):
    """The frame-rendering deployment: many sessions' frames rendered in one batch."""

    target_ongoing_requests: float = Field(
        default=8.0, gt=0.0, description="Frames in flight per replica the autoscaler aims at"
    )
    max_ongoing_requests: int = Field(
        default=32, ge=1, le=10000, description="Frames one replica takes at once"
    )
    max_batch_size: int = Field(
        default=8, ge=1, le=256, description="Most frames rendered in one batch"
    )
    batch_wait_timeout_s: float = Field(
        default=0.005, ge=0.0, le=1.0, description="How long a batch waits to fill up"
    )

    @model_validator(mode="after")
    def _batch_fits(self) -> RayRenderDeploymentConfig:
        # Ray Serve only forms a batch out of requests a replica has accepted.
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) must be at least "
                f"max_batch_size ({self.max_batch_size}), or batches never fill"
            )
        return self


class RayServingConfig(Section):
    """Where the Ray Serve deployments run and how each one scales."""

    address: str | None = Field(
        default=None,
        description=(
            "None: start a local Ray instance in this process; 'auto': join the cluster this "
            "machine is a node of; 'ray://<head>:10001': connect with Ray Client"
        ),
    )
    namespace: str = Field(default="gwm-avatars", min_length=1, max_length=64)
    app_name: str = Field(
        default="gwm-avatars", min_length=1, max_length=64, description="Ray Serve app name"
    )
    stages: list[RayStage] = Field(
        default_factory=_all_ray_stages,
        description="Which stages run on Ray (the others, and VAD and LLM, stay local)",
    )
    deploy: bool = Field(
        default=True,
        description=(
            "Deploy the app when it is not running (false: it must be there already, "
            "e.g. run by a KubeRay RayService)"
        ),
    )
    num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs of a local instance (None: every core)"
    )
    object_store_mb: int | None = Field(
        default=None, ge=78, description="Object store of a local instance (None: Ray's default)"
    )
    temp_dir: Path | None = Field(
        default=None, description="Session files of a local instance (None: /tmp/ray)"
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="Longest wait for one STT or TTS request"
    )
    render_timeout_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description="Longest wait for a frame before it is rendered locally instead",
    )
    health_interval_s: float = Field(
        default=10.0,
        ge=0.0,
        le=600.0,
        description=(
            "How often the service checks that the app answers (0: never); while it does "
            "not, /readyz is 503"
        ),
    )
    restart_after_s: float = Field(
        default=120.0,
        ge=0.0,
        le=86400.0,
        description=(
            "After the app has not answered for this long, /healthz turns 503 so the "
            "orchestrator restarts the service with a fresh connection (e.g. after "
            "KubeRay replaced the Ray cluster); 0: never"
        ),
    )
    stt: RayDeploymentConfig = Field(default_factory=RayDeploymentConfig)
    tts: RayDeploymentConfig = Field(default_factory=RayDeploymentConfig)
    render: RayRenderDeploymentConfig = Field(default_factory=RayRenderDeploymentConfig)

    @field_validator("stages", mode="before")
    @classmethod
    def _split_stages(cls, value: Any) -> Any:
        """Accept a comma-separated string (GWM_SERVING__RAY__STAGES=stt,tts)."""
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ServingConfig(Section):
    """Where the heavy stages (STT, TTS, frame rendering) run: in this process or on Ray."""

    backend: Literal["local", "ray"] = Field(
        default="local",
        description="local: every model in this process; ray: serving.ray.stages on Ray Serve",
    )
    ray: RayServingConfig = Field(default_factory=RayServingConfig)


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


class EndOfTurnConfig(Section):
    """When the user's turn is over: the silence waited depends on what they said.

    The words so far are transcribed once the user has been silent ``guess_after_ms``;
    the turn then ends after ``question_ms`` of silence when they end in a question,
    after ``unfinished_ms`` when they end on a conjunction, preposition, article or
    filler ("I want to go to…"), and after ``statement_ms`` otherwise (more than a
    thinking pause: Whisper often writes a half sentence as a whole one). Until the
    words are known it waits (at most ``unfinished_ms``), so a pause mid-sentence is
    never taken for the end because the recognizer was slow.
    """

    guess_after_ms: int = Field(
        default=150,
        ge=20,
        le=5000,
        description="Silence that starts transcribing the words (and the reply to them, "
        "played only if the turn ends on them); sooner costs a Whisper pass at more of the "
        "short gaps between words, which on a busy machine delays the guess that counts",
    )
    partial_every_ms: int = Field(
        default=700,
        ge=0,
        le=10000,
        description="While the user speaks, the words so far are transcribed every this much "
        "new speech (at the recognizer's lowest priority), so that the LLM evaluates them "
        "before the turn ends (0: never)",
    )
    partial_min_idle: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Partial passes run only while at least this share of the machine's CPU "
        "is idle (they cost ~15 % of a core per speaking caller; on a busy machine they "
        "delay the final transcription more than they save)",
    )
    question_ms: int = Field(
        default=400,
        ge=20,
        le=5000,
        description="Silence that ends a question: longer than a comma's pause inside one "
        '("What is the capital of France, | and what is it known for?": ~0.3 s), however '
        "fast the recognizer (on a GPU the words are known moments after the guess)",
    )
    statement_ms: int = Field(
        default=800,
        ge=20,
        le=5000,
        description="Silence that ends any other words (a 0.6 s pause mid-sentence reads "
        "as up to ~0.7 s to the VAD, whose silence starts inside a soft last syllable)",
    )
    unfinished_ms: int = Field(
        default=1000,
        ge=20,
        le=10000,
        description="Silence that ends words that stop mid-phrase (the longest wait)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> EndOfTurnConfig:
        if not self.guess_after_ms <= self.question_ms <= self.statement_ms <= self.unfinished_ms:
            raise ValueError("need guess_after_ms <= question_ms <= statement_ms <= unfinished_ms")
        return self


class AppConfig(ModelsConfig):
    """The whole tree: engines, avatar, renderer and server."""

    llm: ServiceLlmConfig = Field(default_factory=ServiceLlmConfig)
    avatar: AvatarConfig = Field(default_factory=AvatarConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    echo: EchoConfig = Field(default_factory=EchoConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    ice: IceConfig = Field(default_factory=IceConfig)
    end_of_turn: EndOfTurnConfig = Field(default_factory=EndOfTurnConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)


def cuda_fields(config: AppConfig) -> list[str]:
    """The dotted ``*.device`` fields that ask this process for a CUDA device.

    Only fields that take effect count: ``llm.device`` with the transformers backend,
    ``render.device`` with the torch renderer, none of the stages served on Ray.
    """
    remote = set(config.serving.ray.stages) if config.serving.backend == "ray" else set()
    used = {
        "stt.device": "stt" not in remote,
        "llm.device": config.llm.backend == "transformers",
        "tts.device": "tts" not in remote,
        "render.device": config.render.backend == "torch" and "render" not in remote,
    }
    devices = {
        "stt.device": config.stt.device,
        "llm.device": config.llm.device,
        "tts.device": config.tts.device,
        "render.device": config.render.device,
    }
    return [name for name, on in used.items() if on and devices[name] == "cuda"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending field."""


def profile_path(name_or_path: str | Path) -> Path:
    """Resolve a profile name (``default``, ``gpu``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"} or p.exists():
        return p
    for folder in (CONFIG_DIR, INSTALLED_CONFIG_DIR):
        if (folder / f"{name_or_path}.yaml").is_file():
            return folder / f"{name_or_path}.yaml"
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
    "IceConfig",
    "LlmConfig",
    "RayDeploymentConfig",
    "RayRenderDeploymentConfig",
    "RayServingConfig",
    "RenderConfig",
    "RouterConfig",
    "ServerConfig",
    "ServiceLlmConfig",
    "ServingConfig",
    "SttConfig",
    "TtsConfig",
    "VadConfig",
    "load_config",
]
