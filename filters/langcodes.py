"""Language codes: fastText labels -> ISO 639-1 where one exists, Qwen2.5's languages, confusable groups."""

from __future__ import annotations

from functools import lru_cache

# lid.176 (and most fastText LID models) use old or macro codes for some languages; qurate records ISO 639-1.
# lid.176's "no" is trained on Norwegian Bokmål Wikipedia; "nn" is its own label.
_ALIASES = {
    "no": "nb", "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro",
    # Chinese variants and written forms: one code for the written standard
    "zh-cn": "zh", "zh-tw": "zh", "zh-hk": "zh", "zh-hans": "zh", "zh-hant": "zh", "cmn": "zh",
    "zho": "zh", "chi": "zh",
    # ISO 639-3 codes some models (GlotLID, NLLB-style) emit where a 639-1 code exists
    "eng": "en", "fra": "fr", "deu": "de", "spa": "es", "por": "pt", "ita": "it", "rus": "ru", "jpn": "ja",
    "kor": "ko", "vie": "vi", "tha": "th", "arb": "ar", "ara": "ar", "nld": "nl", "pol": "pl", "ces": "cs",
    "swe": "sv", "dan": "da", "nob": "nb", "nno": "nn", "fin": "fi", "ell": "el", "hun": "hu", "ind": "id",
    "zsm": "ms", "msa": "ms", "khm": "km", "lvs": "lv", "lav": "lv", "lit": "lt", "ekk": "et", "est": "et",
    "hrv": "hr", "srp": "sr", "bos": "bs", "ben": "bn", "hin": "hi", "tur": "tr", "ukr": "uk", "heb": "he",
    "pes": "fa", "fas": "fa", "ron": "ro", "bul": "bg", "slk": "sk", "slv": "sl", "cat": "ca", "tgl": "tl",
    "urd": "ur", "mya": "my", "lao": "lo", "bel": "be",
}

# The 29 languages Qwen2 names (its release: English, Chinese and 27 more by region) and Qwen2.5 keeps ("29+").
QWEN_NAMED_LANGUAGES: tuple[str, ...] = (
    "en", "zh",
    "de", "fr", "es", "pt", "it", "nl",  # Western Europe
    "ru", "cs", "pl",  # Eastern and Central Europe
    "ar", "fa", "he", "tr",  # Middle East
    "ja", "ko",  # Eastern Asia
    "vi", "th", "id", "ms", "lo", "my", "ceb", "km", "tl",  # South-Eastern Asia
    "hi", "bn", "ur",  # Southern Asia
)

# The default allow-list: Qwen's named languages and their close kin (languages a corpus holds beside them and
# a data team keeps for a multilingual mixture).
QWEN_LANGUAGES: tuple[str, ...] = (
    "zh", "en", "fr", "es", "pt", "de", "it", "ru", "ja", "ko", "vi", "th", "ar", "ceb",
    "hr", "cs", "da", "nl", "et", "fi", "el", "hu", "id", "km", "lv", "lt", "nb", "nn", "pl", "sv", "bn", "hi",
    "tr", "uk", "he", "ms", "tl", "ur", "fa", "ro", "bg", "sk", "sl", "sr", "bs", "ca", "my", "lo",
)

# Groups where lid.176 is weak on short text: a second opinion decides among the members. A group may hold for one
# script only: lingua's Serbian model knows only Cyrillic and its Bosnian and Croatian models only Latin, so Latin
# Serbian is judged with bs/hr/sl and Cyrillic Serbian with the other Cyrillic languages (mk and bg are where
# lid.176 sends it). Chosen on the tune half of bench/data's sets (bench/langid_tune.py, bench/RESULTS.md).
LATIN, CYRILLIC = "latin", "cyrillic"
CONFUSABLE_GROUPS: tuple[tuple[tuple[str, ...], str | None], ...] = (
    (("nb", "nn", "da", "sv"), None),
    (("bs", "hr", "sr", "sl"), LATIN),
    (("ms", "id"), None),
    (("ru", "uk", "be", "bg", "mk", "sr"), CYRILLIC),
    (("cs", "sk"), None),
    # added 2026-12-01 on the UI-message tune set: short Estonian read as Finnish, kana-less Chinese as Japanese
    (("et", "fi"), None),
    (("zh", "ja"), None),
)

# lid.176 emits "sh" (Serbo-Croatian) for Latin-script bs/hr/sr; it joins that group for the second opinion.
GROUP_EXTRA = {"sh": ("bs", "hr", "sr")}


@lru_cache(maxsize=4096)
def normalize(label: str) -> str:
    """A model label (``__label__no``, ``zh-TW``, ``nob_Latn``) as ISO 639-1 where one exists."""
    code = label.removeprefix("__label__").strip().lower().replace("_", "-")
    if code in _ALIASES:
        return _ALIASES[code]
    base = code.split("-", 1)[0]  # GlotLID "nob_Latn", BCP-47 "pt-br"
    return _ALIASES.get(base, base)


def group_of(code: str, script: str = LATIN) -> tuple[str, ...] | None:
    """The confusable group of a normalized code in text of ``script`` (``latin`` or ``cyrillic``), if any."""
    for members, only in CONFUSABLE_GROUPS:
        if only is not None and only != script:
            continue
        if code in members or set(GROUP_EXTRA.get(code, ("-",))) <= set(members):
            return members
    return None


def script_of(text: str, limit: int = 1000) -> str:
    """``cyrillic`` when most letters of the text's start are Cyrillic, else ``latin`` (the groups' two scripts)."""
    letters = cyrillic = 0
    for ch in text[:limit]:
        if ch.isalpha():
            letters += 1
            cyrillic += "\u0400" <= ch <= "\u052f"
    return CYRILLIC if letters and cyrillic * 2 > letters else LATIN


# Sources whose docs are code or math, not prose: their name or a path segment starts with "code", or they name
# GitHub, arXiv or math ("code/python", "the-stack/code-x", "redpajama/arxiv"; not "web/unicode-faq").
CODE_AND_MATH_SOURCES: tuple[str, ...] = ("code*", "*/code*", "*github*", "*arxiv*", "*math*")
