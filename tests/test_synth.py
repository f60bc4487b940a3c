"""The ``synth`` stage's library: tasks and seeds, the request cache, the generator engines (real tiny random-weight
Qwen2 models), each reward-model kind, verifiable math, length de-biasing and the per-prompt keep rule."""

from __future__ import annotations

import math

import pytest
from qurate.synth.cache import RequestCache, cache_key
from qurate.synth.config import GeneratorConfig, SynthConfig, TaskConfig
from qurate.synth.keep import (
    BELOW_MIN,
    BELOW_THRESHOLD,
    COPIES_SEED,
    NEAR_DUPLICATE,
    NOT_BEST,
    candidate,
    decide_prompt,
    fit_lengths,
    pick_exact,
)
from qurate.synth.mathcheck import equivalent, extract_answer, math_scores
from qurate.synth.tasks import eligible, requests_for, synthetic_id

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, tie_word_embeddings=True)
DOC = {"id": "doc-1", "text": "Photosynthesis turns light into chemical energy. {text} stays literal. " * 3,
       "source": "web", "lang": "en", "quality_score": 3.2, "domain": "science"}


def synth_config(**kw) -> SynthConfig:
    base = dict(tasks=[{"name": "rephrase", "template": "rephrase_wiki", "n": 3}], rewards={"judge": None},
                cache_dir="")
    base.update(kw)
    return SynthConfig(**base)


# ------------------------------------------------------------------------------------------------ tasks, seeds

def test_requests_are_deterministic_and_fill_the_template():
    task = TaskConfig(name="rephrase", template="rephrase_wiki", n=3, seed=5)
    a, b = requests_for(task, DOC, 7), requests_for(task, DOC, 7)
    assert a == b and len(a) == 3
    assert len({r["seed"] for r in a}) == 3 and len({r["id"] for r in a}) == 3
    assert a[0]["id"] == synthetic_id("doc-1", "rephrase", 0, 7)
    assert requests_for(task, DOC, 8)[0]["seed"] != a[0]["seed"]  # the recipe seed enters every sample's seed
    assert "Wikipedia" in a[0]["user"] and "{text} stays literal" in a[0]["user"]  # braces in the seed survive
    custom = TaskConfig(name="c", template="custom", prompt="Topic {topic}; answer {answer}; {{x}}", n=1)
    req = requests_for(custom, {**DOC, "meta": {"topic": "plants", "answer": "42"}}, 0)[0]
    assert req["user"] == "Topic plants; answer 42; {x}"


def test_seed_selection_by_quality_domain_and_rate():
    task = TaskConfig(name="t", template="textbook", min_quality=3.0, domains=["science"])
    assert eligible(task, DOC, 0)
    assert not eligible(task, {**DOC, "quality_score": 2.9}, 0)
    assert not eligible(task, {**DOC, "domain": "sports"}, 0)
    assert not eligible(task, {k: v for k, v in DOC.items() if k != "quality_score"}, 0)
    half = TaskConfig(name="t", template="textbook", rate=0.5, min_chars=0)
    picked = sum(eligible(half, {"id": f"d{i}", "text": "x"}, 0) for i in range(2000))
    assert 850 < picked < 1150


def test_math_template_hides_the_reference_answer():
    task = TaskConfig(name="m", template="math", n=1)
    doc = {"id": "g1", "text": "Tom has 3 apples and buys 4 more. How many?\nHe has 3+4=7.\n#### 7"}
    req = requests_for(task, doc, 0)[0]
    assert req["answer"] == "7" and "####" not in req["user"]


# ------------------------------------------------------------------------------------------------ cache

def test_request_cache_round_trip(tmp_path):
    cache = RequestCache(tmp_path / "c")
    key = cache_key("generate", model="m", prompt="p", seed=1)
    assert cache.get(key) is None
    cache.put(key, {"text": "hi", "n_tokens": 1})
    assert RequestCache(tmp_path / "c").get(key) == {"text": "hi", "n_tokens": 1}
    assert cache_key("generate", model="m", prompt="p", seed=2) != key
    assert RequestCache(None).get(key) is None and len(cache) == 1


