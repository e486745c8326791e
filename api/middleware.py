"""One pure-ASGI middleware: request log line, body size limit, last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) keeps it cheap: no extra task or response copy per
request. It sits inside Starlette's ServerErrorMiddleware, so an unexpected exception is
logged once here, with its traceback, and answered as a problem without internals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import problem_response

log = logging.getLogger("api.access")
error_log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Probes poll these every few seconds; their lines go to DEBUG so INFO stays readable.
QUIET_PATHS = frozenset({"/health", "/ready"})


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        quiet_paths: Collection[str] = QUIET_PATHS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        status = 0
        limit = self.max_body_bytes

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            if _declared_length(scope) > limit:
                raise BodyTooLarge(limit)
            await self.app(scope, receive_limited, send_and_note)
        except BodyTooLarge:
            if status:
                raise
            await problem_response(
                413,
                "Content Too Large",
                f"the request body must not exceed {limit} bytes",
            )(scope, receive, send_and_note)
        except Exception:
            error_log.exception(
                "unhandled error", extra={"method": scope["method"], "path": scope["path"]}
            )
            if status:
                raise
            await problem_response(
                500,
                "Internal Server Error",
                "the server failed to answer this request; the error is logged",
            )(scope, receive, send_and_note)
        finally:
            path: str = scope["path"]
            level = logging.DEBUG if path in self.quiet_paths else logging.INFO
            if log.isEnabledFor(level):
                duration_ms = round((time.perf_counter() - started_at) * 1000, 2)
                log.log(
                    level,
                    "%s %s %d %.2fms",
                    scope["method"],
                    path,
                    status,
                    duration_ms,
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "duration_ms": duration_ms,
                    },
                )


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
