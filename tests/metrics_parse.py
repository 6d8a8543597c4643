"""Parses Prometheus text from stdin with the reference parser
(prometheus_client) and prints {"family{labels}": value} as JSON.
Fails (non-zero exit, traceback) on any syntax error."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = {}
types = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
print(json.dumps({"samples": out, "types": types}))
