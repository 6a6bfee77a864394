"""What one service process holds: the warm ``Docket``, the ingest/review jobs, the rate limiter, the page cache.

Requests act through ``ServiceState.docket_for(principal)``: a view of the one ``Docket`` that shares its
store, reasoner and audit log (the warm parts) but whose settings name the caller as the actor, so
``ask``, ``ingest_documents``, reviews and sign-offs record the authenticated user, exactly as the CLI
records the OS user, through the same functions.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from pipeline.app import Docket
from pipeline.service.group_commit import GroupCommitLog
from pipeline.settings import DocketSettings


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who, with which role, and how that was established."""

    name: str
    role: str  # reader | reviewer | auditor | admin
    via: str  # token | session | proxy
    user: Any = None  # the identity layer's own user record
    limit_key: str = ""  # what the rate limit counts against (a token, a session, an address)

    @property
    def actor(self) -> str:
        """The actor of the entries this caller makes: how they were established, then who (``token:alice``)."""
        return self.user.actor if self.user is not None else f"{self.via}:{self.name}"


@dataclass
class Job:
    id: str
    kind: str  # ingest | review
    owner: str
    status: str = "queued"  # queued | running | done | failed
    stage: str = "queued"
    done: int = 0
    total: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "owner": self.owner, "status": self.status, "stage": self.stage,
            "done": self.done, "total": self.total, "result": self.result, "error": self.error,
            "created_at": self.created_at, "finished_at": self.finished_at,
        }


class Jobs:
    """Background work with ids: ingests one at a time (the store has one writer), reviews beside them."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ingest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docket-ingest")
        self._reviews = ThreadPoolExecutor(max_workers=2, thread_name_prefix="docket-review")

    def submit(self, kind: str, owner: str, work: Callable[[Job], dict[str, Any]]) -> Job:
        job = Job(uuid.uuid4().hex[:16], kind, owner)
        with self._lock:
            self._jobs[job.id] = job

        def run() -> None:
            job.status = job.stage = "running"
            try:
                job.result = work(job) or {}
                job.status = "done"
            except Exception as exc:  # the job's error is its result; the server keeps serving
                job.status, job.error = "failed", str(exc) or type(exc).__name__
            finally:
                job.stage = job.status
                job.finished_at = time.time()

        (self._ingest if kind == "ingest" else self._reviews).submit(run)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def shutdown(self) -> None:
        self._ingest.shutdown(wait=True, cancel_futures=True)
        self._reviews.shutdown(wait=False, cancel_futures=True)


class RateLimiter:
    """A sliding one-minute window per key: ``allow`` gives None, or the seconds until the next request fits."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(1, int(hits[0] + 60 - now + 0.999))
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle keys
                for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - 60]:
                    del self._hits[stale]
            return None


class PageCache:
    """Rendered page PNGs, most recently used kept (a page with its boxes is rendered once)."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple, png: bytes) -> None:
        with self._lock:
            self._items[key] = png
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


class ChunkBoxes:
    """Each chunk's boxes on its page, as the registry has them, kept for the chunks answers cite most
    recently. A chunk row is never changed once written (a new version of a document is new chunks),
    so what is kept cannot go stale."""

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, list] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, chunk_ids: list[int], load: Callable[[list[int]], dict[int, list]]) -> dict[int, list]:
        with self._lock:
            found = {cid: self._items[cid] for cid in chunk_ids if cid in self._items}
            for cid in found:
                self._items.move_to_end(cid)
        missing = [cid for cid in dict.fromkeys(chunk_ids) if cid not in found]
        if missing:
            loaded = load(missing)
            with self._lock:
                for cid, boxes in loaded.items():
                    self._items[cid] = boxes
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            found.update(loaded)
        return found


class ServiceState:
    def __init__(self, settings: DocketSettings) -> None:
        self.settings = settings
        self.docket = Docket(settings)
        # Every entry the service makes (answers, reviews, identity events) goes through one writer
        # thread that commits what is queued together (pipeline/service/group_commit.py).
        self.audit = GroupCommitLog(self.docket.audit)
        self.docket.__dict__["audit"] = self.audit  # Docket.audit is a cached_property: this is its value
        self.jobs = Jobs()
        self.limiter = RateLimiter(settings.service.rate_limit_per_minute)
        self.pages = PageCache()
        self.boxes = ChunkBoxes()

    def warm(self) -> None:
        """Load what the first ask would otherwise pay for: the encoder's question path, the indexes, the log."""
        docket = self.docket
        _ = docket.audit.size
        store = docket.store
        store.encoder.encode_for_question(["warm up"])
        store.vectors()
        store.lexical()
        _ = docket.reasoner

    def docket_for(self, principal: Principal) -> Docket:
        """The shared Docket, acting as ``principal`` (see the module's docstring)."""
        view = Docket.__new__(Docket)
        view.settings = self.docket.settings.model_copy(update={"actor": principal.actor})
        for warm in ("store", "audit", "reasoner"):  # cached_property values: share the loaded objects
            view.__dict__[warm] = getattr(self.docket, warm)
        return view

    def close(self) -> None:
        self.jobs.shutdown()
        self.audit.close()
