"""`order-service loadtest`: a Faker + aiohttp load generator that also verifies delivery.

Pure logic (schedule, bodies, outcome classification, statistics, summary) lives in small
modules with unit tests; `runner`, `client` and `verify` do the I/O; `command` is the CLI.
"""
