"""The Ray Serve backend: STT, TTS and frame rendering served by a local Ray instance.

One small Ray instance (2 CPUs, loopback, no dashboard, its files under a temporary
folder, one replica per stage) runs the app for the whole module; the VAD and the LLM
stay in the test process (the shared ``engines``).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from avatar.state import NEUTRAL, Mode
from models.audio import resample
from models.errors import InvalidAudioError, STTError
from streaming.client import ClientPeer
from streaming.config import (
    AppConfig,
    ConfigError,
    RayRenderDeploymentConfig,
    RayServingConfig,
    ServingConfig,
    load_config,
)
from streaming.engines import Engines
from streaming.server import create_app
from tests.models.wer import word_error_rate

if TYPE_CHECKING:
    from streaming.ray_serve.backend import RayServing

pytestmark = pytest.mark.timeout(300)

LOUD = 0.02
QUESTION = "What is the capital of France?"


def _stage(**fields: Any) -> dict[str, Any]:
    """One replica, a fraction of a CPU: three stages fit in two CPUs."""
    return {"min_replicas": 1, "max_replicas": 1, "num_cpus": 0.5, **fields}


def test_serving_config_comes_from_the_environment_and_app_args() -> None:
    assert load_config("default", environ={}).serving.backend == "local"
    config = load_config(
        "default",
        environ={
            "GWM_SERVING__BACKEND": "ray",
            "GWM_SERVING__RAY__ADDRESS": "ray://gwm-ray-head-svc:10001",
            "GWM_SERVING__RAY__STAGES": "stt,render",
            "GWM_SERVING__RAY__DEPLOY": "false",
            "GWM_SERVING__RAY__STT__MAX_REPLICAS": "4",
            "GWM_SERVING__RAY__RENDER__NUM_GPUS": "0.25",
            "GWM_SERVING__RAY__RENDER__MAX_BATCH_SIZE": "16",
        },
    )
    r = config.serving.ray
    assert config.serving.backend == "ray" and r.address == "ray://gwm-ray-head-svc:10001"
    assert r.stages == ["stt", "render"] and r.deploy is False
    assert r.stt.max_replicas == 4 and r.render.num_gpus == 0.25 and r.render.max_batch_size == 16
    # Batches only form when a replica may hold a whole batch.
    with pytest.raises(ConfigError, match=r"serving\.ray\.render"):
        load_config("default", environ={"GWM_SERVING__RAY__RENDER__MAX_BATCH_SIZE": "64"})
    with pytest.raises(ConfigError, match=r"serving\.ray\.stt"):
        load_config("default", environ={"GWM_SERVING__RAY__STT__MIN_REPLICAS": "3"})
    with pytest.raises(ConfigError, match=r"serving\.ray\.stages"):
        load_config("default", environ={"GWM_SERVING__RAY__STAGES": "llm"})

    from streaming.ray_serve.app import config_from_args  # no Ray needed

    built = config_from_args(
        {"profile": "default", "overrides": "serving.ray.stages=[render]; render.size=256"}
    )
    assert built.serving.ray.stages == ["render"] and built.render.size == 256
    with pytest.raises(ConfigError, match="unknown app args"):
        config_from_args({"profil": "gpu"})


@pytest.fixture(scope="module")
def ray_serving(
    service_config: AppConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RayServing]:
    """The app on a local Ray instance started for this module, shut down after it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only (read at import)
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))  # else Ray writes ~/.ray/auth_token
        mp.setenv("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")  # what ensure_ray sets, restored
        pytest.importorskip("ray.serve", reason="Ray Serve is not installed (extra 'ray')")
        from streaming.ray_serve import deploy_local

        serving_config = ServingConfig(
            backend="ray",
            ray=RayServingConfig(
                num_cpus=2,
                object_store_mb=200,
                temp_dir=tmp_path_factory.mktemp("ray"),
                namespace="gwm-test",
                stt=_stage(),
                tts=_stage(),
                render=RayRenderDeploymentConfig(**_stage(batch_wait_timeout_s=0.02)),
            ),
        )
        config = service_config.model_copy(update={"serving": serving_config})
        serving = deploy_local(config)
        try:
            yield serving
        finally:
            serving.close()


