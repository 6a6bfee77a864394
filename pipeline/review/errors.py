"""The error of the review package that a user can act on (the CLI prints it as one line, exit 2)."""


class ReviewError(Exception):
    """A review that cannot start or go on; ``str()`` is one line saying what to do."""