# ------------------------------------------------------------------------------------------------ verifiable math

def test_math_answers_votes_and_references():
    assert extract_answer("so \\boxed{\\frac{3}{4}} is it") == "\\frac{3}{4}"
    assert extract_answer("He pays 1,200 dollars.\n#### 1,200") == "1200"
    assert extract_answer("The final answer is 12.") == "12"
    assert extract_answer("no numbers here") is None
    assert equivalent("\\frac{3}{4}", "0.75") and equivalent("2\\sqrt{2}", "\\sqrt{8}") and equivalent("x+1", "1+x")
    assert not equivalent("3", "4") and not equivalent("3", None)
    assert not equivalent("\\frac{3}{4}", "0.75", symbolic=False)
    assert math_scores(["0.75", "\\frac{3}{4}", "1", None], None) == [0.5, 0.5, 0.25, 0.0]
    assert math_scores(["7", "8"], "#### 7") == [1.0, 0.0]


# ------------------------------------------------------------------------------------------------ keep rule

def _cands(config: SynthConfig, completions: list[str], rewards: list[dict[str, float]], seed_text: str = "",
           seed_id: str = "doc-1", tokens: list[int] | None = None, answer: str | None = None) -> list[dict]:
    task = config.tasks[0]
    out = []
    for i, (text, rw) in enumerate(zip(completions, rewards)):
        req = {**requests_for(task, {"id": seed_id, "text": seed_text or "seed"}, 0)[i % task.n], "sample": i,
               "id": f"{seed_id}-{i}", "seed_text": seed_text or "a seed doc about something else entirely",
               "answer": answer}
        c = candidate(config, req, {"text": text, "n_tokens": (tokens or [10] * len(completions))[i]}, 0)
        c["synthetic"]["rewards"].update(rw)
        out.append(c)
    return out


TEXTS = ["Alpha particles carry two protons and two neutrons out of the nucleus.",
         "Beta decay turns a neutron into a proton, emitting an electron and an antineutrino.",
         "Gamma rays are photons of high energy released when a nucleus relaxes.",
         "Half-life is the time for half of a sample's nuclei to decay."]


def test_best_of_n_keeps_the_argmax():
    config = synth_config(keep={"best_of_n": 1}, rewards={"judge": {}})
    cands = _cands(config, TEXTS[:3], [{"judge": 2.0}, {"judge": 4.5}, {"judge": 3.0}])
    verdicts = {c["id"]: r for c, r in decide_prompt(config, cands, {})}
    assert verdicts["doc-1-1"] is None
    assert verdicts["doc-1-0"].startswith(NOT_BEST) and verdicts["doc-1-2"].startswith(NOT_BEST)
    assert "judge=2.000" in verdicts["doc-1-0"]  # reasons carry the scores
    two = synth_config(keep={"best_of_n": 2, "threshold": 2.5}, rewards={"judge": {}})
    verdicts = {c["id"]: r for c, r in decide_prompt(two, _cands(two, TEXTS[:3], [{"judge": 2.0}, {"judge": 4.5},
                                                                                  {"judge": 3.0}]), {})}
    assert verdicts["doc-1-1"] is None and verdicts["doc-1-2"] is None
    assert verdicts["doc-1-0"].startswith(BELOW_THRESHOLD)


