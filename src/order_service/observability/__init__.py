"""Metrics, traces and logs: defined once here, used by the api, the relay and the worker."""
