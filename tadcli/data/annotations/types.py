"""What every annotation reader returns, and the formats, with the rules other layers apply to each.

Every reader returns the file's content raw, as an :class:`AnnotationSet`: segments are not
clipped, de-duplicated or dropped, subset names are the file's own, and labels absent from the
class list (THUMOS14 ``Ambiguous``) are kept. Cleaning is an explicit, reported step of
``tad prepare`` (:mod:`tadcli.services.prepare`); the evaluator relies on raw ground truth because
the official ActivityNet evaluator does not de-duplicate it.

:class:`AnnotationFormat` values are the names ``tad prepare --format`` takes and the reports record.
What ``tad prepare`` and ``tad eval`` do differently per format is data here, not string comparisons
in the services: :class:`FormatRules` (``AnnotationFormat.rules``) and :data:`DATASET_FORMATS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tadcli.data.video import VIDEO_EXTENSIONS

__all__ = [
    "AMBIGUOUS_LABEL",
    "BSN_VIDEO_PREFIX",
    "without_bsn_prefix",
    "bsn_prefix_variants",
    "other_bsn_spelling",
    "AnnotationFormat",
    "FormatRules",
    "DATASET_FORMATS",
    "Instance",
    "VideoAnnotation",
    "AnnotationSet",
    "strip_video_extension",
]

AMBIGUOUS_LABEL = "Ambiguous"  # THUMOS14 segments excluded from evaluation; not a class
BSN_VIDEO_PREFIX = "v_"  # BSN's ActivityNet ids are the YouTube ids with this prefix (file names of the videos)


def without_bsn_prefix(video_id: str) -> str:
    """The ActivityNet (YouTube) id of a video named with or without BSN's :data:`BSN_VIDEO_PREFIX`."""
    return video_id.removeprefix(BSN_VIDEO_PREFIX)


def bsn_prefix_variants(video_id: str) -> tuple[str, ...]:
    """The names an ActivityNet video may have in files: as given, with and without the prefix (no repeats)."""
    return tuple(dict.fromkeys((video_id, BSN_VIDEO_PREFIX + video_id, without_bsn_prefix(video_id))))


def other_bsn_spelling(video_id: str) -> str:
    """The same ActivityNet video under the other spelling: without the prefix when it has it, else with it."""
    return without_bsn_prefix(video_id) if video_id.startswith(BSN_VIDEO_PREFIX) else BSN_VIDEO_PREFIX + video_id


class AnnotationFormat(StrEnum):
    """A format :func:`~tadcli.data.annotations.read_annotations` reads (the module doc of each reader says
    what the files look like)."""

    ACTIVITYNET_JSON = "activitynet-json"
    THUMOS14_TXT = "thumos14-txt"
    ACTIVITYNET_BSN = "activitynet-bsn"
    CHARADES_CSV = "charades-csv"
    MULTITHUMOS_JSON = "multithumos-json"
    EPIC_KITCHENS_VERB = "epic-kitchens-verb"
    EPIC_KITCHENS_NOUN = "epic-kitchens-noun"
    CUSTOM_CSV = "custom-csv"
    CUSTOM_JSON = "custom-json"

    @property
    def rules(self) -> FormatRules:
        """What reading this format implies for ``tad prepare`` and ``tad eval``."""
        return _FORMAT_RULES[self]


@dataclass(frozen=True)
class FormatRules:
    """The facts about one format that the layers above the readers act on.

    Attributes:
        takes_class_list: a class list file may replace the file's classes (its files do not name them
            all); the other formats name their own and refuse one.
        profile: for formats whose reader fixes the subset names, the dataset profile of the files; ``tad
            eval`` takes it when no dataset is given.
        eval_subset: with ``profile``: the subset the results of that dataset are reported on, which ``tad
            eval`` scores when no subset is given.
        drops_ambiguous: evaluation leaves out the instances labelled :data:`AMBIGUOUS_LABEL`.
        strips_bsn_prefix: evaluation takes the video ids without :data:`BSN_VIDEO_PREFIX` (the ids that
            ActivityNet results files use).
    """

    takes_class_list: bool = False
    profile: str | None = None
    eval_subset: str | None = None
    drops_ambiguous: bool = False
    strips_bsn_prefix: bool = False


