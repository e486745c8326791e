"""``GET /api/v1/metrics``: stored window aggregates, filtered and paginated by keyset."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.errors import DependencyUnavailable, InvalidParameters
from api.params import metrics_query
from api.responses import JSONResponse
from api.state import AppState
from models.api import FieldError, MetricItem
from storage.base import InvalidCursor


async def metrics(request: Request[AppState]) -> Response:
    query = metrics_query(request.query_params)
    try:
        page = await request.state["reader"].query_metrics(query)
    except InvalidCursor as exc:
        raise InvalidParameters(
            [FieldError(field="cursor", message="is not a cursor issued by this service")]
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise DependencyUnavailable(
            "database", f"metrics could not be read: {type(exc).__name__}"
        ) from exc
    # Items go out through MetricItem.payload (the schema's own converter), not a
    # per-item model validation: a page of 1000 would cost several milliseconds more.
    return JSONResponse(
        {
            "items": [MetricItem.payload(window) for window in page.items],
            "next_cursor": page.next_cursor,
        }
    )
