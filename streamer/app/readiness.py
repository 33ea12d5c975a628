"""Readiness: may this worker count as serving, for rollouts, disruption budgets and scale events?

Ready means the model is loaded and both batch loops are alive and hold their assignment, an empty one
included: with more workers than partitions (KEDA scaling out) some are idle by design. A loop between a
revoke and its next assignment (a rebalance) still counts for `rebalance_grace_s`, the rebalance timeout:
every scale event rebalances both groups, and a readiness flap on each would be worse than a few seconds
without partitions. A loop that has not joined its group yet (start-up, a missing topic) is not ready.

Postgres is reported (`database_up`, and the `streamer_audit_database_up` gauge with its alert) but never
gates readiness: while it is down the scorer keeps deciding and the audit loop retries, and a worker
turned unready would only take every pod out of rotation and block rollouts and node drains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamer.runtime.membership import GroupState, Membership


@dataclass(frozen=True)
class LoopView:
    """What readiness reads of one batch loop."""

    name: str
    alive: bool
    membership: Membership

    def ready(self, now: float, rebalance_grace_s: float) -> bool:
        if not self.alive:
            return False
        m = self.membership
        return m.holding or (m.state is GroupState.REVOKED and now - m.since < rebalance_grace_s)


@dataclass(frozen=True)
class Readiness:
    model_loaded: bool
    loops: Sequence[LoopView]
    database_up: bool  # reported, never a gate
    now: float  # time.monotonic(), the clock of Membership.since
    rebalance_grace_s: float

    @property
    def ready(self) -> bool:
        return self.model_loaded and bool(self.loops) and all(
            loop.ready(self.now, self.rebalance_grace_s) for loop in self.loops
        )

    def body(self) -> dict[str, Any]:
        """The /readyz answer: the verdict and what it was made of."""
        return {
            "ready": self.ready,
            "model_loaded": self.model_loaded,
            "database_up": self.database_up,
            "loops": {
                loop.name: {
                    "alive": loop.alive,
                    "state": loop.membership.state.value,
                    "partitions": loop.membership.partitions,
                    "for_s": round(self.now - loop.membership.since, 1),
                }
                for loop in self.loops
            },
        }
