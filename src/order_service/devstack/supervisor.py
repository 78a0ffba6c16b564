"""`order-service dev`: PostgreSQL + Kafka broker + migrations + api, relay and worker, and with
`--observe` the seed's observability backends beside them (`observe.py`).

Every child is ours: Ctrl-C, SIGTERM, a closed terminal's SIGHUP (or any child dying) stops
them all and frees every port. If the supervisor itself is killed, each child gets its parent
death signal (`pdeathsig.py`), and the next run reclaims anything still recorded (`reaper.py`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from order_service.devstack import observe, pidfiles, reaper
from order_service.devstack.banner import banner
from order_service.devstack.broker import Broker, BrokerStartError, TansuBroker
from order_service.devstack.children import Stopped, spawn, wait_http_ok
from order_service.devstack.kafka import KafkaBroker
from order_service.devstack.kafka_runtime import KafkaRuntimeError
from order_service.devstack.observe import ObservePorts, StackPorts
from order_service.devstack.observe_tools import ToolMissing
from order_service.devstack.pdeathsig import die_with_parent
from order_service.devstack.ports import PortInUse, ensure_free
from order_service.devstack.postgres import EmbeddedPostgres

_console = Console(stderr=True)
_CLI = (sys.executable, "-m", "order_service")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DevStackError(RuntimeError):
    pass


def _say(message: str) -> None:
    # After a closed terminal's SIGHUP every write to it fails (EIO); the stop must go on.
    with contextlib.suppress(OSError):
        _console.print(message, soft_wrap=True)  # the banner keeps its own line breaks


@dataclass
class DevStack:
    data_dir: str = ".dev"
    postgres_port: int = 5432
    kafka_port: int = 9092
    api_port: int = 8000
    relay_port: int = 8001
    worker_port: int = 8002
    host: str = "127.0.0.1"
    broker: str = "tansu"  # or "kafka": Apache Kafka from the cached runtime
    observe: bool = False
    observe_ports: ObservePorts = field(default_factory=ObservePorts)
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: bool = False

    @property
    def _base(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def _run_dir(self) -> Path:
        return self._base / "run"  # a pid record per process (pidfiles.py)

    def _check_ports(self) -> None:
        wanted = [
            ("PostgreSQL", self.postgres_port),
            ("the Kafka broker", self.kafka_port),
            *(
                (("Kafka's controller", self.kafka_controller_port),)
                if self.broker == "kafka"
                else ()
            ),
            ("the api", self.api_port),
            ("the relay", self.relay_port),
            ("the worker", self.worker_port),
        ]
        if self.observe:
            wanted += [
                (name.replace("_", " "), port) for name, port in asdict(self.observe_ports).items()
            ]
        taken: dict[int, str] = {}
        for what, port in wanted:
            if port in taken:
                raise DevStackError(f"port {port} is given to both {taken[port]} and {what}")
            taken[port] = what
            try:
                ensure_free(self.host, port, what)
            except PortInUse as exc:
                raise DevStackError(str(exc)) from None

    @property
    def kafka_controller_port(self) -> int:
        # Two above the broker's: 9094 by default, clear of Alertmanager's 9093 (make observe).
        return self.kafka_port + 2

    def _make_broker(self, base: Path) -> Broker:
        if self.broker == "tansu":
            return TansuBroker(port=self.kafka_port, host=self.host, log_path=base / "tansu.log")
        if self.broker == "kafka":
            return KafkaBroker(
                base / "kafka",  # kept, like PostgreSQL's data: topics survive a restart
                port=self.kafka_port,
                controller_port=self.kafka_controller_port,
                host=self.host,
                log_path=base / "kafka.log",
            )
        raise DevStackError(f"DEV_BROKER (--broker) must be tansu or kafka, not {self.broker!r}")

    def _env(self, postgres: EmbeddedPostgres, broker: Broker) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            POSTGRES_DSN=postgres.dsn(),
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            # Tansu's memory engine refuses InitProducerId (DESIGN.md §7); Apache Kafka runs
            # the production setting.
            KAFKA_ENABLE_IDEMPOTENCE=str(self.broker == "kafka").lower(),
            LOG_FORMAT=env.get("LOG_FORMAT", "console"),
            ENVIRONMENT=env.get("ENVIRONMENT", "dev"),
        )
        if self.observe:
            env.update(observe.tracing_env(self.host, self.observe_ports))
        return env

    def _spawn(self, name: str, port: int, env: dict[str, str]) -> None:
        cli = [*_CLI, name, "--host", self.host, "--port", str(port)]
        self._spawn_process(name, cli, env)

    def _spawn_process(
        self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None
    ) -> None:
        self._children[name] = spawn(argv, env, log)
        pidfiles.write(self._run_dir, name, self._children[name].pid)

    def _start_backends(self, postgres: EmbeddedPostgres, broker: Broker) -> None:
        workdir = self._base / "observe"
        stack = StackPorts(
            self.host,
            self.api_port,
            self.relay_port,
            self.worker_port,
            postgres.dsn(),
            broker.bootstrap_servers,
        )
        env = self._env(postgres, broker)
        try:
            started = observe.backends(stack, self.observe_ports, workdir, env, list(_CLI))
        except ToolMissing as exc:
            raise DevStackError(str(exc)) from None
        _say(f"[bold]starting the observability backends[/] (logs in {workdir})")
        for backend in started:
            self._spawn_process(
                backend.name, backend.argv, backend.env, workdir / f"{backend.name}.log"
            )
            if not wait_http_ok(
                backend.ready_url,
                60,
                self._children[backend.name],
                lambda: self._stopping,
                backend.ready_status,
            ):
                raise DevStackError(
                    f"{backend.name} did not start (see {workdir / backend.name}.log)"
                )

    def _reclaim(self) -> None:
        try:
            leftovers = reaper.reclaim(self._base)
        except reaper.StackRunning as exc:
            raise DevStackError(str(exc)) from None
        if leftovers:
            stopped = ", ".join(f"{lo.name} (pid {lo.process.pid})" for lo in leftovers)
            _say(f"[bold]reclaimed[/] what a previous `make dev` left running: {stopped}")

    def run(self) -> int:
        base = self._base
        broker = self._make_broker(base)
        self._reclaim()
        self._check_ports()
        postgres = EmbeddedPostgres(base / "postgres", port=self.postgres_port, host=self.host)
        previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
        for sig, handler in previous.items():
            # An ignored SIGHUP is `nohup make dev`: the user asked to outlive the terminal.
            if sig != signal.SIGHUP or handler != signal.SIG_IGN:
                signal.signal(sig, self._on_signal)
        pidfiles.write(self._run_dir, "supervisor", os.getpid())
        try:
            self._start(base, postgres, broker)
            self._print_banner(postgres, broker)
            return self._watch()
        except Stopped:
            return 0
        finally:
            self._stop_children()
            broker.stop()
            pidfiles.remove(self._run_dir, "broker")
            postgres.stop()
            pidfiles.remove(self._run_dir, "postgres")
            pidfiles.remove(self._run_dir, "supervisor")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _say("[bold]stopped[/]: every process ended, every port freed")

    def _start(self, base: Path, postgres: EmbeddedPostgres, broker: Broker) -> None:
        _say(
            f"[bold]starting PostgreSQL[/] on {self.host}:{self.postgres_port} "
            f"(data in {base / 'postgres'})"
        )
        postgres.start()
        if postgres.pid is not None:
            pidfiles.write(self._run_dir, "postgres", postgres.pid, signal.SIGINT)
        self._check_stopping()
        name = "Apache Kafka" if self.broker == "kafka" else "Tansu"
        _say(f"[bold]starting Kafka broker ({name})[/] on {broker.bootstrap_servers}")
        try:
            broker.start()
        except (BrokerStartError, KafkaRuntimeError) as exc:
            raise DevStackError(str(exc)) from None
        if broker.pid is not None:
            pidfiles.write(self._run_dir, "broker", broker.pid)
        self._check_stopping()
        env = self._env(postgres, broker)
        _say("[bold]applying migrations[/]")
        migrate = subprocess.run(
            [sys.executable, "-m", "order_service", "migrate"],
            env=env,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self._check_stopping()
        if migrate.returncode != 0:
            raise DevStackError("migrations failed (see above)")
        if self.observe:
            self._start_backends(postgres, broker)
        ports = {"api": self.api_port, "relay": self.relay_port, "worker": self.worker_port}
        for name, port in ports.items():
            self._spawn(name, port, env)
        for name, port in ports.items():
            url = f"http://{self.host}:{port}/readyz"
            if not wait_http_ok(url, 60, self._children[name], lambda: self._stopping):
                raise DevStackError(f"{name} did not become ready at {url}")

    def _on_signal(self, signum: int, _frame: object) -> None:
        # SIGHUP too: a closed terminal must stop the stack as cleanly as Ctrl-C does.
        self._stopping = True

    def _check_stopping(self) -> None:
        if self._stopping:
            raise Stopped

    def _watch(self) -> int:
        while not self._stopping:
            for name, child in self._children.items():
                if child.poll() is not None:
                    _say(f"[red]{name} exited with {child.returncode}; stopping[/]")
                    return 1
            time.sleep(0.3)
        return 0

    def _stop_children(self) -> None:
        # The services first: they flush their last spans to a Collector still running.
        services = {n: c for n, c in self._children.items() if n in reaper.SERVICES}
        backends = {n: c for n, c in self._children.items() if n not in reaper.SERVICES}
        for group in (services, backends):
            self._stop(group)

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, child in children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            pidfiles.remove(self._run_dir, name)

    def _print_banner(self, postgres: EmbeddedPostgres, broker: Broker) -> None:
        ports = (self.api_port, self.relay_port, self.worker_port)
        observed = (self.observe_ports, self._base / "observe") if self.observe else None
        _say(banner(self.host, ports, postgres.dsn(), broker.bootstrap_servers, observed))
