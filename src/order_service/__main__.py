"""`python -m order_service` is the `order-service` CLI."""

from order_service.cli import app

app(prog_name="order-service")
