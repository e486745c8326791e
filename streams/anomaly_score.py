"""What the anomaly detector says about one window: its score, its flag, and the features
the score was computed from, built only when read."""

from __future__ import annotations

from typing import Protocol


class Explanations(Protocol):
    """Where a batch's explanations come from, built when first asked for."""

    def explain(self, at: int) -> dict[str, float]: ...


class AnomalyScore:
    """A window's score (in [0, 1]; higher is more unusual), its flag, and ``features``: what
    the score was computed from (z-scores, expectation), given or built on first use from
    ``source`` (most windows' are never read: only flagged ones are published)."""

    __slots__ = ("_at", "_features", "_source", "is_anomaly", "score")

    def __init__(
        self,
        score: float,
        is_anomaly: bool,
        features: dict[str, float] | None = None,
        source: Explanations | None = None,
        at: int = 0,
    ) -> None:
        self.score = score
        self.is_anomaly = is_anomaly
        self._features = features
        self._source = source
        self._at = at

    @property
    def features(self) -> dict[str, float]:
        if self._features is None:
            self._features = {} if self._source is None else self._source.explain(self._at)
            self._source = None
        return self._features

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnomalyScore):
            return NotImplemented
        return (self.score, self.is_anomaly, self.features) == (
            other.score,
            other.is_anomaly,
            other.features,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"AnomalyScore(score={self.score!r}, is_anomaly={self.is_anomaly!r}, "
            f"features={self.features!r})"
        )
