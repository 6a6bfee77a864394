"""`python -m pipeline.review ...`: the review commands on their own, with settings from the environment
(DOCKET_HOME, DOCKET_CONFIG, ...). `docket review ...` is the same group mounted in the main CLI."""

from functools import cache

from pipeline.app import Docket
from pipeline.review.cli import make_review_app
from pipeline.settings import load_settings


@cache
def _docket() -> Docket:
    return Docket(load_settings())


if __name__ == "__main__":
    make_review_app(_docket)()
