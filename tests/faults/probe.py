"""A client in a process of its own that POSTs orders at a steady rate and reports what each
request saw — for faults where the answer's timing is the claim (G10: "within
REQUEST_TIMEOUT_S + 1 s"). In the test process, its other work (threads, the stream's own
bookkeeping) would add its pauses to the latencies measured; here nothing else runs.

    python -m tests.faults.probe URL --rate 60 --seconds 8 --timeout 4.5 > results.json

prints one JSON document: {"began": <epoch seconds>, "results": [{"key", "sent", "took",
"status", "outcome", "order_id"}, ...]} with `sent` in seconds from `began`, status 0 for a
request the client gave up on (`took` is then the client timeout), -1 for a broken connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import httpx


async def run(url: str, rate: float, seconds: float, timeout_s: float) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        began = time.monotonic()
        began_wall = time.time()

        async def one(key: str) -> None:
            sent = time.monotonic()
            entry: dict[str, Any] = {"key": key, "sent": round(sent - began, 3)}
            try:
                response = await client.post(
                    "/orders",
                    json={"item": f"stream-{key}", "quantity": 1},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TimeoutException:
                entry.update(took=timeout_s, status=0, outcome=None, order_id=None)
            except httpx.TransportError:
                entry.update(took=time.monotonic() - sent, status=-1, outcome=None, order_id=None)
            else:
                body = response.json()
                entry.update(
                    took=round(time.monotonic() - sent, 3),
                    status=response.status_code,
                    outcome=body.get("outcome") if response.status_code == 503 else None,
                    order_id=body.get("id") if response.is_success else body.get("order_id"),
                )
            results.append(entry)

        tasks = []
        next_at = began
        while time.monotonic() - began < seconds:
            tasks.append(asyncio.create_task(one(uuid.uuid4().hex)))
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)
    return {"began": began_wall, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.rate, args.seconds, args.timeout))))


if __name__ == "__main__":
    main()
