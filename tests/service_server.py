"""A real `docket serve` process for the service tests: a temporary workspace with one sample contract
ingested (once per test session, then copied), users of every role, and httpx clients with their tokens.

Nothing is mocked: the server is the installed CLI on uvicorn, the workspace is SQLite (or PostgreSQL
schemas), and the users, grants and tokens are made with the identity layer's own functions.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from conftest import DRIVEN, SAMPLES

COLLECTION = "deals"
SAMPLE = SAMPLES / DRIVEN
ROLES = ("reader", "reviewer", "auditor", "admin")
READY_TIMEOUT_S = 180.0


def docket_command() -> list[str]:
    installed = Path(sys.executable).with_name("docket")
    return [str(installed)] if installed.is_file() else [sys.executable, "-m", "pipeline.cli"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_") and k != "MISTRAL_API_KEY"}
    env.update({"DOCKET_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}, **extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ingested_template(base: Path, registry_url: str | None = None, audit_url: str | None = None) -> Path:
    """A workspace with SAMPLE ingested into COLLECTION, made once under ``base`` (SQLite) and reused."""
    template = base / "service-template"
    if registry_url is None and (template / ".ready").exists():
        return template
    from pipeline.app import Docket
    from pipeline.documents import ingest_documents
    from pipeline.settings import load_settings

    home = template if registry_url is None else base / f"service-pg-{os.getpid()}-{time.monotonic_ns()}"
    docket = Docket(load_settings(home=home, registry_url=registry_url, audit_url=audit_url))
    report = ingest_documents(docket, [SAMPLE], COLLECTION)
    assert report.count("added") == 1, report.results
    docket.audit.close()
    if registry_url is None:
        (template / ".ready").touch()
    return home


@dataclass
class Server:
    base_url: str
    home: Path
    process: subprocess.Popen
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> bearer token
    log_path: Path | None = None

    def client(self, user: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base_url + "/api/v1", headers=headers, timeout=120, **kw)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def add_users(home: Path, registry_url: str | None = None, audit_url: str | None = None,
              granted: dict[str, str] | None = None) -> dict[str, str]:
    """One user per role granted COLLECTION (``<role>``) and one granted nothing (``<role>-nogrant``); their tokens.

    Made as the OS user, exactly as `docket users add/grant/token` makes them."""
    from pipeline.app import Docket
    from pipeline.identity.actors import IdentityError, os_identity
    from pipeline.identity.models import identity_sessions
    from pipeline.identity.tokens import issue_token, parse_duration
    from pipeline.identity.users import add_user, grant
    from pipeline.settings import load_settings

    docket = Docket(load_settings(home=home, registry_url=registry_url, audit_url=audit_url, actor=os_identity().actor))
    me = os_identity()
    tokens = {}
    with identity_sessions(docket).begin() as session:
        for role in ROLES:
            for name, grant_it in ((role, True), (f"{role}-nogrant", False)):
                add_user(session, docket.audit, me, name, role, f"{name}-password-123")
                if grant_it:
                    try:
                        grant(session, docket.audit, me, name, COLLECTION)
                    except IdentityError:  # a role that takes no grants (its scope is all or nothing)
                        pass
                tokens[name] = issue_token(session, docket.audit, me, name, parse_duration("30d")).token
    docket.audit.close()
    return tokens


def start_server(home: Path, log_path: Path, **env: str) -> Server:
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen([*docket_command(), "serve", "--port", str(port)], env=clean_env(home, **env),
                               stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", home, process, log_path=log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"docket serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/api/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise AssertionError(f"docket serve was not ready within {READY_TIMEOUT_S} s:\n{server.log()}")


def copy_workspace(template: Path, home: Path) -> Path:
    shutil.copytree(template, home, ignore=shutil.ignore_patterns(".ready"))
    return home
