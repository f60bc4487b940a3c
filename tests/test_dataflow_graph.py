"""Offline check of the Dataflow job (issue 17): qurate's whole pipeline, built with DataflowRunner options, becomes
a Dataflow job without being submitted, so that a user's first Dataflow run does not fail on a pickling or graph
error. Needs the ``gcp`` extra (``apache-beam[gcp]``; ``scripts/setup.sh --test`` installs it).

How it stays offline, without credentials (a guard fails the test on any TCP/UDP connect made through Python's
socket module; nothing here opens a gRPC channel):

- ``--template_location`` (a classic template) runs DataflowRunner's whole job construction: its transform
  overrides, its check that every GroupByKey has a deterministic key coder, the Runner API proto, the worker
  environment and artifact staging; it writes the pipeline proto under ``--staging_location`` and the job JSON at
  the template path, and submits nothing. Both are local paths here (Beam's stager writes non-``gs://`` paths
  with ``open``).
- ``--dataflow_endpoint http://localhost:9``: Beam's option validator counts a localhost endpoint as "not the
  Dataflow service", so it skips the checks that call GCS (the buckets' soft-delete policy, default-bucket
  creation); the API client made for that endpoint is never used when a template is written.
- ``--no_auth``: no credential lookup (which would ask the GCE metadata server).

A fresh Python process then loads the staged proto and unpickles every DoFn and CombineFn and builds every coder,
as a Dataflow worker does, and lists the stage configuration objects inside them: they must equal the recipe's
sections (non-default values are set, so defaults cannot pass). ``--dry_run True`` (Beam's own switch: full option
validation with ``gs://`` paths, nothing staged or submitted) is checked on a small pipeline.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = "qurate-offline-check"
REGION = "europe-west4"
IMAGE = "europe-west4-docker.pkg.dev/qurate-offline-check/qurate/qurate:0.1.0"
# Non-default values in every stage's section: the configs found in the workers' payloads must be these.
OVERRIDES = {
    "seed": 7,
    "langid.min_score": 0.37,
    "heuristics.c4.min_num_sentences": 4,
    "dedup.threshold": 0.65,
    "quality.threshold": 0.1,
    "domains.rebalance.max_epochs": 3.0,
    "synth.reward_batch_size": 8,
    "decontam.min_ratio": 0.7,
}
ALL_STAGES = ["langid", "heuristics", "dedup", "quality", "domains", "synth", "decontam"]


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any TCP/UDP connection attempt in this process fails the test (Unix sockets stay allowed)."""
    real_connect = socket.socket.connect

    def refuse(sock: socket.socket, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            pytest.fail(f"the offline Dataflow check tried to connect to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _needs_gcp() -> None:
    """A failure, not a skip: CI installs the extra, and a skipped check would pass acceptance silently."""
    try:
        import google.cloud.dataflow_v1beta3  # noqa: F401
    except ImportError:
        pytest.fail("DataflowRunner needs the gcp extra: pip install -e '.[gcp]' (scripts/setup.sh --test does)")


def _template_args(folder: Path) -> list[str]:
    return ["--runner", "DataflowRunner", "--project", PROJECT, "--region", REGION,
            "--temp_location", str(folder / "temp"), "--staging_location", str(folder / "staging"),
            "--template_location", str(folder / "template.json"),
            "--sdk_container_image", IMAGE, "--sdk_location", "container",
            "--no_auth", "--dataflow_endpoint", "http://localhost:9"]


def _launch(recipe, stages: list[str] | None, out_dir: str, beam_args: list[str]):
    """What ``qurate run`` does: plan, then ``run_plan``, which must stop once the job is built (``GraphOnly``)
    instead of summing statistics that no worker wrote."""
    from qurate.pipelines.run import plan_run, run_plan
    from qurate.pipelines.runners import GraphOnly

    plan = plan_run(recipe, out_dir=out_dir, stage_names=stages)
    with pytest.raises(GraphOnly) as built:
        run_plan(plan, beam_args)
    return plan, str(built.value)


@pytest.mark.parametrize("stages", [None, ALL_STAGES], ids=["default-stages", "with-synth"])
def test_pipeline_becomes_a_dataflow_template_offline(stages, corpus_slice, tmp_path, no_network):
    _needs_gcp()
    from apache_beam.portability.api import beam_runner_api_pb2
    from qurate.pipelines.recipe import load_recipe

    recipe = load_recipe(None, {**OVERRIDES, "input.paths": [str(corpus_slice)]})
    (tmp_path / "staging").mkdir()
    plan, built = _launch(recipe, stages, str(tmp_path / "out"), _template_args(tmp_path))
    assert plan.stage_names == (ALL_STAGES if stages else [s for s in ALL_STAGES if s != "synth"])
    assert str(tmp_path / "template.json") in built and "qurate finalize" in built
    # What `qurate finalize OUT` needs later is there; nothing claims the run finished.
    assert (tmp_path / "out" / "_stats" / "launch.json").is_file()
    assert not (tmp_path / "out" / "manifest.json").exists()

    # The job: a batch job with our project, region, image and the staged pipeline proto.
    job = json.loads((tmp_path / "template.json").read_text())
    assert job["type"] == "JOB_TYPE_BATCH"
    env = job["environment"]
    options = env["sdkPipelineOptions"]["options"]
    assert (options["project"], options["region"], options["runner"]) == (PROJECT, REGION, "DataflowRunner")
    assert options["pipelineUrl"] == str(tmp_path / "staging" / "pipeline.pb")
    assert "use_runner_v2" in env["experiments"]
    images = {c["containerImage"] for pool in env["workerPools"] for c in pool["sdkHarnessContainerImages"]}
    assert images == {IMAGE}

    # The graph: every stage and every sink, under the names the Dataflow UI will show.
    proto = beam_runner_api_pb2.Pipeline.FromString((tmp_path / "staging" / "pipeline.pb").read_bytes())
    names = {t.unique_name for t in proto.components.transforms.values()}
    top = {name.split("/")[0] for name in names}
    assert {"read", *plan.stage_names} <= top
    for sink in ("Mixture", "Docs", "Rejected", "DeadLetter", "Stats"):
        assert f"write/{sink}" in names

    # A worker's view: a fresh process unpickles every payload and finds the recipe's sections in them.
    found = _worker_view(tmp_path / "staging" / "pipeline.pb")
    assert found["dofns"] >= 4 * len(plan.stage_names) and found["combinefns"] >= 1
    for spec in plan.specs:
        key = f"{spec.config.__module__}.{spec.config.__qualname__}"
        expected = recipe.section(spec.name).model_dump(mode="json")
        assert expected in found["configs"].get(key, []), f"{spec.name}: recipe section not in the job's payloads"


def test_dry_run_validates_gcs_options_offline(corpus_slice, tmp_path, no_network):
    """Beam's ``--dry_run``: the options are validated as for a real job (gs:// paths, project, region)."""
    _needs_gcp()
    from qurate.pipelines.recipe import load_recipe
    from qurate.pipelines.run import build_pipeline, plan_run
    from qurate.pipelines.runners import GraphOnly, graph_only, make_pipeline, pipeline_options

    recipe = load_recipe(None, {"input.paths": [str(corpus_slice)]})
    # A gs:// output: the graph names it, nothing is written (run_plan would write the marker there first).
    plan = plan_run(recipe, out_dir="gs://qurate-offline-check/out", stage_names=["langid"])
    args = ["--runner", "DataflowRunner", "--project", PROJECT, "--region", REGION,
            "--temp_location", "gs://qurate-offline-check/tmp", "--dry_run", "True"]
    pipeline = make_pipeline(pipeline_options(args))
    build_pipeline(pipeline, plan)
    with pytest.raises(GraphOnly, match="dry run"):
        pipeline.run()
    assert graph_only(pipeline_options([])) is None  # a local run executes
    assert graph_only(pipeline_options(["--runner", "PortableRunner", "--dry_run", "True"])) is None
    bad = [a if a != PROJECT else "Not A Project" for a in args]  # the same validation a real launch gets
    with pytest.raises(ValueError, match="project"):
        make_pipeline(pipeline_options(bad))


def _worker_view(pipeline_pb: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, str(pipeline_pb)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _configs_in(roots: list) -> dict[str, list]:
    """Every pydantic model reachable from ``roots`` (attributes, containers, closures), by class."""
    import types

    from pydantic import BaseModel

    found: dict[str, list] = {}
    seen: set[int] = set()
    stack = [(obj, 0) for obj in roots]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 12 or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, BaseModel):
            key = f"{type(obj).__module__}.{type(obj).__qualname__}"
            found.setdefault(key, []).append(obj.model_dump(mode="json"))
            continue
        if isinstance(obj, (str, bytes, int, float, type, types.ModuleType, types.BuiltinFunctionType)):
            continue
        children: list = []
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        elif isinstance(obj, types.FunctionType):
            children = [cell.cell_contents for cell in obj.__closure__ or ()]
        else:
            children = list(getattr(obj, "__dict__", {}).values())
            children += [getattr(obj, s) for s in getattr(type(obj), "__slots__", ()) if hasattr(obj, s)]
            if hasattr(obj, "func") and hasattr(obj, "args"):  # functools.partial
                children += [obj.func, obj.args, obj.keywords]
        stack.extend((child, depth + 1) for child in children)
    return found


def _worker_main(pipeline_pb: str) -> None:
    """Run as a script: what a Dataflow worker does with the staged proto, in a process that imported nothing."""
    from apache_beam.internal import pickler
    from apache_beam.portability import common_urns, python_urns
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners import pipeline_context

    proto = beam_runner_api_pb2.Pipeline.FromString(Path(pipeline_pb).read_bytes())
    combines = {common_urns.composites.COMBINE_PER_KEY.urn, common_urns.composites.COMBINE_GLOBALLY.urn,
                common_urns.combine_components.COMBINE_PER_KEY_PRECOMBINE.urn,
                common_urns.combine_components.COMBINE_PER_KEY_MERGE_ACCUMULATORS.urn,
                common_urns.combine_components.COMBINE_PER_KEY_EXTRACT_OUTPUTS.urn,
                common_urns.combine_components.COMBINE_GROUPED_VALUES.urn}
    objects, dofns, combinefns = [], 0, 0
    for transform in proto.components.transforms.values():
        if transform.spec.urn == common_urns.primitives.PAR_DO.urn:
            fn = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload).do_fn
            if fn.urn == python_urns.PICKLED_DOFN_INFO:
                objects.append(pickler.loads(fn.payload))
                dofns += 1
        elif transform.spec.urn in combines:
            fn = beam_runner_api_pb2.CombinePayload.FromString(transform.spec.payload).combine_fn
            if fn.urn == python_urns.PICKLED_COMBINE_FN:
                objects.append(pickler.loads(fn.payload))
                combinefns += 1
    context = pipeline_context.PipelineContext(proto.components)
    for coder_id in proto.components.coders:
        context.coders.get_by_id(coder_id)
    for windowing_id in proto.components.windowing_strategies:
        context.windowing_strategies.get_by_id(windowing_id)
    print(json.dumps({"dofns": dofns, "combinefns": combinefns, "configs": _configs_in(objects)}))


if __name__ == "__main__":
    _worker_main(sys.argv[1])
