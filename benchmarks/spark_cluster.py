#!/usr/bin/env python3
"""A small standalone Spark cluster on this machine, with a Thrift (HiveServer2) endpoint in front.

    python benchmarks/spark_cluster.py start DIR     # prints the Thrift port and a dbt output, as JSON
    python benchmarks/spark_cluster.py stop DIR      # stops what `start DIR` started, by pid
    python benchmarks/spark_cluster.py status DIR

What runs (every JVM from pyspark's own jars, through `spark-class` / `spark-submit`):

- a standalone master (`org.apache.spark.deploy.master.Master`),
- two workers (`org.apache.spark.deploy.worker.Worker`), 1 core and 1 GiB of executor memory each,
- the Thrift server (`org.apache.spark.sql.hive.thriftserver.HiveThriftServer2`), an application of
  that master: dbt's sessions are its sessions, and their queries run on the workers' executors.

Everything binds to 127.0.0.1, on ports chosen free at start. The warehouse is DIR/warehouse.

The metastore is Derby, embedded in the Thrift server's JVM (DIR/metastore_db). The Thrift server
is the only process that opens the metastore, and it serves every session through it at once:
that is how a Thrift endpoint is deployed (Databricks SQL, EMR and Dataproc each put one service in
front of their metastore). The two alternatives were weighed and left: Derby's network server
(derbynet, derbyclient) is not among pyspark's jars, and no package on PyPI ships PostgreSQL's JDBC
driver plainly (only inside other tools' bundles), so either would need a download from outside the
package registries. What the tests need from "several sessions" - two dbt builds at once, a reader
during a promotion - is several Thrift sessions, which this serves.

The pids are written to DIR/cluster.json as each process starts, so `stop` finds them even after a
start that failed half-way; `Cluster.stop()` is also registered with atexit.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
STATE = "cluster.json"
WORKERS = 2
# Small JVMs: the machine is shared. The daemons need little; the Thrift server is the driver.
DAEMON_MEMORY = "512m"
DRIVER_MEMORY = "768m"
EXECUTOR_MEMORY = "512m"
WORKER_MEMORY = "1g"
START_TIMEOUT = 420.0


class ClusterError(Exception):
    """The cluster could not be started or found; the message says where to look."""


def spark_home() -> Path:
    """pyspark's own directory, which holds the jars and `bin/spark-class`."""
    try:
        import pyspark
    except ImportError as exc:  # pragma: no cover - the caller checks first
        raise ClusterError("pyspark is not installed: pip install -e '.[spark]'") from exc
    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A TCP port free on HOST now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    """Whether something accepts connections on HOST:`port`."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((HOST, port)) == 0


@dataclass
class Cluster:
    """What one `start` made: where it lives, its ports and the pid of each process it started."""

    directory: str
    master_port: int = 0
    master_ui_port: int = 0
    thrift_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def root(self) -> Path:
        """The cluster's directory."""
        return Path(self.directory)

    @property
    def warehouse(self) -> Path:
        """Where the Thrift server keeps its tables."""
        return self.root / "warehouse"

    @property
    def master_url(self) -> str:
        """The master's spark:// URL."""
        return f"spark://{HOST}:{self.master_port}"

    def save(self) -> None:
        """Write cluster.json atomically, so that `stop` finds every pid even after a failed start."""
        tmp = self.root / (STATE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, self.root / STATE)

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        """The cluster `start DIR` made, from its cluster.json."""
        path = directory / STATE
        if not path.exists():
            raise ClusterError(f"no cluster was started in {directory} ({STATE} is missing)")
        return cls(**json.loads(path.read_text()))

    def dbt_output(self, schema: str, threads: int = 2) -> dict[str, object]:
        """A dbt-spark output for this cluster's Thrift server."""
        return {
            "type": "spark",
            "method": "thrift",
            "host": HOST,
            "port": self.thrift_port,
            "schema": schema,
            "threads": threads,
            "connect_retries": 3,
            "connect_timeout": 10,
        }

    # --- starting --------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        home = spark_home()
        conf = self.root / "conf"  # empty: no spark-defaults or log4j of the user's leaks in
        conf.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_", "HADOOP_"))}
        env.update(
            SPARK_HOME=str(home),
            SPARK_CONF_DIR=str(conf),
            SPARK_LOCAL_IP=HOST,
            SPARK_LOCAL_HOSTNAME="localhost",
            SPARK_MASTER_HOST=HOST,
            SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
            SPARK_WORKER_DIR=str(self.root / "work"),
            SPARK_LOCAL_DIRS=str(self.root / "tmp"),
            SPARK_NO_DAEMONIZE="1",
        )
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        # A session of its own: `stop` ends the process group (a worker's executors with it),
        # and a Ctrl-C meant for the caller does not reach the cluster half-way.
        proc = subprocess.Popen(
            argv, cwd=self.root, env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.pids[name] = proc.pid
        self.save()

    def _wait(self, what: str, ready, deadline: float) -> None:
        while not ready():
            dead = [name for name, pid in self.pids.items() if not _alive(pid)]
            if dead:
                raise ClusterError(f"{', '.join(dead)} exited while waiting for {what}: see {self.root / 'logs'}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}: see {self.root / 'logs'}")
            time.sleep(0.5)

    def _alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.master_ui_port}/json/", timeout=2) as response:
                return int(json.loads(response.read()).get("aliveworkers", 0))
        except (OSError, ValueError):
            return 0

    def _master_argv(self, spark_class: str) -> list[str]:
        return [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            HOST,
            "--port",
            str(self.master_port),
            "--webui-port",
            str(self.master_ui_port),
        ]

    def _worker_argv(self, spark_class: str, n: int) -> list[str]:
        return [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            HOST,
            "--port",
            str(free_port()),
            "--webui-port",
            str(free_port()),
            "--cores",
            "1",
            "--memory",
            WORKER_MEMORY,
            "--work-dir",
            str(self.root / "work" / f"worker{n}"),
            self.master_url,
        ]

    def _thrift_argv(self, home: Path) -> list[str]:
        """`spark-submit` of the Thrift server, an application of this cluster's master, its metastore in DIR."""
        metastore = self.root / "metastore_db"
        confs = {
            "spark.master": self.master_url,
            "spark.driver.host": HOST,
            "spark.driver.bindAddress": HOST,
            "spark.driver.memory": DRIVER_MEMORY,
            "spark.executor.memory": EXECUTOR_MEMORY,
            "spark.executor.cores": "1",
            "spark.cores.max": str(WORKERS),
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(self.warehouse),
            "spark.sql.catalogImplementation": "hive",
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={self.root} "
            f"-Dderby.stream.error.file={self.root / 'logs' / 'derby.log'}",
            # Few partitions: the tests' tables are tiny and every task costs a round trip.
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.adaptive.enabled": "true",
            "spark.hadoop.hive.server2.thrift.bind.host": HOST,
            "spark.hadoop.hive.server2.thrift.port": str(self.thrift_port),
            "spark.hadoop.hive.server2.transport.mode": "binary",
        }
        submit = [
            str(home / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "--name",
            "dot-tasks-thrift",
        ]
        for key, value in confs.items():
            submit += ["--conf", f"{key}={value}"]
        return [
            *submit,
            "--hiveconf",
            f"hive.server2.thrift.bind.host={HOST}",
            "--hiveconf",
            f"hive.server2.thrift.port={self.thrift_port}",
            "spark-internal",
        ]

    def start(self, timeout: float = START_TIMEOUT) -> Cluster:
        """Start the master, then the workers, then the Thrift server, each once the one before answers."""
        started = time.monotonic()
        deadline = started + timeout
        for sub in ("logs", "work", "tmp", "warehouse"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        home = spark_home()
        spark_class = str(home / "bin" / "spark-class")
        self.master_port, self.master_ui_port, self.thrift_port = free_port(), free_port(), free_port()
        self._spawn("master", self._master_argv(spark_class))
        self._wait("the master", lambda: answers(self.master_port) and answers(self.master_ui_port), deadline)
        for n in range(1, WORKERS + 1):
            self._spawn(f"worker{n}", self._worker_argv(spark_class, n))
        self._wait(f"{WORKERS} workers to register", lambda: self._alive_workers() >= WORKERS, deadline)
        self._spawn("thrift", self._thrift_argv(home))
        self._wait(f"the Thrift server on port {self.thrift_port}", lambda: answers(self.thrift_port), deadline)
        self.started_seconds = round(time.monotonic() - started, 1)
        self.save()
        return self

    # --- stopping --------------------------------------------------------------

    def stop(self, grace: float = 30.0) -> None:
        """End every process this cluster started, by pid (and its process group), the driver first."""
        order = ["thrift", *sorted(n for n in self.pids if n.startswith("worker")), "master"]
        for name in [n for n in order if n in self.pids] + [n for n in self.pids if n not in order]:
            _end(self.pids[name], grace)
        self.pids.clear()
        if self.root.exists():
            self.save()

    def memory_mib(self) -> dict[str, int]:
        """Resident memory of each process group this cluster started (executors count with their worker)."""
        out: dict[str, int] = {}
        for name, pid in self.pids.items():
            out[name] = sum(_rss_kib(p) for p in _group(pid)) // 1024
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - not ours
        return True
    # A zombie child of ours (this process started it and has not reaped it) is not alive.
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == 0
    except ChildProcessError:
        return True


def _group(pid: int) -> list[int]:
    """The pids of the process group `pid` leads (it was started in a session of its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pid:  # pgrp
                members.append(int(entry.name))
    return members


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _end(pid: int, grace: float) -> None:
    """SIGTERM to the group `pid` leads, SIGKILL to what is left after `grace` seconds."""
    members = _group(pid) or [pid]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - the pid was reused by someone else's process
            return
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 10)
        while time.monotonic() < deadline and any(_alive(p) for p in members):
            time.sleep(0.2)
        if not any(_alive(p) for p in members):
            return


def start(directory: Path, timeout: float = START_TIMEOUT) -> Cluster:
    """Start a cluster in `directory`; it is stopped at exit unless `stop()`ped first."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(str(directory.resolve()))
    atexit.register(cluster.stop)
    try:
        return cluster.start(timeout)
    except BaseException:
        cluster.stop()
        raise


def main(argv: list[str] | None = None) -> int:
    """`start`, `stop` or `status` of the cluster in DIR; exit 1 with one line on stderr when it fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            cluster = start(args.directory)
            atexit.unregister(cluster.stop)  # started for the user: it outlives this command
            print(
                json.dumps(
                    {
                        "thrift_port": cluster.thrift_port,
                        "master": cluster.master_url,
                        "started_seconds": cluster.started_seconds,
                        "memory_mib": cluster.memory_mib(),
                        "dbt_output": cluster.dbt_output("dev"),
                    },
                    indent=2,
                )
            )
        elif args.action == "stop":
            Cluster.load(args.directory).stop()
        else:
            cluster = Cluster.load(args.directory)
            alive = {name: _alive(pid) for name, pid in cluster.pids.items()}
            print(
                json.dumps(
                    {
                        "thrift_port": cluster.thrift_port,
                        "alive": alive,
                        "thrift_answers": bool(cluster.thrift_port) and answers(cluster.thrift_port),
                    }
                )
            )
    except ClusterError as exc:
        print(f"spark_cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
