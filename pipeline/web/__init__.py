"""The web app: server-rendered pages (Jinja2 and htmx) over the service's own functions and checks.

The pages are split by area, one module and router each: ``auth`` (log in and out, the home page),
``ask``, ``documents`` (the list, upload and its job, the page viewer), ``audit`` and ``reviews``;
``common`` holds what they all use (the visitor, the role checks, rendering and error pages).
``install(app)`` adds their routers and the vendored static files to the service's FastAPI app.
Every asset is in pipeline/web/static/, so the pages work with no internet access.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")


def install(app) -> None:
    from fastapi.staticfiles import StaticFiles

    from pipeline.web import ask, audit, auth, documents, reviews

    for module in (auth, ask, documents, audit, reviews):  # the order the pages were declared in, kept
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
