"""The work plan: which images exist, and how they are grouped into jobs (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .images import ImageEntry, discover_splits
from .layout import BASELINE


@dataclass(frozen=True)
class Chunk:
    """The images one optimization job handles (a fixed slice of one split)."""

    split: str
    index: int
    entries: tuple[ImageEntry, ...]

    @property
    def name(self) -> str:
        return f"{self.split}_{self.index:03d}"

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


def make_chunks(splits: dict[str, list[ImageEntry]], images_per_job: int) -> list[Chunk]:
    chunks = []
    for split, entries in splits.items():
        for start in range(0, len(entries), images_per_job):
            chunks.append(Chunk(split, start // images_per_job, tuple(entries[start : start + images_per_job])))
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
    return Plan(splits, make_chunks(splits, int(config["run"]["images_per_job"])), arms)
