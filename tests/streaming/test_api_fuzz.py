"""Fuzz the HTTP API from its own OpenAPI spec (schemathesis): no 5xx, no hang, still healthy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streaming.config import AppConfig
from streaming.engines import Engines
from tests.streaming.limits import base_url, custom_server, offer_sdp

pytestmark = pytest.mark.timeout(180)

KEY = "fuzz-key-0123456789abcdef"
EXAMPLES = 50
REQUEST_TIMEOUT_S = 15


def _fuzz(spec: dict[str, Any], url: str, headers: dict[str, str], sdp: str) -> list[str]:
    """Run every operation with generated (valid and invalid) inputs; return the problems."""
    schema = schemathesis.openapi.from_dict(spec)
    problems: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in {"/", "/widget.js"}:
            continue
        strategy = st.one_of(
            op.as_strategy(schemathesis.GenerationMode.POSITIVE, headers=headers),
            op.as_strategy(schemathesis.GenerationMode.NEGATIVE, headers=headers),
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            t = time.monotonic()
            resp = case.call(base_url=url, timeout=REQUEST_TIMEOUT_S)
            took = time.monotonic() - t
            label = f"{case.method} {case.formatted_path}"
            _check(resp, label, problems)
            if took > 10:
                problems.append(f"{label}: took {took:.1f}s")

        run()
    _fuzz_uploads(url, headers, problems)
    _fuzz_offers(url, headers, sdp, problems)
    return problems


def _fuzz_offers(url: str, headers: dict[str, str], sdp: str, problems: list[str]) -> None:
    """Real SDP offers with lines dropped or garbled: the SDP parser's error paths."""
    lines = sdp.split("\r\n")
    index = st.integers(0, len(lines) - 1)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
    @given(
        drop=st.sets(index, max_size=4),
        edits=st.lists(st.tuples(index, st.text(max_size=30)), max_size=3),
    )
    def run(drop: set[int], edits: list[tuple[int, str]]) -> None:
        out = list(lines)
        for i, text in edits:
            out[i] = out[i][:2] + text  # keep the "x=" type, garble the value
        body = {"sdp": "\r\n".join(x for i, x in enumerate(out) if i not in drop)}
        resp = requests.post(
            f"{url}/v1/sessions",
            json={**body, "type": "offer"},
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
        )
        _check(resp, f"POST /v1/sessions (drop {sorted(drop)}, edit {edits})", problems)
        if resp.status_code == 201:
            sid = resp.json()["session_id"]
            requests.delete(f"{url}/v1/sessions/{sid}", headers=headers, timeout=10)

    run()


def _check(resp: requests.Response, label: str, problems: list[str]) -> None:
    if resp.status_code >= 500 and resp.status_code != 503:
        problems.append(f"{label} -> {resp.status_code}: {resp.text[:200]}")
    elif resp.status_code >= 400:
        body = resp.json()
        if not (body.get("error", {}).get("code") and body["error"].get("message")):
            problems.append(f"{label} -> {resp.status_code}: not a JSON error: {resp.text[:200]}")


def _fuzz_uploads(url: str, headers: dict[str, str], problems: list[str]) -> None:
    """Random bytes (some behind a PNG/JPEG signature) as avatar uploads."""
    magic = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a"])
    ctype = st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", ""])

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
    @given(prefix=magic, rest=st.binary(max_size=4096), content_type=ctype)
    def run(prefix: bytes, rest: bytes, content_type: str) -> None:
        resp = requests.post(
            f"{url}/v1/avatars",
            data=prefix + rest,
            headers={**headers, "Content-Type": content_type},
            timeout=REQUEST_TIMEOUT_S,
        )
        _check(resp, f"POST /v1/avatars ({content_type}, {len(prefix + rest)} bytes)", problems)

    run()


@pytest.mark.parametrize("with_keys", [False, True], ids=["no-auth", "api-keys"])
async def test_fuzzing_the_api_finds_no_server_errors(
    service_config: AppConfig, engines: Engines, tmp_path: Path, with_keys: bool
) -> None:
    async with (
        custom_server(
            service_config,
            engines,
            api_keys=[KEY] if with_keys else [],
            rate_limit_per_minute=100_000,
            session_rate_limit_per_minute=100_000,
            avatars_dir=tmp_path / "avatars",
            max_avatar_bytes=64 * 1024,
        ) as srv,
        aiohttp.ClientSession() as http,
    ):
        url = base_url(srv)
        spec = await (await http.get(f"{url}/openapi.json")).json()
        paths = set(spec["paths"])
        assert {"/v1/sessions", "/v1/tokens", "/v1/avatars", "/healthz"} <= paths
        headers = {"Authorization": f"Bearer {KEY}"} if with_keys else {}
        problems = await asyncio.to_thread(_fuzz, spec, url, headers, await offer_sdp())
        assert not problems, "\n".join(problems[:20])
        # Still healthy, and any session the fuzzer opened can be closed.
        assert (await http.get(f"{url}/healthz")).status == 200
        listed = await (await http.get(f"{url}/v1/sessions", headers=headers)).json()
        for s in listed["sessions"]:
            await http.delete(f"{url}/v1/sessions/{s['session_id']}", headers=headers)
        # Ready again once the fuzzer's sessions are gone (readiness needs a free slot).
        ready = await http.get(f"{url}/readyz")
        assert ready.status == 200, await ready.text()
