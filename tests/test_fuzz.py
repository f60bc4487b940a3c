"""Property-based fuzzing (hypothesis) of everything a record passes through, issue 15.

- the line reader: any bytes in any chunking split exactly as ``bytes.split`` would, and the independent record
  count agrees with the reader;
- the record parser: no input (random bytes, random JSON structures) raises; every record is a doc or a reason;
- the file reader (the real DoFn, run directly): random JSONL files (plain, .gz, .zst; BOMs, blank lines, CRLF,
  garbage) and Parquet files of random schemas give exactly one output per physical record;
- the whole pipeline (every default stage, the real CLI): random corpora exit 0 and conserve every record.

Bounded by default (about a minute on 2 cores); ``QURATE_FUZZ_LONG=1`` runs many more cases and prints how many.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import SAMPLE_CORPUS, read_rows, run_cli
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

LONG = os.environ.get("QURATE_FUZZ_LONG") == "1"
N_PURE = 3000 if LONG else 100  # examples per pure property
N_FILES = 600 if LONG else 30  # examples of whole files through the reader
N_RUNS = 12 if LONG else 1  # whole-pipeline runs
# Bounded mode: the same examples on every run (a suite test must not flake); long mode explores anew each time.
COMMON = {"deadline": None, "database": None, "derandomize": not LONG}
CASES: dict[str, int] = {}
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture]


def _count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    if LONG:  # the number of cases run, for the record (pytest -s shows it)
        print("\nfuzz cases run:", json.dumps(CASES, sort_keys=True))


with gzip.open(SAMPLE_CORPUS, "rb") as _handle:
    REAL_TEXTS = [json.loads(line)["text"] for line in _handle.read().splitlines()[:400:7] if line.strip()]

# ---- strategies -------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
texts = st.sampled_from(REAL_TEXTS) | st.text(max_size=200) | st.just("") | st.just("   \n")
ids = (st.none() | st.text(min_size=1, max_size=12) | st.sampled_from(["a", "b", "0", "f0.jsonl:1", "f1.jsonl.gz:0"])
       | st.integers(0, 5) | json_values)
records = st.fixed_dictionaries(
    {}, optional={"text": texts | json_values, "id": ids, "source": st.text(max_size=40) | json_values,
                  "meta_a": json_values, "nested": json_values})
# Records a stage gets to see: real text (so langid, the rules, dedup, quality and the rest all run on them)
good_records = st.fixed_dictionaries(
    {"text": st.sampled_from(REAL_TEXTS)},
    optional={"id": st.uuids().map(str) | ids, "source": st.sampled_from(["web/a", "debian/x", "b"]) | json_values,
              "meta_a": json_values})


def _deep(depth: int) -> bytes:
    return b'{"text": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


SPECIALS = [
    b"", b"   ", b"\r", b"\xef\xbb\xbf" + b'{"text": "bom"}', b'{"text": "x", "n": ' + b"9" * 5000 + b"}",
    _deep(150), _deep(3000), b'{"text": "lone \\ud800"}', b'{"text": "caf\xe9"}', b"[1, 2]", b'"just a string"',
    b'{"text": "ok", "source": "' + b"s" * 300 + b'"}', b'{"text": "ok", "source": "../../etc/passwd"}',
    b'{"text": "ok", "source": "web/a"}', b'{"text": "ok", "source": "web--a"}', b"\x00\x01\x02",
]
special_lines = st.sampled_from(SPECIALS)
def _json_line(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


lines = (good_records.map(_json_line) | good_records.map(_json_line) | records.map(_json_line)
         | st.binary(max_size=60) | special_lines)


@st.composite
def jsonl_files(draw, min_lines: int = 0) -> tuple[str, bytes]:
    body = draw(st.lists(lines, min_size=min_lines, max_size=max(25, min_lines)))
    if min_lines:  # a rich file even as hypothesis' first (simplest) example: every special line, and distinct
        # real texts so that docs get past dedup and reach every stage
        specials = draw(st.lists(special_lines, min_size=len(SPECIALS), unique=True))
        good = draw(st.lists(good_records, min_size=min_lines, max_size=2 * min_lines, unique_by=lambda r: r["text"]))
        body = draw(st.permutations(body + specials + [_json_line(r) for r in good]))
    sep = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + sep.join(body)
    if draw(st.booleans()):
        data += sep
    kind = draw(st.sampled_from(["", ".gz", ".zst"]))
    packed = {"": data, ".gz": gzip.compress(data) if kind == ".gz" else b"",
              ".zst": zstandard.ZstdCompressor().compress(data) if kind == ".zst" else b""}[kind]
    return f".jsonl{kind}", packed


ARROW_TYPES = {
    "string": (pa.string(), st.text(max_size=40) | st.sampled_from(REAL_TEXTS)),
    "large_string": (pa.large_string(), st.text(max_size=40)),
    "binary": (pa.binary(), st.binary(max_size=20)),
    "int64": (pa.int64(), st.integers(-2**63, 2**63 - 1)),
    "float64": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "list": (pa.list_(pa.string()), st.lists(st.text(max_size=5), max_size=3)),
    "struct": (pa.struct([("a", pa.int32()), ("b", pa.string())]),
               st.fixed_dictionaries({"a": st.integers(-2**31, 2**31 - 1), "b": st.text(max_size=5)})),
    "timestamp": (pa.timestamp("us"), st.integers(0, 2**52)),
    "decimal": (pa.decimal128(10, 2), st.decimals(min_value=-10**7, max_value=10**7, places=2)),
}


@st.composite
def parquet_files(draw, min_rows: int = 0) -> tuple[str, bytes]:
    n = draw(st.integers(min_rows, max(12, min_rows)))
    names = draw(st.lists(st.sampled_from(["text", "id", "source", "other", "x"]), unique=True, max_size=4))
    columns, fields = [], []
    if min_rows:  # a rich file even as the simplest example: distinct real texts under ids, then random columns
        names = [name for name in names if name not in ("text", "id")]
        good = draw(st.lists(st.sampled_from(REAL_TEXTS), min_size=n, max_size=n, unique=True))
        columns += [pa.array([f"pq-{draw(st.uuids())}" for _ in range(n)]), pa.array(good)]
        fields += [pa.field("id", pa.string()), pa.field("text", pa.string())]
    for name in names:
        kind = draw(st.sampled_from(sorted(ARROW_TYPES)))
        typ, values = ARROW_TYPES[kind]
        data = draw(st.lists(st.none() | values, min_size=n, max_size=n))
        array = pa.array(data, type=typ)
        if kind == "string" and n and draw(st.booleans()):  # invalid UTF-8 in a string column
            raw = [v.encode() if isinstance(v, str) else None for v in data]
            raw[draw(st.integers(0, n - 1))] = b"bad \xff\xfe"
            binary = pa.array(raw, type=pa.binary())
            array = pa.Array.from_buffers(pa.string(), len(binary), binary.buffers(), null_count=binary.null_count)
        columns.append(array)
        fields.append(pa.field(name, array.type))
    table = pa.Table.from_arrays(columns, schema=pa.schema(fields)) if fields else pa.table({"x": pa.nulls(n)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=max(1, draw(st.integers(1, 5))))
    if draw(st.booleans()):
        return ".parquet.gz", gzip.compress(buffer.getvalue())
    return ".parquet", buffer.getvalue()


files = jsonl_files() | parquet_files()
rich_files = jsonl_files(min_lines=15) | parquet_files(min_rows=6)  # the pipeline's first example is not empty


def _physical(name: str, data: bytes) -> int:
    """Records a file holds, counted here from what the test wrote (not by qurate's counter)."""
    if ".parquet" in name:
        raw = gzip.decompress(data) if name.endswith(".gz") else data
        return pq.ParquetFile(io.BytesIO(raw)).metadata.num_rows
    raw = gzip.decompress(data) if name.endswith(".gz") else (
        zstandard.ZstdDecompressor().decompressobj().decompress(data) if name.endswith(".zst") else data)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return sum(1 for line in raw.split(b"\n") if line.strip())


# ---- pure properties --------------------------------------------------------------------------------------------

@settings(max_examples=N_PURE, suppress_health_check=SLOW, **COMMON)
@given(data=st.binary(max_size=3000) | st.lists(lines, max_size=30).map(b"\n".join),
       cuts=st.lists(st.integers(1, 300), max_size=40), limit=st.none() | st.integers(1, 200))
def test_line_reader_splits_like_bytes_split_and_counts_agree(data, cuts, limit):
    from qurate.textlines import BOM, LongLine, count_records, is_record, iter_lines

    _count("line_reader")
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(data[at:at + cut])
        at += cut
    chunks.append(data[at:])
    chunks = [c for c in chunks if c]
    body = data[len(BOM):] if data.startswith(BOM) else data
    expected = [piece + b"\n" for piece in body.split(b"\n")]
    expected[-1] = expected[-1][:-1]
    if not expected[-1]:
        expected.pop()
    got = list(iter_lines(chunks, limit))
    assert len(got) == len(expected)
    for line, want in zip(got, expected):
        if isinstance(line, LongLine):
            assert limit is not None and line.size == len(want) > limit and line.head == want[:limit]
        else:
            assert line == want and (limit is None or len(want) <= limit)
    assert count_records(chunks, limit) == (sum(1 for line in got if is_record(line)), None)


@settings(max_examples=N_PURE, suppress_health_check=SLOW, **COMMON)
@given(line=lines, record=records | json_values)
def test_record_parser_never_raises(line, record):
    from qurate.pipelines.recipe import InputConfig
    from qurate.pipelines.records import Invalid, RecordParser

    _count("record_parser")
    parser = RecordParser(InputConfig(max_text_chars=150))
    for result in (parser.from_json_line(line), parser.from_record(record)):
        assert isinstance(result, (dict, Invalid))
        if isinstance(result, dict):
            assert isinstance(result["text"], str) and result["text"].strip() and len(result["text"]) <= 150
            assert isinstance(result.get("source", ""), str) and isinstance(result.get("id", ""), str)
            json.dumps(result, ensure_ascii=False).encode("utf-8")  # writable as UTF-8
        else:
            assert ":" in result.reason


@settings(max_examples=N_FILES, suppress_health_check=SLOW, **COMMON)
@given(spec=files)
def test_file_reader_emits_one_output_per_physical_record(spec):
    """The reader's DoFn, called directly (its Beam wiring is exercised by the pipeline test below)."""
    from apache_beam.pvalue import TaggedOutput
    from qurate.pipelines.read_file import ReadFileFn
    from qurate.pipelines.recipe import InputConfig

    _count("file_reader")
    suffix, data = spec
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "f" + suffix)
        Path(path).write_bytes(data)
        fn = ReadFileFn(InputConfig(max_text_chars=150), folder)
        fn.setup()
        out = list(fn.process(path))
    docs = [o for o in out if not isinstance(o, TaggedOutput)]
    dead = [o.value for o in out if isinstance(o, TaggedOutput) and o.tag == "dead_letter"]
    stats = {o.value[0]: o.value[1]["docs"] for o in out if isinstance(o, TaggedOutput) and o.tag == "stats"}
    physical = _physical(suffix, data)
    assert len(docs) + len(dead) == physical == stats[("read", "records")] == stats[("read", "emitted")]
    assert ("read", "count_mismatch_files") not in stats
    for entry in dead:
        assert entry["stage"] == "read" and entry["error"] and entry["position"] is not None


