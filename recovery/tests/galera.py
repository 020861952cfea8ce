"""Throwaway MariaDB servers of our own: a 3-node Galera cluster on loopback ports
(test_cluster.py) or one plain server to kill (test_database_crash.py).

Each node is a mariadbd process of our own: its own datadir, port, socket, group
communication, IST and rsync-SST ports (all picked free at start), the first bootstrapped
with --wsrep-new-cluster, the others joining it by SST. Nodes are stopped by their pid;
the system MariaDB on 3306 is never touched. Needs Debian's mariadb-server (wsrep built
in), the galera-4 provider and rsync.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"
PROVIDER = "/usr/lib/galera/libgalera_smm.so"
INSTALL_DB = "mariadb-install-db"
CLUSTER_NAME = "tradeops_test"
START_SECONDS = 90  # a node normally answers within 2-10 s; SST of a fresh datadir adds a few
STOP_SECONDS = 30


def server_missing() -> str | None:
    """Why a MariaDB server of our own cannot start on this machine, or None when it can."""
    if not os.access(MARIADBD, os.X_OK):
        return f"{MARIADBD} is not installed (Debian package mariadb-server)"
    for tool in (INSTALL_DB, "mariadb"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (Debian packages mariadb-server, mariadb-client)"
    return None


def galera_missing() -> str | None:
    """Why a Galera cluster cannot start on this machine, or None when it can."""
    missing = server_missing()
    if missing:
        return missing
    if not Path(PROVIDER).is_file():
        return f"{PROVIDER} is not installed (Debian package galera-4)"
    for tool in ("rsync", "wsrep_sst_rsync"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (Debian packages rsync, mariadb-server)"
    return None


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound once by the kernel's choice, then released)."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


@dataclass
class Node:
    index: int
    folder: Path
    port: int
    group_port: int
    ist_port: int
    sst_port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        return self.folder / "data"

    @property
    def socket(self) -> Path:
        return self.folder / "mysqld.sock"

    @property
    def log(self) -> Path:
        return self.folder / "error.log"

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, *, database: str = "") -> str:
        """Run SQL through the node's socket with the mariadb client; its output."""
        command = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B"]
        command += ["-e", statement] + ([database] if database else [])
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"node {self.index}: {statement[:80]}: {done.stderr.strip()}")
        return done.stdout.strip()

    def sql_file(self, path: Path, *, database: str) -> None:
        command = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", database]
        with path.open() as script:
            done = subprocess.run(command, stdin=script, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"node {self.index}: {path.name}: {done.stderr.strip()}")

    def status(self, name: str) -> str:
        line = self.sql(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return line.split("\t", 1)[1] if "\t" in line else ""

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no error log)"
        return "\n".join(text.splitlines()[-lines:])


def node_user() -> str:
    """The account the nodes run as.

    As root, the joiner's rsync daemon (started by the SST script) switches to uid nobody,
    which cannot write a root-owned datadir; so root runs the nodes as Debian's `mysql`
    account, like the packaged server. Anyone else runs them as themselves.
    """
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("mysql")
    except KeyError:
        return "root"
    return "mysql"


