"""Per-language stop words for Gopher's "at least N stop words" rule (English-only in Gopher itself).

Ten very frequent function words per language; a page in that language has several of them. Languages written
without spaces are split into characters (``filters.words``), so their entries are single characters.
Languages absent here skip the rule (an English list would reject every page in them).
"""

from __future__ import annotations

STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "be", "to", "of", "and", "that", "have", "with"),  # Gopher's own list
    "de": ("der", "die", "das", "und", "ist", "nicht", "zu", "mit", "den", "von"),
    "fr": ("le", "la", "les", "de", "et", "est", "un", "une", "des", "pour"),
    "es": ("el", "la", "de", "que", "y", "en", "los", "se", "las", "por"),
    "pt": ("o", "a", "de", "que", "e", "do", "da", "em", "os", "para"),
    "it": ("il", "la", "di", "che", "e", "è", "un", "per", "non", "una"),
    "nl": ("de", "het", "een", "en", "van", "is", "dat", "op", "te", "niet"),
    "sv": ("och", "det", "att", "en", "är", "som", "på", "för", "med", "inte"),
    "da": ("og", "det", "at", "en", "er", "til", "på", "som", "med", "ikke"),
    "nb": ("og", "det", "er", "en", "til", "på", "som", "med", "ikke", "å"),
    "nn": ("og", "det", "er", "ein", "til", "på", "som", "med", "ikkje", "å"),
    "fi": ("ja", "on", "ei", "se", "että", "oli", "hän", "mutta", "ovat", "kun"),
    "pl": ("i", "w", "na", "nie", "się", "z", "do", "to", "że", "jest"),
    "cs": ("a", "se", "na", "je", "v", "že", "to", "s", "z", "do"),
    "sk": ("a", "sa", "na", "je", "v", "že", "to", "s", "z", "do"),
    "ru": ("и", "в", "не", "на", "что", "с", "по", "это", "как", "он"),
    "uk": ("і", "в", "не", "на", "що", "з", "та", "це", "як", "до"),
    "bg": ("и", "на", "да", "се", "в", "не", "за", "от", "е", "че"),
    "sr": ("и", "у", "да", "је", "се", "на", "не", "за", "од", "i", "u", "je", "se", "na", "da", "za", "od"),
    "hr": ("i", "u", "je", "se", "na", "da", "za", "od", "ne", "su"),
    "bs": ("i", "u", "je", "se", "na", "da", "za", "od", "ne", "su"),
    "sl": ("in", "je", "se", "na", "da", "za", "v", "pa", "ne", "so"),
    "tr": ("ve", "bir", "bu", "da", "de", "için", "ile", "ne", "çok", "olarak"),
    "hu": ("a", "az", "és", "hogy", "nem", "is", "egy", "van", "meg", "el"),
    "ro": ("și", "de", "în", "la", "cu", "a", "nu", "pe", "care", "este"),
    "lt": ("ir", "yra", "kad", "su", "į", "ne", "iš", "tai", "o", "bet"),
    "lv": ("un", "ir", "ka", "par", "ar", "no", "uz", "tas", "kā", "arī"),
    "et": ("ja", "on", "et", "ei", "see", "ka", "kui", "oli", "mis", "aga"),
    "el": ("και", "το", "να", "η", "της", "του", "σε", "με", "που", "για"),
    "vi": ("và", "của", "là", "có", "không", "được", "cho", "những", "các", "trong"),
    "id": ("yang", "dan", "di", "dengan", "untuk", "dari", "ini", "itu", "tidak", "ke"),
    "ms": ("yang", "dan", "di", "dengan", "untuk", "dari", "ini", "itu", "tidak", "ke"),
    "tl": ("ang", "ng", "sa", "na", "at", "mga", "ay", "si", "hindi", "para"),
    "ca": ("el", "la", "de", "i", "que", "a", "en", "els", "per", "no"),
    "ar": ("في", "من", "على", "أن", "إلى", "عن", "مع", "هذا", "ما", "لا"),
    "fa": ("و", "در", "به", "از", "که", "این", "را", "با", "است", "برای"),
    "he": ("של", "את", "על", "לא", "זה", "עם", "הוא", "גם", "כי", "אני"),
    "ur": ("کے", "کی", "اور", "میں", "ہے", "سے", "کو", "نے", "کا", "یہ"),
    "hi": ("के", "है", "में", "की", "और", "से", "को", "का", "एक", "पर"),
    "bn": ("এবং", "এই", "করে", "হয়", "না", "যে", "থেকে", "জন্য", "একটি", "তার"),
    "zh": ("的", "是", "在", "了", "和", "有", "不", "这", "我", "一"),
    "ja": ("の", "に", "は", "を", "が", "で", "て", "た", "と", "し"),
}