def test_length_debiasing_changes_a_ranking_it_should():
    """Across a task, the judge's score rises with length; the long answer wins raw but not once length's
    effect is taken out."""
    config = synth_config(keep={"best_of_n": 1}, rewards={"judge": {}, "length_debias": ["judge"]})
    population = []
    for i in range(12):  # score = 1 + 0.6 log(1 + tokens) exactly: length explains everything
        tokens = 10 * (i + 1)
        population += _cands(config, [f"{TEXTS[i % 4]} {i}"], [{"judge": 1 + 0.6 * math.log1p(tokens)}],
                             seed_id=f"p{i}", tokens=[tokens])
    fit = fit_lengths(population, "judge")
    assert fit[1] == pytest.approx(0.6)
    long_, short = 400, 20
    prompt = _cands(config, TEXTS[:2], [{"judge": 1 + 0.6 * math.log1p(long_) + 0.05},   # long, at the trend
                                        {"judge": 1 + 0.6 * math.log1p(short) + 0.5}],  # short, well above it
                    tokens=[long_, short])
    assert prompt[0]["synthetic"]["rewards"]["judge"] > prompt[1]["synthetic"]["rewards"]["judge"]
    raw = {c["id"]: r for c, r in decide_prompt(synth_config(keep={"best_of_n": 1}, rewards={"judge": {}}),
                                                [dict(c, synthetic=dict(c["synthetic"],
                                                                        rewards=dict(c["synthetic"]["rewards"])))
                                                 for c in prompt], {})}
    assert raw["doc-1-0"] is None  # without de-biasing the longer answer is kept
    debiased = {c["id"]: r for c, r in decide_prompt(config, prompt, {("rephrase", "judge"): fit})}
    assert debiased["doc-1-1"] is None and debiased["doc-1-0"].startswith(NOT_BEST)
    assert prompt[1]["synthetic"]["rewards"]["judge_debiased"] > prompt[0]["synthetic"]["rewards"]["judge_debiased"]


def test_copies_of_the_seed_and_near_duplicates_are_dropped():
    config = synth_config(keep={"best_of_n": 0}, rewards={"judge": {}})
    seed = " ".join(TEXTS)
    cands = _cands(config, [seed, TEXTS[0] + " " + TEXTS[1], TEXTS[0] + "  " + TEXTS[1] + " ", TEXTS[2]],
                   [{"judge": 5.0}, {"judge": 4.0}, {"judge": 3.0}, {"judge": 1.0}], seed_text=seed)
    config = synth_config(keep={"best_of_n": 0}, rewards={"judge": {}},
                          tasks=[{"name": "rephrase", "template": "rephrase_wiki", "n": 4}])
    verdicts = {c["id"]: r for c, r in decide_prompt(config, cands, {})}
    assert verdicts["doc-1-0"].startswith(COPIES_SEED)
    assert verdicts["doc-1-1"] is None and verdicts["doc-1-3"] is None
    assert verdicts["doc-1-2"].startswith(NEAR_DUPLICATE) and "doc-1-1" in verdicts["doc-1-2"]
    same = _cands(config, [TEXTS[0]], [{"judge": 1.0}], seed_id="a") + _cands(config, [TEXTS[0]], [{"judge": 2.0}],
                                                                               seed_id="b")
    for c in same:
        c["synthetic"]["rewards"]["combined"] = c["synthetic"]["rewards"]["judge"]
    picked = {c["id"]: r for c, r in pick_exact(same)}
    assert picked["b-0"] is None and "same text as b-0" in picked["a-0"]


def test_math_rm_in_the_keep_rule():
    config = synth_config(tasks=[{"name": "gsm", "template": "math", "n": 3}], keep={"best_of_n": 0,
                                                                                     "min": {"math": 1.0}})
    cands = _cands(config, ["3 + 4 = 7, so \\boxed{7}", "I think it is \\boxed{8}", "The answer is 7."],
                   [{}, {}, {}], answer="7")
    verdicts = {c["id"]: r for c, r in decide_prompt(config, cands, {})}
    assert verdicts["doc-1-0"] is None and verdicts["doc-1-2"] is None
    assert verdicts["doc-1-1"].startswith(BELOW_MIN) and "math 0.000 < 1.000" in verdicts["doc-1-1"]
    assert [c["synthetic"]["answer"] for c in cands] == ["7", "8", "7"]
    # no reference: the majority answer scores 2/3
    vote = _cands(config, ["\\boxed{7}", "\\boxed{8}", "\\boxed{7.0}"], [{}, {}, {}])
    decide_prompt(synth_config(tasks=[{"name": "gsm", "template": "math", "n": 3}]), vote, {})
    assert [c["synthetic"]["rewards"]["math"] for c in vote] == pytest.approx([2 / 3, 1 / 3, 2 / 3])


