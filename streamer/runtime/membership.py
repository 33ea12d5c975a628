"""Where a consumer stands in its group, as its rebalance callbacks left it: what readiness is built on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class GroupState(StrEnum):
    JOINING = "joining"  # subscribed, no assignment received yet
    ASSIGNED = "assigned"  # holds its assignment, which may be empty
    REVOKED = "revoked"  # its partitions were revoked and the next assignment has not come: a rebalance
    STOPPED = "stopped"  # the consumer is closed


@dataclass(frozen=True)
class Membership:
    """One consumer's standing in its group; replaced whole, never changed, so another thread reads it safely."""

    state: GroupState
    partitions: int = 0
    since: float = field(default_factory=time.monotonic)  # time.monotonic() of the change

    @property
    def holding(self) -> bool:
        """Holds an assignment, possibly empty: with more members than partitions some are idle by design."""
        return self.state is GroupState.ASSIGNED
