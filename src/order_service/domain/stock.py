"""Stock of one item: units available to reserve and units reserved by confirmed orders.

G9: `available` never goes below zero and `available + reserved` changes only when someone
sets the stock; a reservation moves units from available to reserved, a cancellation back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Stock:
    item: str
    available: int
    reserved: int = 0

    def can_reserve(self, quantity: int) -> bool:
        return 0 < quantity <= self.available

    def reserve(self, quantity: int) -> Stock:
        if not self.can_reserve(quantity):
            raise ValueError(f"cannot reserve {quantity} of {self.available} available")
        return replace(self, available=self.available - quantity, reserved=self.reserved + quantity)

    def release(self, quantity: int) -> Stock:
        """Units of a cancelled confirmed order go back (never more than were reserved)."""
        back = min(quantity, self.reserved)
        return replace(self, available=self.available + back, reserved=self.reserved - back)
