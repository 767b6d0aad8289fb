"""Sweeps: a ``losses:`` entry that lists values for a setting becomes one arm per combination
(pure Python, no torch).

``losses: {psnr: {loss: {name: psnr}, lr: [0.02, 0.05], iterations: [25, 50]}}`` becomes four
ordinary arms, ``psnr-lr0.02-it25``, ``psnr-lr0.02-it50``, ``psnr-lr0.05-it25``, ``psnr-lr0.05-it50``
(the cartesian product: keys in :data:`SWEEPABLE`'s order, values in the listed order), each
with its own results folder, gate, dataset and evaluation. The naming rule:

* ``<entry>`` then, for each swept key in :data:`SWEEPABLE`'s order, ``-<tag><value>``; only the
  keys given as a list are named (a one-value list is a sweep of one arm, named with its value, so
  that the name stays when the list grows later; a plain number is no sweep and names nothing);
* values in one canonical form (:func:`format_value`): integers and integral numbers as integers
  (``100``, ``1.0`` -> ``1``), other numbers by Python's shortest round-trip repr with the exponent
  written without ``+`` or leading zeros (``0.1``, ``1e-5``, ``2.5e-7``, ``1e20``);
* user-given entry names match ``^[a-z][a-z0-9_]*$``, so ``-`` marks a generated name: a name with
  ``-`` must carry its ``sweep`` record, and the record must give that very name.

Each generated arm records what it came from in its block, ``sweep: {base: psnr, values: {lr:
0.02, iterations: 25}}``; :meth:`latentopt.workflow.settings.ArmSettings.from_config` leaves the
record out of the rule params and the fingerprint, so an arm of a sweep has the settings of a
hand-written arm with the same values (apart from its name). :func:`sweep_groups` reads the
records back (per entry, its arms and their values).

:func:`expand_sweeps` runs after coercion and schema validation (the Snakefile,
``latentopt.workflow.config.load_config``) and is idempotent: an expanded config (re-validated in
a Snakemake module, or handed to a job) stays the same. It also resolves ``use_losses`` (an entry
name selects all its arms) and copies ``analysis.hypotheses.expected_fid.<entry>`` to each of the
entry's arms that has no range of its own. Characters of generated names: ``[a-z0-9_.-]``, safe in
paths; in a regex (Snakemake's wildcard constraints) they go through
:func:`latentopt.workflow.layout.one_of`, which escapes the ``.``.
"""

from __future__ import annotations

import copy
import itertools
import re

# swept key -> its tag in arm names, in the order names (and the product) take them
SWEEPABLE = {"lr": "lr", "iterations": "it", "eps": "eps"}
SEP = "-"
RECORD = "sweep"  # the key of the record in a generated arm's block
ENTRY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SweepError(ValueError):
    """A sweep that cannot be expanded; the message starts with the key (a ConfigError's base)."""


def format_value(value) -> str:
    """The canonical text of a swept value in an arm name: ``0.1``, ``1e-5``, ``100``, ``1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def arm_name(base: str, values: dict) -> str:
    """``base`` with a ``-<tag><value>`` per swept key, in :data:`SWEEPABLE`'s order."""
    return base + "".join(f"{SEP}{SWEEPABLE[k]}{format_value(values[k])}" for k in SWEEPABLE if k in values)


def swept_keys(block: dict) -> list[str]:
    """The keys of an entry given as a list of values, in :data:`SWEEPABLE`'s order."""
    return [k for k in SWEEPABLE if isinstance(block.get(k), list)]


def expand_entry(base: str, block: dict) -> dict[str, dict]:
    """{arm name: block} of one entry's sweep, in product order ({base: block} when nothing is swept)."""
    keys = swept_keys(block)
    if not keys:
        return {base: block}
    out = {}
    for combo in itertools.product(*(block[k] for k in keys)):
        values = dict(zip(keys, combo))
        arm = {k: copy.deepcopy(v) for k, v in block.items()}
        arm.update(values)
        arm[RECORD] = {"base": base, "values": dict(values)}
        name = arm_name(base, values)
        if name in out:  # distinct values, one text: cannot happen with unique values; guarded
            raise SweepError(f"losses.{base}: values {out[name][RECORD]['values']} and {values} give the same arm name {name!r}")
        out[name] = arm
    return out


def _check_generated(name: str, block: dict) -> None:
    record = block.get(RECORD)
    if record is None:
        raise SweepError(f"losses.{name}: names with {SEP!r} are reserved for the arms of a sweep (the pipeline names "
                         f"them); use letters, digits and '_' (^[a-z][a-z0-9_]*$)")
    base, values = record["base"], record["values"]
    if not ENTRY_NAME.match(base):
        raise SweepError(f"losses.{name}.{RECORD}.base: {base!r} is not an entry name (^[a-z][a-z0-9_]*$)")
    if name != arm_name(base, values):
        raise SweepError(f"losses.{name}.{RECORD}: the record {record} names the arm {arm_name(base, values)!r}, not {name!r}")
    for key, value in values.items():
        if block.get(key) != value:
            raise SweepError(f"losses.{name}.{key}: {block.get(key)!r} differs from the sweep record's {value!r}")


def expand_sweeps(config: dict) -> dict:
    """Replace every entry of ``config['losses']`` that lists values by its arms, in place (the
    entries' order kept, each entry's arms where it stood); resolve ``use_losses`` and
    ``analysis.hypotheses.expected_fid`` by entry name; return ``config``. Idempotent."""
    losses = config.get("losses")
    if not isinstance(losses, dict):
        return config
    expanded: dict[str, dict] = {}
    for name, block in losses.items():
        if RECORD in block or SEP in name:
            _check_generated(name, block)
            if swept_keys(block):
                raise SweepError(f"losses.{name}.{swept_keys(block)[0]}: an arm of a sweep takes one value, not a list")
            arms = {name: block}
        else:
            arms = expand_entry(name, block)
        for arm, arm_block in arms.items():
            if arm in expanded and expanded[arm] != arm_block:
                raise SweepError(f"losses.{arm}: defined twice with different settings (by a sweep and by an arm given as such)")
            expanded[arm] = arm_block
    losses.clear()
    losses.update(expanded)
    groups = sweep_groups(config)
    if config.get("use_losses") is not None:
        chosen = []
        for name in config["use_losses"]:
            for arm in [name] if name in losses or name not in groups else [g["arm"] for g in groups[name]]:
                if arm not in chosen:
                    chosen.append(arm)
        config["use_losses"] = chosen
    expected = ((config.get("analysis") or {}).get("hypotheses") or {}).get("expected_fid")
    if isinstance(expected, dict):
        for base in [b for b in expected if b in groups]:
            for g in groups[base]:
                expected.setdefault(g["arm"], copy.deepcopy(expected[base]))
    return config


def sweep_groups(config: dict) -> dict[str, list[dict]]:
    """Per swept entry (base name), its arms in order: ``[{"arm": name, "values": {key: value}}]``
    (from the arms' ``sweep`` records; entries without a sweep are absent)."""
    groups: dict[str, list[dict]] = {}
    for name, block in (config.get("losses") or {}).items():
        record = block.get(RECORD) if isinstance(block, dict) else None
        if record:
            groups.setdefault(record["base"], []).append({"arm": name, "values": dict(record["values"])})
    return groups
