"""One fault's figures as the checker (checker.py) counted them: printed, and kept in
checker.json for the guarantees document."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    fault: str
    accepted: int = 0  # 2xx orders so far (all phases)
    accepted_in_phase: int = 0
    records: int = 0  # raw records on both topics
    lost: int = 0
    inconsistent_offsets: int = 0
    out_of_order: int = 0
    two_status_events: int = 0  # orders confirmed then cancelled: where order could break
    effect_once_violations: int = 0
    stock_balanced: bool = True
    unseen: int = 0
    duplicates: int = 0  # in this phase
    duplicates_total: int = 0
    settled_s: float = 0.0  # the bounded final phase's length
    read_s: float = 0.0
    read_from: str = ""  # the replica's rack the reads preferred
    context: dict[str, object] = field(default_factory=dict)  # what the fault did, measured
    examples: dict[str, list[str]] = field(default_factory=dict)

    def violations(self) -> dict[str, object]:
        """Every rule broken (empty: the checker is satisfied, duplicates aside)."""
        found: dict[str, object] = {
            name: getattr(self, name)
            for name in (
                "lost",
                "inconsistent_offsets",
                "out_of_order",
                "effect_once_violations",
                "unseen",
            )
            if getattr(self, name)
        }
        if not self.stock_balanced:
            found["stock_balanced"] = False
        return found

    def line(self) -> str:
        return (
            f"[{self.fault}] lost {self.lost}, inconsistent offsets {self.inconsistent_offsets}, "
            f"out of order {self.out_of_order} (of {self.two_status_events} orders with two "
            f"status events), effect-once violations "
            f"{self.effect_once_violations} (stock balanced: {self.stock_balanced}), unseen "
            f"{self.unseen}, duplicates {self.duplicates} ({self.duplicates_total} in all); "
            f"{self.accepted_in_phase} orders accepted in the phase, {self.accepted} in all, "
            f"{self.records} records; settled in {self.settled_s:.1f}s, read from "
            f"{self.read_from} in {self.read_s:.1f}s; {self.context}"
        )
