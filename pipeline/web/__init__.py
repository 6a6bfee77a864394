"""The web app: server-rendered pages (Jinja2 and htmx) over the service's own functions and checks.

``install(app)`` adds the pages' router and the vendored static files to the service's FastAPI app.
Every asset is in pipeline/web/static/, so the pages work with no internet access.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")


def install(app) -> None:
    from fastapi.staticfiles import StaticFiles

    from pipeline.web.pages import router

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