async def test_voice_turn_is_transcribed_and_spoken_through_ray_serve(
    ray_serving: RayServing, engines: Engines, service_config: AppConfig, speak
) -> None:
    from streaming.ray_serve import remote_engines

    remote = remote_engines(engines, ray_serving)
    assert remote.stt is ray_serving.stt and remote.tts is ray_serving.tts
    before = await ray_serving.astats()
    server = TestServer(create_app(service_config, engines=remote), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        peer = ClientPeer(str(server.make_url("")).rstrip("/"))
        failed = await peer.connect()
        assert failed is None, f"session refused: {failed.status if failed else ''}"
        await peer.wait_open()
        try:
            await asyncio.sleep(0.5)
            peer.mic.say(speak(QUESTION))
            heard = await peer.wait_event("user_transcript", 60)
            final = await peer.wait_event("assistant_text", 120, pred=lambda m: m["final"])
            await asyncio.sleep(0.6)
        finally:
            await peer.hangup()
    finally:
        await server.close()
    after = await ray_serving.astats()

    # The user was heard (by Whisper on Ray) and the reply was spoken (by Piper on Ray).
    assert word_error_rate([QUESTION], [heard["text"]]) <= 0.2, heard["text"]
    assert final["text"].strip() and not final["interrupted"]
    # The deployments really served this call.
    assert after["stt"]["requests"] > before["stt"]["requests"]
    assert after["stt"]["audio_s"] - before["stt"]["audio_s"] > 1.0
    assert after["tts"]["chunks"] > before["tts"]["chunks"]
    spoken_s = after["tts"]["audio_s"] - before["tts"]["audio_s"]
    assert spoken_s > 0.3, spoken_s
    # What Ray's Piper synthesized reached the caller: loud samples cover a good part of
    # it (speech has pauses and soft phonemes; a short reply like "Paris." is ~0.6 s).
    pcm16 = resample(peer.received.audio_pcm(), 48_000, 16_000)
    loud_s = float((np.abs(pcm16) > LOUD).sum()) / 16_000
    assert loud_s > 0.3 * spoken_s, f"{loud_s:.2f} s loud of {spoken_s:.2f} s synthesized"
    assert after["render"]["frames"] - before["render"]["frames"] >= 25, "video not rendered on Ray"
    assert len(peer.received.video) >= 25


def test_ray_tts_gives_the_local_voice_and_its_phoneme_timeline(
    ray_serving: RayServing, engines: Engines
) -> None:
    assert ray_serving.tts is not None
    text = "Hello there. Nice to meet you."
    remote = list(ray_serving.tts.synthesize(text))
    local = list(engines.tts.synthesize(text))
    assert (
        [c.text for c in remote] == [c.text for c in local] == ["Hello there.", "Nice to meet you."]
    )
    assert ray_serving.tts.sample_rate == engines.tts.sample_rate
    # Piper samples its durations (noise_w), so the same text is never exactly the same
    # audio twice: compare what is deterministic, and the timing roughly.
    for r, lo in zip(remote, local, strict=True):
        assert r.sample_rate == lo.sample_rate
        assert r.pcm.dtype == np.float32 and np.abs(r.pcm).max() > 0.1
        assert r.duration == pytest.approx(lo.duration, rel=0.2)
        # What the world model turns into visemes arrives whole: the same phonemes, tiling
        # the chunk's audio exactly.
        assert r.phonemes is not None and lo.phonemes is not None
        assert [p.phoneme for p in r.phonemes] == [p.phoneme for p in lo.phonemes]
        assert r.phonemes[0].start == 0.0
        assert r.phonemes[-1].end == pytest.approx(r.duration, abs=1e-6)
        assert all(
            a.end == pytest.approx(b.start, abs=1e-9)
            for a, b in zip(r.phonemes, r.phonemes[1:], strict=False)
        )


def test_render_deployment_batches_frames_of_many_sessions(
    ray_serving: RayServing, engines: Engines
) -> None:
    assets = engines.avatar("default")
    renderer = ray_serving.renderer(engines.config.avatar.bundle, assets.rig, engines.config.render)
    assert renderer is not None
    states = [
        NEUTRAL.with_(jaw_open=0.1 * i, head_yaw=0.02 * i, blink_left=0.1 * i, mode=Mode.SPEAKING)
        for i in range(8)
    ]
    before = ray_serving.stats()["render"]["batch_sizes"]
    start = threading.Barrier(len(states))

    def session_frame(state):  # one session's render thread
        start.wait(timeout=10)
        return renderer.render(state)

    with ThreadPoolExecutor(len(states)) as pool:
        frames = list(pool.map(session_frame, states))
    after = ray_serving.stats()["render"]["batch_sizes"]

    new = {size: n - before.get(size, 0) for size, n in after.items() if n > before.get(size, 0)}
    assert sum(size * n for size, n in new.items()) == len(states), new
    assert max(new) > 1, f"no batch formed: {new}"
    assert renderer.remote_frames == len(states) and renderer.local_frames == 0
    for state, frame in zip(states, frames, strict=True):
        expected = assets.renderer.render(state)
        assert frame.shape == expected.shape and frame.dtype == np.uint8
        assert np.abs(frame.astype(np.int16) - expected.astype(np.int16)).max() <= 2
    assert np.abs(frames[0].astype(np.int16) - frames[-1].astype(np.int16)).max() > 50


async def test_ray_failures_become_the_engines_typed_errors(
    ray_serving: RayServing, engines: Engines, speak
) -> None:
    from streaming.ray_serve.clients import RaySpeechRecognizer, call_async, remote

    pcm = resample(speak("Hello."), 48_000, 16_000)
    # A request that does not finish in time: STTError, which skips the turn.
    impatient = RaySpeechRecognizer(ray_serving.handles["stt"], engines.config.stt, 0.001)
    with pytest.raises(STTError, match="timed out"):
        await impatient.atranscribe(pcm)
    # A typed error raised in the replica comes back as itself, not as a Ray error.
    with pytest.raises(InvalidAudioError) as caught:
        await call_async(
            partial(remote, ray_serving.handles["stt"].transcribe, np.zeros(0, np.float32), 16_000),
            30.0,
            STTError,
            "speech recognition",
        )
    assert type(caught.value) is InvalidAudioError


async def test_engines_load_takes_the_configured_stages_from_ray(ray_serving: RayServing) -> None:
    from models.tts import PiperTTS
    from streaming.ray_serve.clients import RayRenderer, RaySpeechRecognizer

    base = ray_serving.config
    # The LLM is an OpenAI-compatible server here (never called), so no second LLM loads.
    config = base.model_copy(
        update={
            "llm": base.llm.model_copy(update={"backend": "openai"}),
            "serving": base.serving.model_copy(
                update={"ray": base.serving.ray.model_copy(update={"stages": ["stt", "render"]})}
            ),
        }
    )
    loaded = await asyncio.to_thread(Engines.load, config)
    try:
        assert isinstance(loaded.stt, RaySpeechRecognizer)
        assert isinstance(loaded.tts, PiperTTS)  # not in serving.ray.stages: local
        renderer = loaded.avatar("default").renderer
        assert isinstance(renderer, RayRenderer)
        assert "stt" not in loaded.load_seconds and "ray" in loaded.load_seconds
        frame = await asyncio.to_thread(renderer.render, NEUTRAL)
        assert frame.shape == (*loaded.frame_size[::-1], 3) and renderer.remote_frames == 1
    finally:
        await loaded.aclose()
    # Ray was already up when these engines loaded: closing them leaves it running.
    assert (await ray_serving.astats())["stt"]["requests"] >= 1


async def test_readiness_and_liveness_follow_the_ray_app(
    ray_serving: RayServing, engines: Engines, service_config: AppConfig
) -> None:
    """The app goes away (e.g. KubeRay replaced the cluster): readiness drops at once, and
    liveness after ``restart_after_s`` so the orchestrator restarts the worker; when the
    app is back, both recover. Runs last: it takes the module's app down and back up."""
    from ray import serve

    from streaming.ray_serve import remote_engines
    from streaming.ray_serve.app import deploy

    watched = ray_serving.config.serving.ray.model_copy(
        update={"health_interval_s": 0.2, "restart_after_s": 1.0}
    )
    config = service_config.model_copy(
        update={"serving": ray_serving.config.serving.model_copy(update={"ray": watched})}
    )
    server = TestServer(
        create_app(config, engines=remote_engines(engines, ray_serving)), host="127.0.0.1", port=0
    )
    await server.start_server()

    async def probe(path: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            got = await http.get(str(server.make_url(path)))
            return got.status, await got.json()

    async def until(path: str, status: int, timeout: float = 20.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got, body = await probe(path)
            if got == status:
                return body
            assert asyncio.get_running_loop().time() < deadline, (path, got, body)
            await asyncio.sleep(0.1)

    try:
        ready = await until("/readyz", 200)
        assert ready["serving"] == {"ok": True, "error": None}
        await asyncio.to_thread(serve.delete, watched.app_name)
        down = await until("/readyz", 503)
        assert down["serving"]["ok"] is False and watched.app_name in down["serving"]["error"]
        assert (await probe("/healthz"))[0] == 200  # not yet: a blip must not restart it
        dead = await until("/healthz", 503)
        assert dead["status"] == "serving_unreachable"
        await asyncio.to_thread(deploy, ray_serving.config)
        await until("/readyz", 200, timeout=60)
        assert (await probe("/healthz"))[0] == 200
    finally:
        await server.close()
