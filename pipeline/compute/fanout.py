"""Items to actors and results back, for review cells and questions on Ray.

Each item goes to the actor with the fewest calls outstanding, at most ``window`` out at once; each
result is handed to ``on_result`` on the calling thread as it arrives (the driver records it there). A
call lost with its worker or node, once Ray's own retries are spent, is resubmitted up to ``retries``
times and then given up with a one-line reason (``on_give_up``). An exception the item's own code raised
is raised here, as it would be locally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pipeline.compute.cluster import retry_note

T = TypeVar("T")


def lost_with_its_worker(error: BaseException) -> bool:
    """A failure of Ray's machinery (a worker, actor or node that died, an object lost with it), as
    opposed to an exception of the code that ran, which Ray hands back as a RayTaskError."""
    from ray.exceptions import RayError, RayTaskError

    while isinstance(error, RayTaskError) and isinstance(error.cause, BaseException):
        error = error.cause
    return isinstance(error, RayError) and not isinstance(error, RayTaskError)


def fan_out(
    actors: Sequence[Any],
    items: Sequence[T],
    submit: Callable[[Any, T], Any],
    on_result: Callable[[T, Any], None],
    on_give_up: Callable[[T, str], None],
    window: int,
    retries: int,
) -> None:
    import ray
    from ray.exceptions import RayTaskError

    load = [0] * len(actors)
    waiting: dict[Any, tuple[int, int]] = {}  # ObjectRef -> (item index, actor index)
    attempts = [0] * len(items)
    queue = list(range(len(items)))[::-1]  # popped from the end: items go out in order

    def send(index: int) -> None:
        which = min(range(len(actors)), key=load.__getitem__)
        load[which] += 1
        waiting[submit(actors[which], items[index])] = (index, which)

    try:
        while queue or waiting:
            while queue and len(waiting) < window:
                send(queue.pop())
            ready, _ = ray.wait(list(waiting), num_returns=1)
            for ref in ready:
                index, which = waiting.pop(ref)
                load[which] -= 1
                try:
                    value = ray.get(ref)
                except Exception as exc:
                    if not lost_with_its_worker(exc):
                        cause = exc.cause if isinstance(exc, RayTaskError) else None
                        raise (cause if isinstance(cause, Exception) else exc) from None
                    attempts[index] += 1
                    if attempts[index] > retries:
                        on_give_up(items[index], f"lost with its Ray worker {attempts[index]} times ({retry_note(exc)})")
                    else:
                        send(index)
                    continue
                on_result(items[index], value)
    finally:
        for ref in waiting:
            ray.cancel(ref)
