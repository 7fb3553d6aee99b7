"""The Helm chart sets the log and tracing variables from its values (ADR 0019), tracing off by
default. There is no ``helm`` here: values.yaml is parsed, and the StatefulSet is checked with
every ``if`` branch taken and each template action replaced by a placeholder, so its YAML stays
well formed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[3] / "helm" / "esb"


def _all_branches(template: str) -> dict:
    lines = [line for line in template.splitlines()
             if not re.match(r"\s*\{\{-? (if|else|end)\b.*\}\}\s*$", line)]
    text = re.sub(r"\{\{-?\s*toYaml.*?\}\}", " {}", "\n".join(lines))
    return yaml.safe_load(re.sub(r"\{\{.*?\}\}", "x", text))


def test_values_default_to_json_logs_and_tracing_off() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["logging"] == {"format": "json", "level": "info"}
    assert values["tracing"]["exporter"] == "none"


def test_the_statefulset_sets_log_and_otel_variables_from_values() -> None:
    template = (CHART / "templates" / "statefulset.yaml").read_text()
    rendered = _all_branches(template)
    env = {e["name"] for e in rendered["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"ESB_LOG_FORMAT", "ESB_LOG_LEVEL", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME",
            "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS"} <= env
    for key in ("logging.format", "logging.level", "tracing.exporter", "tracing.endpoint",
                "tracing.sampler", "tracing.samplerArg", "tracing.serviceName"):
        assert f".Values.{key}" in template, key
