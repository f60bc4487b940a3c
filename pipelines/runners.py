"""Beam pipeline options and runner choice.

``DirectRunner`` (the default) is mapped to Beam's FnApiRunner directly: Beam 2.77's DirectRunner first tries the
Prism runner, which downloads a binary, and an offline machine would wait on the network. FnApiRunner honours
``--direct_num_workers`` and ``--direct_running_mode`` (in_memory, multi_threading, multi_processing). Any other
``--runner`` (PortableRunner, FlinkRunner, SparkRunner, DataflowRunner) is passed to Beam unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

_DIRECT_NAMES = {None, "", "DirectRunner", "direct", "FnApiRunner"}


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    options = PipelineOptions(beam_args)
    # Docs are dicts built in module-level functions; saving the main session is not needed anywhere.
    options.view_as(SetupOptions).save_main_session = False
    return options


def runner_name(options: PipelineOptions) -> str:
    name = options.view_as(StandardOptions).runner
    return "DirectRunner" if name in _DIRECT_NAMES else str(name)


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


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    return beam.Pipeline(runner=make_runner(options), options=options)
