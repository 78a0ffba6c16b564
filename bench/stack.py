"""Our stack for a bench phase: a fresh migrated database, then api, relay and worker (or a
subset, started when the phase wants them), each waited for on its /readyz."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.infra import Infra, plain_dsn
from bench.processes import BIN, Child
from order_service.devstack.ports import free_port

SERVICES = ("api", "relay", "worker")


@dataclass(frozen=True)
class Context:
    infra: Infra
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def log_path(self, name: str) -> Path:
        return self.infra.work_dir / f"{name}.{self.infra.kind}.log"


@dataclass
class OurStack:
    env: dict[str, str]  # what every process of the stack gets
    dsn: str  # the plain asyncpg DSN of its database
    ctx: Context
    pids: dict[str, int] = field(default_factory=dict)  # running services + infrastructure
    ports: dict[str, int] = field(default_factory=dict)
    _children: ExitStack = field(default_factory=ExitStack)

    @property
    def url(self) -> str:
        """POST /orders on the api."""
        return f"http://127.0.0.1:{self.ports['api']}/orders"

    @property
    def metrics(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}/metrics" for name, port in self.ports.items()}

    def start(self, *names: str) -> None:
        """Start these services and wait until each is ready. `relay-2` is a second relay."""
        children = []
        for name in names:
            port = free_port()
            service = name.partition("-")[0]
            argv = [str(BIN / "order-service"), service, "--host", "127.0.0.1", "--port", str(port)]
            child = Child(name, argv, self.env, self.ctx.log_path(name))
            child.start()
            self._children.callback(child.stop)
            self.ports[name] = port
            children.append(child)
        for child in children:
            child.wait_ready(f"http://127.0.0.1:{self.ports[child.name]}/readyz", timeout_s=60.0)
            self.pids[child.name] = child.pid

    def close(self) -> None:
        self._children.close()


def stack_env(ctx: Context, name: str, dsn: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Topics and consumer group of this stack's own: no phase reads another's events."""
    run = f"{name}.{ctx.run_id}.{ctx.infra.kind}"
    return {
        "POSTGRES_DSN": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": ctx.infra.bootstrap_servers,
        "KAFKA_ENABLE_IDEMPOTENCE": str(ctx.infra.idempotence).lower(),
        "KAFKA_ORDER_TOPIC": f"orders.created.bench.{run}",
        "KAFKA_STATUS_TOPIC": f"orders.status.bench.{run}",
        "KAFKA_CONSUMER_GROUP": f"order-processor-bench-{run}",
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "dev",
        **extra,
    }


@contextmanager
def our_stack(
    ctx: Context,
    env: Mapping[str, str] | None = None,
    *,
    services: tuple[str, ...] = SERVICES,
    name: str = "ours",
) -> Iterator[OurStack]:
    """A fresh database migrated, then `services` started and ready (start more later); `env`
    overrides the processes' settings."""
    dsn = ctx.infra.create_database(f"{name}_{ctx.run_id}_{ctx.infra.kind}")
    env = stack_env(ctx, name, dsn, env or {})
    migrate = Child("migrate", [str(BIN / "order-service"), "migrate"], env, ctx.log_path(name))
    migrate.start()
    migrate.wait_exit(60.0)
    stack = OurStack(env, plain_dsn(dsn), ctx, pids=ctx.infra.pids())
    try:
        stack.start(*services)
        yield stack
    finally:
        stack.close()
