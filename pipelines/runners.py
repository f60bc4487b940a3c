"""Beam pipeline options and runner choice.

``DirectRunner`` (the default) is mapped to Beam's FnApiRunner directly: Beam 2.77's DirectRunner first tries the
Prism runner, which downloads a binary, and an offline machine would wait on the network. FnApiRunner honours
``--direct_num_workers`` and ``--direct_running_mode`` (in_memory, multi_threading, multi_processing). Any other
``--runner`` (PortableRunner, FlinkRunner, SparkRunner, DataflowRunner) is passed to Beam unchanged.
"""

from __future__ import annotations

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


def make_runner(options: PipelineOptions):
    """A runner instance for DirectRunner (no Prism download), else the runner name for Beam to resolve."""
    if options.view_as(StandardOptions).runner not in _DIRECT_NAMES:
        return options.view_as(StandardOptions).runner
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    return beam.Pipeline(runner=make_runner(options), options=options)
