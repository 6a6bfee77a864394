"""`docket serve`: Docket's HTTP API (FastAPI on uvicorn), over the same composition root and functions as the CLI.

``create_app(settings)`` builds the application; one process holds one ``Docket`` (models and indexes
warm) for every request. See docs/service.md.
"""
