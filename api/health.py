"""``/health`` (the process answers) and ``/ready`` (its dependencies answer)."""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from api.responses import JSONResponse, dumps, model_response
from api.state import AppState, ReadinessCheck
from models.api import CheckResult, HealthResponse, ReadyResponse

_HEALTH_BODY = dumps(HealthResponse().model_dump())
_MAX_ERROR_CHARS = 300


async def health(request: Request[AppState]) -> Response:
    return Response(_HEALTH_BODY, media_type=JSONResponse.media_type)


async def ready(request: Request[AppState]) -> Response:
    checks = request.state["readiness"]
    timeout = request.state["check_timeout_s"]
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[name], timeout) for name in names))
    by_name = dict(zip(names, results, strict=True))
    down = [name for name, result in by_name.items() if result.status == "down"]
    body = ReadyResponse(status="not_ready" if down else "ready", checks=by_name, down=down)
    return model_response(body, status_code=503 if down else 200)


async def _run(check: ReadinessCheck, limit_s: float) -> CheckResult:
    started = time.perf_counter()
    error: str | None = None
    try:
        if await asyncio.wait_for(check(), limit_s) is False:
            error = "did not answer"
    except TimeoutError:
        error = f"no answer within {limit_s:g} s"
    except Exception as exc:  # any failure of the dependency means "down"; say which
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    if error is not None and len(error) > _MAX_ERROR_CHARS:
        error = error[: _MAX_ERROR_CHARS - 3] + "..."
    if error is None:
        return CheckResult(status="up", latency_ms=latency_ms)
    return CheckResult(status="down", latency_ms=latency_ms, error=error)
