"""A second opinion from lingua (bundled n-gram models, no download) inside one confusable language group."""

from __future__ import annotations

from qurate.filters.langcodes import CONFUSABLE_GROUPS

# fastText's in-group probabilities enter as a weak prior: floored (a member beyond its top-k can still win)
# and tempered (fastText is overconfident between close languages on short text). Chosen on
# bench/data/langid_eval.jsonl.gz (group-mean sentence accuracy; see bench/RESULTS.md).
PRIOR_FLOOR = 0.1
PRIOR_POWER = 0.3


class LinguaSecondOpinion:
    """Picks the most likely member of a confusable group; one lingua detector per group, built in ``load``."""

    def __init__(self, groups: tuple[tuple[str, ...], ...] = CONFUSABLE_GROUPS, max_chars: int = 1000):
        self.groups = groups
        self.max_chars = max_chars  # lingua's cost grows with text length; 1000 chars is plenty to decide
        self._detectors: dict[tuple[str, ...], object] = {}
        self._codes: dict[object, str] = {}

    def load(self) -> None:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        for group in self.groups:
            langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in group]
            for lang in langs:
                self._codes[lang] = lang.iso_code_639_1.name.lower()
            self._detectors[group] = (
                LanguageDetectorBuilder.from_languages(*langs).build()  # models load on first use
            )

    def warm_up(self) -> None:
        """Loads every group's models now (lingua loads them lazily on first use), e.g. before timing."""
        for group in self.groups:
            self._detectors[group].compute_language_confidence_values("warm up the models")

    def decide(self, group: tuple[str, ...], text: str,
               prior: dict[str, float] | None = None) -> tuple[str, float] | None:
        """(code, probability) of the best member of ``group`` for ``text``, or None if lingua cannot tell.

        With ``prior`` (fastText's probabilities of the members), the two opinions are multiplied and
        renormalized: lingua alone over-corrects where fastText was right (id read as ms, Latin sr as bs).
        """
        detector = self._detectors.get(group)
        if detector is None:
            return None
        values = detector.compute_language_confidence_values(text[: self.max_chars])
        if not values or values[0].value <= 0:
            return None
        lingua = {self._codes[v.language]: float(v.value) for v in values}
        # Known bias: lingua's Serbian model knows only Cyrillic, so on Latin text it gives sr 0 and an unsure
        # Latin-script doc never comes out sr. Making sr neutral there was tried: it recovered Latin sr but lost
        # more on hr/bs (which fastText often calls sr), so it is not done (bench/RESULTS.md).
        if prior:
            mass = sum(prior.get(c, 0.0) for c in group) or 1.0
            combined = {c: (PRIOR_FLOOR + prior.get(c, 0.0) / mass) ** PRIOR_POWER * lingua.get(c, 0.0)
                        for c in group}
        else:
            combined = {c: lingua.get(c, 0.0) for c in group}
        total = sum(combined.values())
        if total <= 0:
            return None
        code = max(sorted(combined), key=lambda c: combined[c])
        return code, combined[code] / total
