"""Stream processors and CEP patterns: catalog services, the job worker, the REST views."""

from __future__ import annotations

from typing import Any

from esb.processing.feature import ProcessingFeature
from esb.processing.service import PatternService, ProcessorService


def install(app: Any) -> ProcessingFeature:
    from agents.processors import ProcessingWorker
    from esb.views import API_PREFIX, patterns, processors

    runtime = app.runtime
    processor_service = ProcessorService(runtime.catalog, runtime.streams.directory,
                                         quotas=runtime.quotas)
    pattern_service = PatternService(runtime.catalog, runtime.streams,
                                     runtime.settings.default_partitions, quotas=runtime.quotas)
    worker = ProcessingWorker(runtime, processor_service, pattern_service,
                              loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(worker)
    feature = ProcessingFeature(processor_service, pattern_service, worker)
    app.processing = feature
    processors.blueprint.register(app, url_prefix=API_PREFIX)
    patterns.blueprint.register(app, url_prefix=API_PREFIX)
    return feature
