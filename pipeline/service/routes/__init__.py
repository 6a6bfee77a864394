"""One module per group of routes, each an ``APIRouter`` mounted under /api/v1 by ``create_app``."""
