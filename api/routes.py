"""The endpoint table: one entry per operation, feeding both the router and /openapi.json."""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from api.docs import render_docs
from api.health import health, ready
from api.job_routes import JOB_ENDPOINTS
from api.metrics import metrics
from api.openapi import Endpoint, Handler, ResponseSpec, build_openapi
from api.prometheus import prometheus_metrics
from api.responses import dumps
from api.state import AppState
from api.stats import STALE_AFTER_S, stats
from models.api import HealthResponse, MetricsParams, MetricsResponse, ReadyResponse, StatsResponse


async def openapi_json(request: Request[AppState]) -> Response:
    return Response(_openapi_bytes(), media_type="application/json")


async def docs_page(request: Request[AppState]) -> Response:
    return HTMLResponse(_docs_html())


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/health",
        health,
        operation_id="health",
        summary="Liveness: the process answers",
        description="Checks nothing beyond the process itself; does no I/O.",
        tag="health",
        responses={200: ResponseSpec("The process is alive.", HealthResponse)},
    ),
    Endpoint(
        "GET",
        "/ready",
        ready,
        operation_id="ready",
        summary="Readiness: the broker and the database answer",
        description="Sends a Kafka metadata request and `SELECT 1`, each with a short "
        "timeout. 503 names in `down` every dependency that failed.",
        tag="health",
        responses={
            200: ResponseSpec("Every dependency answered.", ReadyResponse),
            503: ResponseSpec("At least one dependency is down; `down` names it.", ReadyResponse),
        },
    ),
    Endpoint(
        "GET",
        "/api/v1/metrics",
        metrics,
        operation_id="listMetrics",
        summary="Window aggregates per device and period",
        description="Stored hourly, daily, weekly and monthly windows, ordered by "
        "`(device_id, period, window_start)`, only windows with readings or energy. "
        "Paginate by passing `next_cursor` back as `cursor` with the same filters.",
        tag="metrics",
        query=MetricsParams,
        responses={200: ResponseSpec("A page of windows.", MetricsResponse)},
        extra_problems={503: "The database did not answer; retry after `Retry-After` seconds."},
    ),
    Endpoint(
        "GET",
        "/api/v1/stats",
        stats,
        operation_id="getStats",
        summary="Processing statistics of all workers and consumer lag",
        description="Sums the counters each worker publishes (rates only over workers seen "
        f"in the last {STALE_AFTER_S:g} s) and lists every worker with its age. Consumer "
        "lag of the worker group on the readings topic is measured by the API; when the "
        "broker does not answer it is null with an `error`.",
        tag="stats",
        responses={200: ResponseSpec("Statistics.", StatsResponse)},
        extra_problems={503: "The database did not answer; retry after `Retry-After` seconds."},
    ),
    *JOB_ENDPOINTS,
    Endpoint(
        "GET",
        "/metrics",
        prometheus_metrics,
        operation_id="prometheusMetrics",
        summary="Prometheus metrics of the whole service",
        description="Prometheus text format: every worker's counters (readings received, "
        "accepted, rejected by reason, duplicates, windows emitted, anomaly windows scored "
        "and flagged) with a `worker` label, sink health, write latency and failures, "
        "consumer lag per partition, and jobs by status with their durations. Open like "
        "the health endpoints: keep it on the internal network.",
        tag="health",
        responses={200: ResponseSpec("Metrics.", media_type="text/plain")},
        extra_problems={503: "The database did not answer; retry after `Retry-After` seconds."},
    ),
    Endpoint(
        "GET",
        "/openapi.json",
        openapi_json,
        operation_id="openapi",
        summary="This API as an OpenAPI 3.1 document",
        tag="docs",
        responses={200: ResponseSpec("The OpenAPI document.", schema={"type": "object"})},
    ),
    Endpoint(
        "GET",
        "/docs",
        docs_page,
        operation_id="docs",
        summary="This API as a readable HTML page (works offline)",
        tag="docs",
        responses={200: ResponseSpec("The documentation page.", media_type="text/html")},
    ),
)


def routes() -> list[Route]:
    """One route per path: Starlette answers 405 from the first route whose path matches,
    so endpoints sharing a path (GET and POST /api/v1/jobs) must share a route for its
    ``Allow`` header to list every method."""
    by_path: dict[str, list[Endpoint]] = {}
    for endpoint in ENDPOINTS:
        by_path.setdefault(endpoint.path, []).append(endpoint)
    return [
        Route(
            path,
            _by_method({e.method: e.handler for e in shared}),
            methods=[e.method for e in shared],
            name=shared[0].operation_id,
        )
        for path, shared in by_path.items()
    ]


def _by_method(handlers: dict[str, Handler]) -> Handler:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request[AppState]) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


@cache
def openapi_document() -> dict[str, Any]:
    return build_openapi(ENDPOINTS)


@cache
def _openapi_bytes() -> bytes:
    return dumps(openapi_document())


@cache
def _docs_html() -> str:
    return render_docs(openapi_document())