# ------------------------------------------------------------------------------------------------ real models

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    pytest.importorskip("torch")
    from qurate.classifiers.random_models import save_random_qwen2

    return save_random_qwen2(tmp_path_factory.mktemp("tiny_qwen2"), TINY, seed=0, init_std=0.5)


@pytest.fixture(scope="module")
def tiny_rm_dir(tmp_path_factory):
    pytest.importorskip("torch")
    import torch
    from qurate.classifiers.random_models import QWEN25_COMMON, qwen_tokenizer
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    torch.manual_seed(0)
    config = Qwen2Config(**{**QWEN25_COMMON, **TINY, "initializer_range": 0.5, "num_labels": 1,
                            "pad_token_id": 151643})
    out = tmp_path_factory.mktemp("tiny_rm")
    Qwen2ForSequenceClassification(config).eval().save_pretrained(out)
    qwen_tokenizer().save_pretrained(out)
    return out


def _gen_cfg(model_dir, **kw) -> GeneratorConfig:
    return GeneratorConfig(model=str(model_dir), dtype="float32", batch_size=4, **kw)


def test_transformers_generator_batches_and_seeds(tiny_dir):
    from qurate.synth.generate import TransformersGenerator

    gen = TransformersGenerator(_gen_cfg(tiny_dir))
    docs = [{"id": f"d{i}", "text": "Some text. " * (i * 3 + 1)} for i in range(2)]
    for temperature in (0.0, 1.0):
        task = TaskConfig(name="t", template="rephrase_wiki", n=2, max_tokens=5, temperature=temperature)
        reqs = [r for d in docs for r in requests_for(task, d, 0)]
        batched = gen.generate(reqs)
        one_by_one = [gen.generate([r])[0] for r in reqs]
        # a padded batch gives each row what it gets alone (left padding, positions, per-row generators)
        assert [b["text"] for b in batched] == [o["text"] for o in one_by_one]
        assert all(b["n_tokens"] == 5 and b["finish"] == "length" for b in batched)
    assert batched[0]["text"] != batched[1]["text"]  # two samples of one prompt, two seeds


def test_failed_requests_are_isolated_and_answers_replay_from_cache(tiny_dir, tmp_path):
    from qurate.synth.generate import SynthGenerator

    cfg = _gen_cfg(tiny_dir, max_context=160)
    task = TaskConfig(name="t", template="rephrase_wiki", n=1, max_tokens=4, min_chars=0)
    docs = [{"id": "short", "text": "Short."}, {"id": "long", "text": "word " * 300}, {"id": "mid", "text": "Mid."}]
    reqs = [r for d in docs for r in requests_for(task, d, 0)]
    gen = SynthGenerator(cfg, str(tmp_path / "cache"))
    first = gen.complete(reqs)
    assert "error" in first[1] and first[1]["error"].startswith("PromptTooLong")
    assert "text" in first[0] and "text" in first[2] and gen.model_calls == 3
    again = SynthGenerator(cfg, str(tmp_path / "cache"))
    second = again.complete(reqs)
    assert again._engine is None or again.model_calls == 1  # only the failed request goes back to the model
    assert [second[0]["text"], second[2]["text"]] == [first[0]["text"], first[2]["text"]]
    assert second[0]["cached"] and second[2]["cached"] and again.cache_hits == 2
    replay = SynthGenerator(cfg, str(tmp_path / "cache"))
    replay.complete([reqs[0], reqs[2]])
    assert replay.model_calls == 0 and replay._engine is None  # nothing to ask: no model loaded