_FORMAT_RULES = {
    AnnotationFormat.ACTIVITYNET_JSON: FormatRules(takes_class_list=True),
    AnnotationFormat.THUMOS14_TXT: FormatRules(profile="thumos14", eval_subset="test", drops_ambiguous=True),
    AnnotationFormat.ACTIVITYNET_BSN: FormatRules(
        profile="activitynet", eval_subset="validation", strips_bsn_prefix=True
    ),
    AnnotationFormat.CHARADES_CSV: FormatRules(profile="charades", eval_subset="testing"),
    AnnotationFormat.MULTITHUMOS_JSON: FormatRules(takes_class_list=True, profile="multithumos", eval_subset="testing"),
    AnnotationFormat.EPIC_KITCHENS_VERB: FormatRules(profile="epic-kitchens", eval_subset="val"),
    AnnotationFormat.EPIC_KITCHENS_NOUN: FormatRules(profile="epic-kitchens", eval_subset="val"),
    AnnotationFormat.CUSTOM_CSV: FormatRules(takes_class_list=True),
    AnnotationFormat.CUSTOM_JSON: FormatRules(takes_class_list=True),
}

# dataset profile -> the formats ``tad prepare`` reads for it: the dataset's own first, then the
# ActivityNet-style JSON that ActionFormer / OpenTAD ship (and a prepared dataset's manifest.json)
DATASET_FORMATS: dict[str, tuple[AnnotationFormat, ...]] = {
    "thumos14": (AnnotationFormat.THUMOS14_TXT, AnnotationFormat.ACTIVITYNET_JSON),
    "activitynet": (AnnotationFormat.ACTIVITYNET_JSON, AnnotationFormat.ACTIVITYNET_BSN),
    "charades": (AnnotationFormat.CHARADES_CSV, AnnotationFormat.ACTIVITYNET_JSON),
    "multithumos": (AnnotationFormat.MULTITHUMOS_JSON, AnnotationFormat.ACTIVITYNET_JSON),
    "epic-kitchens": (
        AnnotationFormat.EPIC_KITCHENS_NOUN,
        AnnotationFormat.EPIC_KITCHENS_VERB,
        AnnotationFormat.ACTIVITYNET_JSON,
    ),
    "custom": (AnnotationFormat.CUSTOM_CSV, AnnotationFormat.CUSTOM_JSON, AnnotationFormat.ACTIVITYNET_JSON),
    "synthetic": (AnnotationFormat.CUSTOM_JSON,),
}


@dataclass(frozen=True)
class Instance:
    """One annotated action: ``start`` and ``end`` in seconds, ``label`` a class name."""

    start: float
    end: float
    label: str


@dataclass
class VideoAnnotation:
    """The annotation of one video, as the file gives it (``None`` where it says nothing)."""

    video_id: str
    subset: str
    duration: float | None  # seconds
    fps: float | None
    num_frames: int | None
    instances: list[Instance]


@dataclass
class AnnotationSet:
    """All videos of an annotation file, its class list (class index = position) and its format."""

    videos: dict[str, VideoAnnotation]
    classes: list[str]
    format: AnnotationFormat

    def subsets(self) -> list[str]:
        """Subset names in order of first appearance."""
        return list(dict.fromkeys(video.subset for video in self.videos.values()))


def strip_video_extension(name: str) -> str:
    """``"clip01.mp4"`` -> ``"clip01"``; names without a video extension are returned unchanged."""
    lowered = name.lower()
    for extension in VIDEO_EXTENSIONS:
        if lowered.endswith(extension):
            return name[: -len(extension)]
    return name
