"""The ASGI application: the JSON API, the page, limits, security headers and JSON errors.

FastAPI (on Starlette) gives typed query parameters, multipart uploads (python-multipart) and
an OpenAPI description (``/api/openapi.json``) with little code; uvicorn serves it. Its
interactive docs pages are switched off because they load their scripts from a CDN, and the
page must work without a network.

Every error is JSON ``{"error": MESSAGE}``: 4xx for what the request got wrong (the message says
what), 5xx for the service's own failures, whose details go to the log and never to the client.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.retry import ServingError, ServingTimeoutError, ServingUnavailableError
from serving.web.api import Service, api_router
from serving.web.queries import QueryError

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
# Multipart framing around the photo (boundaries, part headers) and the small form fields.
MULTIPART_OVERHEAD = 64 * 1024
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
     b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class LimitsAndHeaders:
    """ASGI middleware: refuses bodies over ``max_body`` bytes (413) and adds security headers.

    A declared ``Content-Length`` over the limit is refused before the body is read; a body
    without one is counted as it arrives and the request fails once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handles one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        too_large = HTTPException(413, f"the request body is over the limit of {self.max_body} "
                                       "bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_body:
            await _error(413, too_large.detail)(scope, receive, send_with_headers)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise too_large  # FastAPI passes an HTTPException out of its body parsing
            return message

        await self.app(scope, counted, send_with_headers)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QueryError)
    async def query_error(_: Request, err: QueryError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_message(err))

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, err: ServingError) -> JSONResponse:
        logging.error("%s %s: the encoder failed: %s", request.method, request.url.path, err)
        if isinstance(err, ServingUnavailableError | ServingTimeoutError):
            return _error(503, "the model server is unavailable; try again")
        return _error(502, "the model server failed to answer this query")

    # The service's single top-level handler: any other failure is logged with its traceback
    # and answered without it.
    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        logging.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return _error(500, "internal error (logged by the service)")


def create_app(service: Service) -> FastAPI:
    """The application serving ``service``; the lifespan starts and stops its version polling."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for holder in service.holders():
            holder.start()
        try:
            yield
        finally:
            for holder in service.holders():
                holder.stop()

    app = FastAPI(title="xmodal search", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    _add_error_handlers(app)
    app.include_router(api_router(service))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"),
                            headers={"Cache-Control": "no-cache"})

    app.add_middleware(LimitsAndHeaders,
                       max_body=service.limits.max_upload_bytes + MULTIPART_OVERHEAD)
    return app