def test_classifier_rm_scores_with_its_scalar_head(tiny_rm_dir):
    import torch
    from qurate.synth.config import ClassifierRM
    from qurate.synth.rewards import ClassifierRewardModel

    rm = ClassifierRewardModel(ClassifierRM(path=str(tiny_rm_dir), batch_size=3, dtype="float32"))
    cands = [{"_prompt": "Explain decay.", "_completion": t} for t in TEXTS]
    scores = rm.score(cands)
    assert len(set(scores)) == 4
    for c, score in zip(cands, scores):  # batched, right-padded == the model's own forward on the chat alone
        ids = torch.tensor([rm.encode(c["_prompt"], c["_completion"])])
        with torch.inference_mode():
            alone = rm.model(input_ids=ids).logits[0, 0].item()
        assert score == pytest.approx(alone, abs=1e-4)


def test_judge_rm_is_the_judges_expected_rating(tiny_dir):
    from qurate.classifiers.judge import TransformersJudge
    from qurate.synth.config import JudgeRM
    from qurate.synth.rewards import JudgeRewardModel

    cfg = JudgeRM(judge={"model": str(tiny_dir), "dtype": "float32", "max_doc_tokens": 64, "batch_size": 4},
                  dimensions=[{"name": "a", "description": "Is it clear?"},
                              {"name": "b", "description": "Is it correct?", "weight": 3}])
    rm = JudgeRewardModel(cfg)
    scores = rm.score([{"text": t} for t in TEXTS])
    judge: TransformersJudge = rm.judge
    for text, score in zip(TEXTS, scores):  # the reference path: each dimension's full prompt on its own
        a, b = judge.score_full(judge.builder.build(text))
        assert score == pytest.approx((a + 3 * b) / 4, abs=1e-4)
        assert 0 <= score <= 5
    assert len({round(s, 6) for s in scores}) > 1


def test_reward_scorer_caches_scores(tiny_rm_dir, tmp_path):
    from qurate.synth.rewards import RewardScorer

    config = synth_config(rewards={"judge": None, "classifier": {"path": str(tiny_rm_dir), "dtype": "float32"}},
                          cache_dir=str(tmp_path / "cache"))
    cands = [{"id": f"c{i}", "text": t, "_prompt": "p", "_completion": t} for i, t in enumerate(TEXTS)]
    first = RewardScorer(config)
    a = first.score(cands)
    assert first.model_calls == 4 and all("classifier" in r for r in a)
    second = RewardScorer(config)
    b = second.score(cands)
    assert second.model_calls == 0 and second.cache_hits == 4 and "classifier" not in second._models
    assert [r["classifier"] for r in a] == [r["classifier"] for r in b]


