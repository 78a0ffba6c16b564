"""One logger set-up for every process: JSON lines with trace_id/span_id, or a console for dev.

Every line of a process goes through the same renderer with its `service` and `process`:
structlog's own events, and stdlib records (uvicorn's start-up, shutdown and errors, asyncio,
aiokafka, OpenTelemetry) through `structlog.stdlib.ProcessorFormatter`. The stdlib side is a
`logging.config.dictConfig` document, so uvicorn can apply it too (`log_config=`), also in each
of its `--workers` processes, which start from nothing.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from order_service.config import Settings

_FORMATTER_FACTORY = f"{__name__}.stdlib_formatter"


def _add_trace_context(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def _shared_processors(service: str, process: str) -> list[Any]:
    def add_process(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        # Added to every event, not bound as context variables: threads (OpenTelemetry's
        # exporter, executors) and tasks started with an empty context log too.
        event_dict["service"] = service
        event_dict["process"] = process
        return event_dict

    return [
        structlog.contextvars.merge_contextvars,
        add_process,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_context,
    ]


def _renderer(log_format: str) -> Any:
    if log_format == "console":
        return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    return structlog.processors.JSONRenderer(serializer=_orjson_dumps)


def stdlib_formatter(log_format: str, service: str, process: str) -> logging.Formatter:
    """The formatter of stdlib records (a dictConfig `()` factory): the same fields and
    renderer as structlog's events, plus the stdlib logger's name."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(service, process), structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
        ],
    )


def logging_config(settings: Settings, process: str) -> dict[str, Any]:
    """The stdlib logging of `process` as a dictConfig document (uvicorn's `log_config`)."""
    level = logging.getLevelName(settings.log_level.upper())
    # Libraries speak at WARNING and above; uvicorn's own lifecycle lines follow LOG_LEVEL.
    library_level = max(level, logging.WARNING) if isinstance(level, int) else logging.WARNING
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": _FORMATTER_FACTORY,
                "log_format": settings.log_format,
                "service": settings.service_name,
                "process": process,
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": logging.getLevelName(library_level)},
        "loggers": {
            "uvicorn": {"level": settings.log_level.upper()},
            # Requests are counted and traced instead; a line per request costs CPU at load.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(settings: Settings, process: str) -> None:
    level = logging.getLevelName(settings.log_level.upper())
    structlog.configure(
        processors=[
            *_shared_processors(settings.service_name, process),
            structlog.processors.format_exc_info,
            _renderer(settings.log_format),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(logging_config(settings, process))
    logging.captureWarnings(True)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
