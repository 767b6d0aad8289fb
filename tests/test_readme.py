"""The README documents every config key the schema accepts."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _keys(node, prefix=""):
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if "properties" in sub:
            yield from _keys(sub, dotted + ".")
        elif isinstance(sub.get("additionalProperties"), dict):
            yield from _keys(sub["additionalProperties"], dotted + ".<name>.")
        else:
            yield dotted


def test_every_config_key_is_in_the_readme():
    schema = yaml.safe_load((REPO / "workflow_scripts" / "latentopt" / "config.schema.yaml").read_text())
    readme = (REPO / "README.md").read_text()
    lines = readme.splitlines()

    def documented(key: str) -> bool:
        if f"`{key}`" in readme:
            return True
        parent, last = key.rsplit(".", 1)
        # a table row that names a sibling in full and this key as `last`
        return any(f"`{parent}." in line and f"`{last}`" in line for line in lines)

    missing = [k for k in _keys(schema) if not documented(k)]
    assert not missing, f"undocumented config keys: {missing}"