def test_openai_engine_concurrency_retries_and_errors(tiny_dir):
    """The OpenAI-compatible client against a real HTTP server running the same tiny model (the transformers
    engine's decode path behind /v1/completions): answers match the in-process engine; a 503 is retried; a 400
    (prompt too long) fails only its request."""
    import json as _json
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from qurate.synth.generate import OpenAIGenerator, SynthGenerator, TransformersGenerator

    local = TransformersGenerator(_gen_cfg(tiny_dir))
    # One model thread for the server and for the expected answers: a random model's next-token distribution is
    # nearly flat, so the float rounding of another thread's BLAS/OpenMP team could flip a seeded draw.
    model_thread = ThreadPoolExecutor(max_workers=1)
    lock, seen = threading.Lock(), {}

    class Server(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                attempt = seen[body["seed"]] = seen.get(body["seed"], 0) + 1
            if len(body["prompt"]) > 120:
                code, answer = 400, {"error": {"message": "prompt too long"}}
            elif attempt == 1:  # every request's first try meets a busy server
                code, answer = 503, {"error": {"message": "busy"}}
            else:
                req = {"seed": body["seed"], "temperature": body["temperature"], "top_p": body["top_p"],
                       "max_tokens": body["max_tokens"]}
                out = model_thread.submit(local.generate_ids, [body["prompt"]], [req]).result()[0]
                code, answer = 200, {"choices": [{"index": 0, "text": out["text"], "finish_reason": out["finish"]}],
                                     "usage": {"completion_tokens": out["n_tokens"]}}
            data = _json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = _gen_cfg(tiny_dir, engine="openai", base_url=f"http://127.0.0.1:{server.server_port}/v1",
                       concurrency=4, retries=2)
        engine = OpenAIGenerator(cfg, tokenizer=local.tokenizer, backoff_s=0.01)
        task = TaskConfig(name="t", template="rephrase_wiki", n=2, max_tokens=4, temperature=1.0, min_chars=0)
        docs = [{"id": "a", "text": "Short one."}, {"id": "b", "text": "word " * 200}, {"id": "c", "text": "Mid."}]
        reqs = [r for d in docs for r in requests_for(task, d, 0)]
        out = SynthGenerator(cfg, None, engine=engine).complete(reqs)
        # the server's path: one prompt a call, on the same model thread
        expected = model_thread.submit(lambda: [local.generate([reqs[i]])[0] for i in (0, 1, 4, 5)]).result()
        assert [out[i]["text"] for i in (0, 1, 4, 5)] == [e["text"] for e in expected]
        assert all("HTTP 400" in out[i]["error"] for i in (2, 3))
        assert sorted(seen[r["seed"]] for r in reqs) == [1, 1, 2, 2, 2, 2]  # 503 retried, 400 not
    finally:
        server.shutdown()
        model_thread.shutdown()


def test_report_section_from_stats():
    from qurate.stats import add
    from qurate.synth.report import generation_stats, prompt_stats, report, verdict_stats

    config = synth_config(rewards={"judge": {}})
    stats: dict = {}
    pairs = [generation_stats("rephrase", {"text": "x", "cached": False}, 7),
             generation_stats("rephrase", {"text": "y", "cached": True}, 5),
             generation_stats("rephrase", {"error": "PromptTooLong: ..."}, 0), prompt_stats("rephrase")]
    cands = _cands(config, TEXTS[:2], [{"judge": 4.1}, {"judge": 1.2}])
    pairs += [verdict_stats(cands[0], None, 1), verdict_stats(cands[1], "synth_not_best_of_n: rank 2 > 1", 2)]
    for p in pairs:
        for key, value in p.items():
            if key[0] == "_example":  # the wiring turns candidates into ("example", group, "000", ...) rows
                key = ("example", key[1], f"{value['rank']:03d}", *key[2:])
                value = {"docs": 1}
            add(stats, key, **value)
    section = report(stats, config)
    assert section["summary"]["requests"] == 3 and section["summary"]["failed requests (dead letter)"] == 1
    assert section["summary"]["model calls"] == 2 and section["summary"]["cache hits"] == 1
    assert section["summary"]["accepted"] == 1 and section["summary"]["acceptance rate"] == "50.0 %"
    assert section["tables"][1]["rows"] == [["rephrase", "synth_not_best_of_n", 1]]
    chart = section["charts"][0]
    assert chart["x"] == ["1.00", "4.00"] and chart["series"] == {"candidates": [1, 1], "accepted": [0, 1]}
    assert [e["title"].split(" — ")[0] for e in section["examples"]] == ["rephrase: accepted", "rephrase: rejected"]
    assert report({}, config) is None


def test_stage_spec_and_start_up_checks(tmp_path):
    from qurate.pipelines.registry import get
    from qurate.spec import StageContext

    spec = get("synth")
    assert spec.order == 60 and spec.adds_docs and not spec.default_on and spec.graph == "synth"
    spec.check(synth_config(cache_dir=str(tmp_path / "c")), StageContext())
    with pytest.raises(ValueError, match="seed file"):
        spec.check(synth_config(tasks=[{"name": "m", "template": "math", "from_stream": False,
                                        "seed_files": [str(tmp_path / "missing.jsonl")]}]), StageContext())
    with pytest.raises(ValueError, match="does not exist"):
        spec.check(synth_config(rewards={"judge": None, "classifier": {"path": str(tmp_path / "no_rm")}}),
                   StageContext())
    with pytest.raises(ValueError, match="custom"):
        TaskConfig(name="c", template="custom")
