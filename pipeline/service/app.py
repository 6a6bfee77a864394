"""``create_app(settings)``: the FastAPI application of ``docket serve``, and ``serve`` to run it on uvicorn.

One process, one ``Docket``: the encoder, the indexes and the audit log are loaded at start-up
(``ServiceState.warm``), so the first ask pays nothing the later ones do not. The JSON API is under
/api/v1; its OpenAPI document at /openapi.json and the interactive page at /docs.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException

from pipeline.service.deps import ARRIVED
from pipeline.service.errors import error_response, install_error_handlers
from pipeline.service.routes import ask, audit, auth, documents, reviews, users
from pipeline.service.state import ServiceState
from pipeline.settings import DocketSettings

API = "/api/v1"
_MULTIPART_SLACK = 64 * 1024  # the form's own fields and boundaries around the file


class BodyTooLarge(HTTPException):
    """Raised from the body stream itself, so whatever reads it (JSON, a form) stops with a 413."""

    def __init__(self, message: str):
        super().__init__(413, message)


class BodyLimit:
    """413 for a request body over its limit: ``service.max_json_kb`` for JSON, ``service.max_upload_mb``
    for an upload. Checked against Content-Length before the body is read, and counted while it is
    read (a chunked body has no length), so an oversized body is never held whole."""

    def __init__(self, app, settings: DocketSettings):
        self.app = app
        service = settings.service
        self.json_limit = service.max_json_kb * 1024
        self.upload_limit = int(service.max_upload_mb * 1024 * 1024) + _MULTIPART_SLACK
        self.json_message = f"the request body is over {service.max_json_kb} KiB (service.max_json_kb)"
        self.upload_message = f"the upload is over {service.max_upload_mb:g} MiB (service.max_upload_mb)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit, message = (self.upload_limit, self.upload_message) if multipart else (self.json_limit, self.json_message)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            response = error_response(413, "too_large", message)
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return event

        await self.app(scope, counted, send)


class RequestClock:
    """Stamps each request with its arrival (``time.perf_counter()`` under ``deps.ARRIVED`` in its scope),
    outermost, so a route's Server-Timing header counts from there (routes/ask.py)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope[ARRIVED] = time.perf_counter()
        await self.app(scope, receive, send)


def create_app(settings: DocketSettings, *, warm: bool = True) -> FastAPI:
    """The application over one ``Docket`` built from ``settings`` (opened, and warmed, at start-up)."""
    from pipeline.app import software_version

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = ServiceState(settings)
        if warm:
            state.warm()
        app.state.service = state
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="Docket", version=software_version().removeprefix("docket "), lifespan=lifespan,
        description="Questions answered from contracts and filings with cited evidence; every answer, read and "
        "decision in a tamper-evident audit log. Authenticate with `Authorization: Bearer <token>` "
        "(`docket users token NAME`) or the session cookie of POST /api/v1/login.",
        docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    for module in (auth, ask, documents, reviews, audit, users):
        app.include_router(module.router, prefix=API)
    from pipeline.web import install as install_web_app  # the pages and their static files (pipeline/web/)

    install_web_app(app)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(RequestClock)  # added last: the outermost
    return app


def serve(settings: DocketSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service on uvicorn until interrupted (one process: the models are loaded once)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