# ---- the whole pipeline -----------------------------------------------------------------------------------------

@settings(max_examples=N_RUNS, suppress_health_check=SLOW, phases=[Phase.explicit, Phase.generate], **COMMON)
@given(corpus=st.lists(rich_files, min_size=3, max_size=6))
def test_whole_pipeline_exits_0_and_conserves_every_record(corpus, tmp_path_factory):
    _count("pipeline_runs")
    folder = tmp_path_factory.mktemp("fuzz_in")
    physical = 0
    for i, (suffix, data) in enumerate(corpus):
        (folder / f"f{i}{suffix}").write_bytes(data)
        physical += _physical(suffix, data)
    recipe = folder.parent / f"{folder.name}.yaml"
    recipe.write_text("health:\n  max_dead_letter_share: 1\n  fail_on_empty_mixture: false\n"
                      "input:\n  max_text_chars: 100000\n")
    out = tmp_path_factory.mktemp("fuzz_out") / "out"
    assert run_cli(["run", str(recipe), "--input", str(folder), "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["conservation"]
    assert c["ok"] and manifest["input"]["records"] == physical == c["accounted"]
    kept = [r for r in read_rows(out, "mixture") if r["repeat"] == 0]
    assert len(kept) + len(read_rows(out, "rejected")) + len(read_rows(out, "dead_letter")) == physical
    CASES["pipeline_records"] = CASES.get("pipeline_records", 0) + physical
