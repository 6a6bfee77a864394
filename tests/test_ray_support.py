"""A real two-node Ray cluster on 127.0.0.1 for the tests: a head and one worker node, one CPU each.

Each node is a ``ray start --block`` process in a session of its own, so the node's processes (GCS,
raylet, agents, workers) are its children, and stopping the node kills that process group and nothing
else on the machine (``ray stop`` would stop every Ray on it, other people's included). The fault test
SIGKILLs the worker node's raylet: the node dies as a machine losing power would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")
OBJECT_STORE_BYTES = 200_000_000
STARTED = b"Ray runtime started."  # what ``ray start`` prints once the node's GCS (head) and raylet are up
STARTUP_TIMEOUT = 180.0
# Nodes are declared dead after 3 missed checks 1 s apart (Ray's default is about 30 s).
FAST_FAILURE_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    # Two nodes on one host must not share the agents' default ports (52365 and the like).
    return [
        f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
    ]


@dataclass
class Node:
    process: subprocess.Popen
    log: Path

    def pids(self) -> list[int]:
        """The node process and its descendants (from /proc: no psutil needed)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def raylet_pid(self) -> int:
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except OSError:
                continue
        raise AssertionError(f"no raylet under node process {self.process.pid} (log: {self.log})")

    def wait_until_started(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until ``ray start`` says the node is up. On a loaded machine a head's GCS can take longer to
        listen than a driver's connect retries last (seen in CI: every test of the module errored)."""
        deadline = time.monotonic() + timeout
        while STARTED not in self.log.read_bytes():
            if self.process.poll() is not None:
                raise AssertionError(f"ray start exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"ray start not up after {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the node is left, its group only
        except ProcessLookupError:
            pass
        self.process.wait(timeout=20)


@dataclass
class TwoNodeCluster:
    address: str
    temp_dir: Path
    head: Node
    env: dict[str, str]  # what a process needs to join: the cluster's own token (Ray's token authentication)
    workers: list[Node] = field(default_factory=list)

    @classmethod
    def start(cls) -> TwoNodeCluster:
        temp_dir = Path(tempfile.mkdtemp(prefix="rayt-", dir="/tmp"))  # short: Ray's socket paths must fit
        # A token of this cluster's own, whatever ~/.ray/auth_token holds (ray start would use that file).
        env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        # This process is a driver of the cluster: Ray reads the mode when it is first imported (restored by stop).
        os.environ.update(env)
        port = free_port()
        head = _start_node(
            temp_dir / "head.log", env,
            ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
             f"--ray-client-server-port={free_port()}"],
        )
        cluster = cls(f"127.0.0.1:{port}", temp_dir, head, env)
        try:
            head.wait_until_started()
            cluster.wait_for_nodes(1)
            cluster.add_worker()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_worker(self) -> Node:
        """A worker node (again): what is left of a killed one is stopped first."""
        for dead in self.workers:
            dead.stop()
        self.wait_for_nodes(1)
        node = _start_node(self.temp_dir / f"worker-{len(self.workers)}.log", self.env, [f"--address={self.address}"])
        self.workers.append(node)
        node.wait_until_started()
        self.wait_for_nodes(2)
        return node

    def alive_nodes(self) -> list[dict]:
        import ray

        return [n for n in ray.nodes() if n.get("Alive")]

    def wait_for_nodes(self, count: int, timeout: float = 120.0) -> None:
        import ray

        deadline = time.monotonic() + timeout
        while not ray.is_initialized():
            try:
                ray.init(address=self.address, namespace="docket", log_to_driver=False, logging_level="warning")
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        while len(self.alive_nodes()) != count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} alive Ray nodes, have {len(self.alive_nodes())} ({self.temp_dir})")
            time.sleep(0.5)

    def worker_node_id(self) -> str:
        import ray

        head_ids = {n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("node:__internal_head__")}
        others = [n["NodeID"] for n in self.alive_nodes() if n["NodeID"] not in head_ids]
        assert len(others) == 1, others
        return others[0]

    def kill_worker_raylet(self) -> None:
        """The fault: the worker node's raylet SIGKILLed (its workers die with it)."""
        node = self.workers[-1]
        os.kill(node.raylet_pid(), signal.SIGKILL)

    def stop(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for name in self.env:
            os.environ.pop(name, None)
        for node in [*self.workers, self.head]:
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _start_node(log: Path, cluster_env: dict[str, str], args: list[str]) -> Node:
    # Unbuffered, so the log shows "Ray runtime started." when it is printed (wait_until_started reads it).
    env = {**os.environ, **FAST_FAILURE_ENV, **cluster_env, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    command = [
        str(RAY), "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
        f"--object-store-memory={OBJECT_STORE_BYTES}", *_node_ports(), *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Node(process, log)


@pytest.fixture(scope="module")
def ray_nodes():
    """A head and one worker node (one CPU each), this process their driver; torn down after the module."""
    cluster = TwoNodeCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
