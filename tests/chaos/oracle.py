"""The ground truth of a chaos run, in plain Python: every answer version the API acknowledged (a 202), in the
order it was acknowledged, and what the platform must therefore show.

An answer's last acknowledged version is the one that counts (the platform's rule: the latest revision wins);
a version sent again after its 202 is a duplicate and changes nothing. The sender sends an answer's versions
one after the other, each until it is acknowledged, so "last acknowledged" is well defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def is_detractor(score: int) -> bool:
    """NPS 0-6 (the default alert rule, and the detractor count)."""
    return score <= 6


@dataclass(frozen=True)
class Version:
    """One version of an answer as sent."""

    score: int
    comment: str | None = None


@dataclass
class Oracle:
    """What the platform must hold, from the acknowledged versions."""

    #: account -> response id -> last acknowledged version.
    final: dict[str, dict[str, Version]] = field(default_factory=dict)
    #: Answers one of whose acknowledged versions was a detractor.
    ever_detractor: set[tuple[str, str]] = field(default_factory=set)
    acknowledged: int = 0

    def acknowledge(self, account: str, response_id: str, version: Version) -> None:
        """The API answered 202 to ``version`` of the answer."""
        self.final.setdefault(account, {})[response_id] = version
        if is_detractor(version.score):
            self.ever_detractor.add((account, response_id))
        self.acknowledged += 1

    def counts(self, account: str) -> tuple[int, int, int]:
        """The account's NPS sample size, promoters and detractors."""
        scores = [v.score for v in self.final.get(account, {}).values()]
        return len(scores), sum(s >= 9 for s in scores), sum(is_detractor(s) for s in scores)

    def final_detractors(self) -> dict[tuple[str, str], Version]:
        """Answers whose last version is a detractor: each must have exactly one Slack message, showing it."""
        return {(a, r): v for a, answers in self.final.items() for r, v in answers.items() if is_detractor(v.score)}

    def answers(self) -> int:
        """Distinct answers acknowledged."""
        return sum(len(answers) for answers in self.final.values())
