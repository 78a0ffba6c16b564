"""The end-of-run summary as plain data: what `--json` prints and the table renders."""

from __future__ import annotations

from dataclasses import dataclass

from order_service.loadtest.cancels import CANCEL_ERRORS, CANCEL_OUTCOMES
from order_service.loadtest.options import LoadOptions
from order_service.loadtest.outcome import ERROR_KINDS, OUTCOME_KINDS, Kind
from order_service.loadtest.recorder import Recorder
from order_service.loadtest.stats import LatencySummary
from order_service.loadtest.stock import ManagedStock
from order_service.loadtest.verify import VerifyResult


@dataclass(frozen=True)
class CancelSummary:
    ratio: float
    sent: int  # requests, retries after a 409 in flight included
    orders: int  # distinct orders asked to cancel
    abandoned: int  # scheduled but not sent, or cut off, when Ctrl-C ended the run
    latency: LatencySummary
    outcomes: dict[str, int]
    errors: dict[str, int]
    status_codes: dict[str, int]
    error_details: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "ratio": self.ratio,
            "sent": self.sent,
            "orders": self.orders,
            "abandoned": self.abandoned,
            "latency_ms": self.latency.as_ms(),
            "outcomes": self.outcomes,
            "errors": self.errors,
            "error_details": self.error_details,
            "status_codes": self.status_codes,
        }


@dataclass(frozen=True)
class Summary:
    target: str
    model: str
    elapsed_s: float
    interrupted: bool
    sent: int
    completed: int
    cancelled: int
    latency: LatencySummary
    outcomes: dict[str, int]
    errors: dict[str, int]
    status_codes: dict[str, int]
    error_details: dict[str, int]
    accepted: int
    verify: VerifyResult | None = None
    plot_path: str | None = None
    managed: ManagedStock | None = None
    cancels: CancelSummary | None = None

    @property
    def throughput_rps(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "model": self.model,
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "requests": {
                "sent": self.sent,
                "completed": self.completed,
                "cancelled": self.cancelled,
            },
            "throughput_rps": round(self.throughput_rps, 2),
            "accepted_per_s": round(self.accepted_per_s, 2),
            "latency_ms": self.latency.as_ms(),
            "outcomes": self.outcomes,
            "errors": self.errors,
            "error_details": self.error_details,
            "status_codes": self.status_codes,
            "verify": self.verify.as_dict() if self.verify else None,
            "plot": self.plot_path,
            "managed_item": self.managed.as_dict() if self.managed else None,
            "cancels": self.cancels.as_dict() if self.cancels else None,
        }


def describe_model(options: LoadOptions) -> str:
    if options.rate is not None:
        burst = f", bursts of {options.burst}" if options.burst > 1 else ""
        return f"open, {options.rate:g} orders/s{burst}"
    return f"closed, {options.concurrency} concurrent"


def summarize_cancels(options: LoadOptions, recorder: Recorder) -> CancelSummary | None:
    if options.cancel_ratio <= 0:
        return None
    kinds = recorder.cancel_kinds
    return CancelSummary(
        ratio=options.cancel_ratio,
        sent=len(recorder.cancel_latencies),
        orders=len(recorder.cancels),
        abandoned=recorder.cancels_abandoned,
        latency=LatencySummary.of(recorder.cancel_latencies),
        outcomes={k.value: kinds[k] for k in CANCEL_OUTCOMES},
        errors={k.value: kinds[k] for k in CANCEL_ERRORS},
        status_codes={str(code): n for code, n in sorted(recorder.cancel_statuses.items())},
        error_details=dict(recorder.cancel_details.most_common(10)),
    )


def summarize(
    options: LoadOptions,
    recorder: Recorder,
    elapsed_s: float,
    interrupted: bool,
    cancelled: int,
    managed: ManagedStock | None = None,
) -> Summary:
    kinds = recorder.kinds
    return Summary(
        target=options.post_url,
        model=describe_model(options),
        elapsed_s=elapsed_s,
        interrupted=interrupted,
        sent=sum(kinds.values()) - kinds[Kind.DROPPED] + cancelled,
        completed=recorder.completed,
        cancelled=cancelled,
        latency=LatencySummary.of(recorder.latencies),
        outcomes={k.value: kinds[k] for k in OUTCOME_KINDS},
        errors={k.value: kinds[k] for k in ERROR_KINDS},
        status_codes={str(code): n for code, n in sorted(recorder.statuses.items())},
        error_details=dict(recorder.details.most_common(10)),
        accepted=kinds[Kind.ACCEPTED],
        managed=managed,
        cancels=summarize_cancels(options, recorder),
    )
