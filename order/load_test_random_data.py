"""The seed's load script, kept as an entry point: `python order/load_test_random_data.py`.

It now runs `order-service loadtest` with the seed's behaviour — 10 concurrent orders to
POST /order every 2 seconds — but bounded (60 s by default) and with a summary at the end.
Any loadtest option given on the command line overrides these defaults, e.g.
`python order/load_test_random_data.py --url http://localhost:8000 --duration 10 --verify`.
"""

from __future__ import annotations

import sys

import typer

from order_service.loadtest.command import loadtest

SEED_DEFAULTS = [
    "--url",
    "http://localhost:8000",
    "--endpoint",
    "order",
    "--rate",
    "5",
    "--burst",
    "10",
    "--duration",
    "60",
]


def main(argv: list[str]) -> None:
    app = typer.Typer(add_completion=False)
    app.command()(loadtest)
    # Click keeps the last value of a repeated option, so the user's arguments win.
    app([*SEED_DEFAULTS, *argv], prog_name="load_test_random_data.py")


if __name__ == "__main__":
    main(sys.argv[1:])
