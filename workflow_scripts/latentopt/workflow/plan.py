"""The work plan: which images exist, and how they are grouped into jobs (pure Python)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from latentopt.workflow.sources import ImageEntry, discover_splits
from latentopt.workflow.layout import BASELINE


@dataclass(frozen=True)
class Chunk:
    """The images one optimization job handles (a fixed slice of one split)."""

    split: str
    index: int
    entries: tuple[ImageEntry, ...]
    gate: bool = False  # one of the quality gate's chunks (the plan's first images)

    @property
    def name(self) -> str:
        return f"{'gate_' if self.gate else ''}{self.split}_{self.index:03d}"

    @property
    def image_ids(self) -> list[str]:
        return [e.image_id for e in self.entries]


@dataclass(frozen=True)
class Plan:
    splits: dict[str, list[ImageEntry]]
    chunks: list[Chunk]
    arms: list[str]

    @property
    def n_images(self) -> int:
        return sum(len(v) for v in self.splits.values())

    @property
    def gate_entries(self) -> list[ImageEntry]:
        return [e for c in self.chunks if c.gate for e in c.entries]

    @property
    def gate_arms(self) -> list[str]:
        """The loss arms that have a quality gate (every loss, when the plan has gate images)."""
        return [a for a in self.arms if a != BASELINE] if self.gate_entries else []


OPTIMIZE_RULE = re.compile(r"^(?P<prefix>.*?)optimize_(?P<chunk>(?:gate_)?[A-Za-z0-9]+_\d{3})_(?P<arm>.+)$")


def optimize_rule_name(chunk: Chunk, arm: str) -> str:
    """The optimization rule of one (chunk, arm): optimize_<chunk>_<arm> (rules/optimize.smk)."""
    return f"optimize_{chunk.name}_{arm}"


def parse_optimize_rule(name: str) -> tuple[str, str, str] | None:
    """(prefix, chunk name, arm) of an optimization rule's name (prefix: '<model>_' in a study,
    else ''), None for any other rule."""
    m = OPTIMIZE_RULE.match(name)
    return (m["prefix"], m["chunk"], m["arm"]) if m else None


def make_chunks(splits: dict[str, list[ImageEntry]], images_per_job: int, gate_images: int = 0) -> list[Chunk]:
    """Chunks of at most ``images_per_job`` images of one split. The plan's first ``gate_images``
    images (splits in order) form chunks of their own, the quality gate's; the rest follow."""
    chunks, left = [], gate_images
    for split, entries in splits.items():
        n_gate, index = min(left, len(entries)), 0
        left -= n_gate
        for part, gate in ((entries[:n_gate], True), (entries[n_gate:], False)):
            for start in range(0, len(part), images_per_job):
                chunks.append(Chunk(split, index, tuple(part[start : start + images_per_job]), gate))
                index += 1
    return chunks


def selected_losses(config: dict) -> list[str]:
    chosen = config.get("use_losses")
    return list(config["losses"]) if chosen is None else list(chosen)


def build_plan(config: dict) -> Plan:
    data = config["data"]
    root = Path(data["root"])
    splits = discover_splits(
        root,
        list(data["splits"]),
        single_split_name=data["single_split_name"],
        limit_per_split=data["limit_per_split"],
    )
    arms = [BASELINE, *selected_losses(config)]
    gate = int(config["quality_gate"]["images_per_loss"])
    return Plan(splits, make_chunks(splits, int(config["run"]["images_per_job"]), gate), arms)
