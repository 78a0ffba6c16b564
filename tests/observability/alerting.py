"""Alertmanager for a test, with the repo's routes, receivers and Slack template, and a webhook
receiver standing in for Slack's endpoint (it keeps every message as received)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from order_service.devstack.observe import alertmanager_config
from order_service.devstack.ports import free_port
from tests.observability.prometheus_server import tool
from tests.observability.stack import Process


class SlackWebhook:
    """An incoming-webhook endpoint on loopback: answers `ok` as Slack does, keeps the JSON."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook._lock:
                    hook.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T000/B000/test"

    def wait_for(self, title_prefix: str, timeout_s: float) -> dict[str, Any]:
        """The first message whose attachment title starts with `title_prefix`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.messages:
                    if message["attachments"][0]["title"].startswith(title_prefix):
                        return message
            time.sleep(0.2)
        titles = [m["attachments"][0]["title"] for m in self.messages]
        raise AssertionError(f"no Slack message {title_prefix!r} in {timeout_s}s; got {titles}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def shortened_waits(config: dict[str, Any]) -> dict[str, Any]:
    """The repo's config with only its waits shortened: group_wait 30s and group_interval 5m
    would hold a resolved notification back for minutes."""
    config["route"].update(group_wait="1s", group_interval="2s", repeat_interval="1h")
    return config


@contextmanager
def running_alertmanager(workdir: Path, slack: SlackWebhook) -> Iterator[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    url_file = workdir / "slack_webhook_url"
    url_file.write_text(slack.url, encoding="utf-8")
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(shortened_waits(alertmanager_config(url_file))))
    port = free_port()
    process = Process(
        "alertmanager",
        [
            tool("prometheus-alertmanager"),
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        {},
        workdir,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/-/ready", 30)
        yield url
    finally:
        process.stop()


def alert_states(prometheus_url: str, name: str) -> list[str]:
    alerts = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a["state"] for a in alerts if a["labels"]["alertname"] == name]
