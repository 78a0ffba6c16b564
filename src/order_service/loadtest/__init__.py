"""`order-service loadtest`: a Faker + aiohttp load generator that also verifies delivery.

Pure logic (schedule, bodies, judging of order and cancel answers, statistics, the checks on
final states, summary) lives in small modules with unit tests; `runner`, `client`, `stock`,
`resolve` and `verify` do the I/O; `command` is the CLI.
"""
