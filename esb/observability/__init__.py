"""Seeing inside the bus: structured logs (:mod:`.logging`), their per-task context
(:mod:`.context`) and OpenTelemetry traces across every hop (:mod:`.tracing`,
:mod:`.tracecontext`). ADR 0019."""
