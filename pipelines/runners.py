"""Beam pipeline options and runner choice.

``DirectRunner`` (the default) is mapped to Beam's FnApiRunner directly: Beam 2.77's DirectRunner first tries the
Prism runner, which downloads a binary, and an offline machine would wait on the network. FnApiRunner honours
``--direct_num_workers`` and ``--direct_running_mode`` (in_memory, multi_threading, multi_processing). Any other
``--runner`` (PortableRunner, FlinkRunner, SparkRunner, DataflowRunner) is passed to Beam unchanged.

Two DataflowRunner options build the job without running it: ``--template_location`` (a classic template: the job
JSON, and the pipeline proto under ``--staging_location``) and ``--dry_run True``. The pipelines made here then raise
``GraphOnly`` from ``run()``, so the launcher stops instead of summing statistics that no worker wrote (it used to
fail with a missing ``_stats/stats.jsonl`` after writing the template).
"""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TestOptions,
)

_DIRECT_NAMES = {None, "", "DirectRunner", "direct", "FnApiRunner"}
# Beam resolves runner names case-insensitively, with or without the "Runner" suffix.
_DATAFLOW_NAMES = {"dataflow", "dataflowrunner", "testdataflow", "testdataflowrunner",
                   "apache_beam.runners.dataflow.dataflow_runner.dataflowrunner"}


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    options = PipelineOptions(beam_args)
    # Docs are dicts built in module-level functions; saving the main session is not needed anywhere.
    options.view_as(SetupOptions).save_main_session = False
    return options


def runner_name(options: PipelineOptions) -> str:
    name = options.view_as(StandardOptions).runner
    return "DirectRunner" if name in _DIRECT_NAMES else str(name)


class GraphOnly(Exception):
    """``pipeline.run()`` built the job and nothing ran (a Dataflow template or dry run); the message says what
    was written. Not an error: a launcher prints it and exits 0."""


def graph_only(options: PipelineOptions) -> str | None:
    """What the runner produced instead of running the job, or None for a run that executes.

    Only DataflowRunner reads these options; Beam's own parsing accepts any string for ``--dry_run`` and treats
    every non-empty one as true, so this does too.
    """
    if runner_name(options).lower() not in _DATAFLOW_NAMES:
        return None
    template = options.view_as(GoogleCloudOptions).template_location
    if template:
        region = options.view_as(GoogleCloudOptions).region or "REGION"
        return (f"the Dataflow job was written as a classic template to {template} (pipeline proto under "
                f"{options.view_as(GoogleCloudOptions).staging_location}); nothing ran. Start it with `gcloud "
                f"dataflow jobs run JOB_NAME --gcs-location {template} --region {region}`; once it has finished, "
                f"`qurate finalize OUT` writes the manifest and the report")
    if options.view_as(TestOptions).dry_run:
        return "dry run: the Dataflow job was built and validated, not submitted; nothing ran"
    return None


# Listeners of user counters (namespace, name) -> value, told after every bundle the FnApiRunner finishes: the
# live per-stage counts of the CLI's progress line. Beam's FnApiRunner returns its metrics only at the end.
_COUNTER_LISTENERS: list[Callable[[dict[tuple[str, str], int]], None]] = []


def watch_counters(listener: Callable[[dict[tuple[str, str], int]], None]) -> Callable[[], None]:
    """Calls ``listener(counter deltas)`` after each bundle of a DirectRunner run; returns the unsubscribe."""
    _COUNTER_LISTENERS.append(listener)
    return lambda: _COUNTER_LISTENERS.remove(listener) if listener in _COUNTER_LISTENERS else None


def _user_counters(infos) -> dict[tuple[str, str], int]:
    from apache_beam.metrics import monitoring_infos as mi

    out: dict[tuple[str, str], int] = {}
    for info in infos:
        if info.urn == mi.USER_COUNTER_URN:
            key = (info.labels.get(mi.NAMESPACE_LABEL, ""), info.labels.get(mi.NAME_LABEL, ""))
            out[key] = out.get(key, 0) + mi.extract_counter_value(info)
    return out


def make_runner(options: PipelineOptions):
    """A runner instance for DirectRunner (no Prism download), else the runner name for Beam to resolve."""
    if options.view_as(StandardOptions).runner not in _DIRECT_NAMES:
        return options.view_as(StandardOptions).runner
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))

    class _WatchedFnApiRunner(fn_runner.FnApiRunner):
        def run_via_runner_api(self, pipeline_proto, options):
            _use_quick_exit_workers(pipeline_proto)
            return super().run_via_runner_api(pipeline_proto, options)

        def _execute_bundle(self, *args, **kwargs):
            response = super()._execute_bundle(*args, **kwargs)
            if _COUNTER_LISTENERS:
                try:
                    counters = _user_counters(response.process_bundle.monitoring_infos)
                except AttributeError:  # a Beam release that answers differently: no live counts, same run
                    counters = {}
                for listener in list(_COUNTER_LISTENERS):
                    listener(counters)
            return response

    return _WatchedFnApiRunner(provision_info=provision)


_BEAM_WORKER = b" -m apache_beam.runners.worker.sdk_worker_main"
_QURATE_WORKER = b" -m qurate.pipelines.worker_main"


def _use_quick_exit_workers(pipeline_proto) -> None:
    """Multi-process FnApiRunner: its worker command (``python -m apache_beam.runners.worker.sdk_worker_main``)
    becomes ``python -m qurate.pipelines.worker_main``, the same harness without the interpreter teardown that
    the runner waits for, worker by worker, at the end of every job (``worker_main.py``)."""
    from apache_beam.portability import python_urns

    for env in pipeline_proto.components.environments.values():
        if env.urn == python_urns.SUBPROCESS_SDK and env.payload.endswith(_BEAM_WORKER):
            env.payload = env.payload[: -len(_BEAM_WORKER)] + _QURATE_WORKER


class _Pipeline(beam.Pipeline):
    """``run()`` raises ``GraphOnly`` once the runner has only built the job (a template, a dry run)."""

    def run(self, test_runner_api: bool | str = "AUTO"):
        result = super().run(test_runner_api)
        built = graph_only(self._options)
        if built is not None:
            raise GraphOnly(built)
        return result


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    return _Pipeline(runner=make_runner(options), options=options)