class LocalServers:
    """Servers whose files live in a fresh folder under /tmp (the node account must be able
    to reach them, which a 0700 pytest tmp_path does not allow); remove() deletes it.

    galera=False: plain servers (no wsrep), each on its own, started in turn.
    flush_log: innodb_flush_log_at_trx_commit (1: durable at every commit, the default).
    """

    def __init__(self, *, size: int = 3, galera: bool = True, flush_log: int = 1) -> None:
        self.user = node_user()
        self.galera = galera
        self.flush_log = flush_log
        self.folder = Path(tempfile.mkdtemp(prefix="tradeops-galera-" if galera else "tradeops-mariadb-"))
        self.folder.chmod(0o755)
        ports = free_ports(4 * size)
        self.nodes = [
            Node(i, self.folder / f"node{i}", *ports[4 * i : 4 * i + 4])  # noqa: E203
            for i in range(size)
        ]

    def start(self) -> None:
        """Install one datadir, copy it to every node, bootstrap node 0, join the rest."""
        template = self.folder / "template"
        subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={template}", f"--user={self.user}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            shutil.copytree(template, node.datadir)
        if self.user != "root":
            subprocess.run(["chown", "-R", f"{self.user}:", str(self.folder)], check=True)
        for node in self.nodes:
            self._launch(node, bootstrap=node.index == 0)
            self._wait_ready(node)
        for node in self.nodes if not self.galera else self.nodes[:1]:
            self._tcp_root(node)

    def _tcp_root(self, node: Node) -> None:
        # TCP logins from 127.0.0.1 as root, like the system server; replicated to all nodes.
        node.sql(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; "
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"
        )

    def _launch(self, node: Node, *, bootstrap: bool) -> None:
        command = [
            MARIADBD, "--no-defaults", f"--user={self.user}", f"--datadir={node.datadir}",
            f"--port={node.port}", "--bind-address=127.0.0.1", f"--socket={node.socket}",
            f"--pid-file={node.folder / 'mysqld.pid'}", f"--log-error={node.log}",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
            "--max-connections=100", "--skip-name-resolve=0",
            f"--innodb-flush-log-at-trx-commit={self.flush_log}",
        ]  # fmt: skip
        if self.galera:
            command += self._galera_options(node, bootstrap=bootstrap)
        node.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def _galera_options(self, node: Node, *, bootstrap: bool) -> list[str]:
        members = ",".join(f"127.0.0.1:{n.group_port}" for n in self.nodes)
        options = (
            f"gmcast.listen_addr=tcp://127.0.0.1:{node.group_port};ist.recv_addr=127.0.0.1:{node.ist_port};"
            "gcache.size=64M;pc.recovery=false"
        )
        command = [
            "--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON", f"--wsrep-provider={PROVIDER}", f"--wsrep-cluster-name={CLUSTER_NAME}",
            f"--wsrep-cluster-address=gcomm://{'' if bootstrap else members}",
            f"--wsrep-node-name=node{node.index}", f"--wsrep-node-address=127.0.0.1:{node.group_port}",
            f"--wsrep-provider-options={options}", "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address=127.0.0.1:{node.sst_port}",
        ]  # fmt: skip
        return command + (["--wsrep-new-cluster"] if bootstrap else [])

    def _answers(self, node: Node) -> bool:
        if not self.galera:
            return node.sql("SELECT 1") == "1"
        return node.status("wsrep_local_state_comment") == "Synced" and node.status("wsrep_ready") == "ON"

    def _wait_ready(self, node: Node) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert node.process is not None
            if node.process.poll() is not None:
                raise RuntimeError(f"node {node.index} exited {node.process.returncode}:\n{node.tail()}")
            if node.socket.exists():
                try:
                    if self._answers(node):
                        return
                except RuntimeError:
                    pass  # not accepting connections yet
            time.sleep(0.3)
        raise RuntimeError(f"node {node.index} not ready after {START_SECONDS}s:\n{node.tail()}")

    def kill(self, node: Node) -> None:
        """SIGKILL, like the kernel's OOM killer: no shutdown, no flush."""
        assert node.process is not None
        node.process.kill()
        node.process.wait()

    def restart(self, node: Node) -> None:
        """Start a stopped or killed node again on its datadir (crash recovery runs first)."""
        self._launch(node, bootstrap=False)
        self._wait_ready(node)

    def stop(self) -> None:
        """SIGTERM each node by pid (the last one first), SIGKILL if it will not go."""
        for node in reversed(self.nodes):
            process = node.process
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def remove(self) -> None:
        """Stop every node, then delete the cluster's folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class GaleraCluster(LocalServers):
    # flush_log=2: a commit is durable on the other nodes, not on this node's disk at once,
    # as many Galera deployments run it.
    def __init__(self, *, size: int = 3, flush_log: int = 2) -> None:
        super().__init__(size=size, galera=True, flush_log=flush_log)

    def size(self) -> int:
        return int(self.nodes[0].status("wsrep_cluster_size") or 0)
