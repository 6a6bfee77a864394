"""`python -m pipeline.review ...`: the review commands on their own, with settings from the environment
(DOCKET_HOME, DOCKET_CONFIG, ...). `docket review ...` is the same group mounted in the main CLI."""

from functools import cache

from pipeline.app import Docket
from pipeline.cli.review import make_review_app
from pipeline.identity.actors import os_identity, untrusted_actor_problem
from pipeline.settings import ConfigError, load_settings


@cache
def _docket() -> Docket:
    # As in `docket`: the actor is the OS user, never DOCKET_ACTOR (docs/audit.md, "Who the actor is").
    problem = untrusted_actor_problem()
    if problem:
        raise ConfigError(problem)
    return Docket(load_settings(actor=os_identity().actor))


if __name__ == "__main__":
    make_review_app(_docket)()
