"""Errors as JSON: ``{"error": {"code": ..., "message": ...}}``, with a message a person can act on.

Every failure the service can foresee is an ``ApiError`` with its HTTP status; FastAPI's own (a body
that does not validate, an unknown route, a wrong method) are turned into the same shape, and so is
anything unforeseen (500, with the details in the server's log, never in the answer).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("docket.service")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def not_found(what: str, ref: object, hint: str = "") -> ApiError:
    """404 for an unknown id, and for one outside the caller's grant: the same words, so a name does not leak."""
    return ApiError(404, "not_found", f"{what} {ref!s}: no such {what} you can see" + (f"; {hint}" if hint else ""))


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
    429: "rate_limited",
}


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "") + "; see /docs for the request's schema"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"no endpoint {request.url.path}; /docs lists them"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; /docs lists the methods"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from audit.errors import AuditLockTimeout

        if isinstance(exc, AuditLockTimeout):  # busy, not broken: retry
            return error_response(503, "audit_busy", f"{exc}; retry shortly", {"Retry-After": "2"})
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "unexpected server error; the server log has the details")
