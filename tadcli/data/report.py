"""What ``tad prepare`` and ``tad prepare --check`` found and decided: :class:`DatasetReport`, its JSON
(``report.json``) and its text (``report.txt``, and what the CLI shows)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tadcli.data.checks import Issue, IssueKind, Severity, SubsetCounts
from tadcli.data.prepared import REPORT_JSON_FILE, REPORT_TEXT_FILE
from tadcli.io.atomic import write_text_atomic
from tadcli.io.jsonio import write_json_atomic

__all__ = ["DatasetReport", "write_report"]


@dataclass
class DatasetReport:
    """What ``tad prepare`` (``mode="prepare"``) or ``tad prepare --check`` (``mode="check"``) found.

    A prepared dataset is usable when no issue is an error. A check also fails on anything dropped or
    changed: the folder no longer matches what was prepared.
    """

    mode: Literal["prepare", "check"]
    dataset_dir: str
    profile: str
    source: str  # annotation path and format, or the manifest checked
    counts: dict[str, SubsetCounts]
    issues: list[Issue]
    videos_probed: int = 0
    videos_from_cache: int = 0
    annotations: str | None = None  # absolute path of the annotations prepared (None: a check)
    decoder: str | None = None  # the video decoder chosen and its version, "decord 3.4.0" (None: no video probed)
    videos_per_decoder: dict[str, int] = field(default_factory=dict)  # decoder -> readable videos it read

    @property
    def usable(self) -> bool:
        return not self.failing_issues()

    def failing_issues(self) -> list[Issue]:
        """The issues that make the dataset unusable (errors; for a check also anything dropped or changed)."""
        if self.mode == "prepare":
            failing = (Severity.ERROR,)
        else:
            failing = (Severity.ERROR, Severity.DROPPED, Severity.CHANGED)
        return [issue for issue in self.issues if issue.severity in failing]

    def issue_counts(self) -> dict[IssueKind, int]:
        """kind -> number of issues, most severe kinds first."""
        counts = Counter(issue.kind for issue in self.issues)
        return {kind: counts[kind] for kind in IssueKind if counts[kind]}

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "usable": self.usable,
            "dataset_dir": self.dataset_dir,
            "profile": self.profile,
            "source": self.source,
            "annotations": self.annotations,
            "videos_probed": self.videos_probed,
            "videos_from_cache": self.videos_from_cache,
            "decoder": self.decoder,
            "videos_per_decoder": self.videos_per_decoder,
            "counts": {subset: asdict(counts) for subset, counts in self.counts.items()},
            "issue_counts": self.issue_counts(),
            "decisions": {kind: kind.decision for kind in self.issue_counts()},
            "issues": [dict(asdict(issue), severity=issue.severity) for issue in self.issues],
        }

    def summary(self, examples_per_kind: int = 5) -> str:
        """A human-readable report: verdict, counts per subset, then each issue kind with examples."""
        verb = "prepared" if self.mode == "prepare" else "checked"
        verdict = "usable" if self.usable else f"NOT usable ({self._why_not_usable()})"
        lines = [f"{self.dataset_dir}: {verb}, profile '{self.profile}', {verdict}", f"source: {self.source}"]
        lines.append(f"videos probed: {self.videos_probed} (from cache: {self.videos_from_cache})")
        if self.decoder is not None:
            read = ", ".join(f"{name} {count}" for name, count in self.videos_per_decoder.items())
            lines.append(f"decoder: {self.decoder} (TAD_DECODER=decord|pyav to change){f'; videos read by {read}' if read else ''}")
        for subset, counts in self.counts.items():
            lines.append(f"  {subset}: {counts.videos} videos, {counts.instances} instances, {counts.classes} classes")
        for kind, count in self.issue_counts().items():
            lines.append(f"{kind.severity.upper()} {kind} x{count}: {kind.decision}")
            examples = [issue for issue in self.issues if issue.kind == kind][:examples_per_kind]
            lines.extend(f"    {_issue_where(issue)}{issue.detail}" for issue in examples)
            if count > len(examples):
                lines.append(f"    ... {count - len(examples)} more in {REPORT_JSON_FILE}")
        return "\n".join(lines)

    def _why_not_usable(self) -> str:
        counts = Counter(issue.kind for issue in self.failing_issues())
        reasons = ", ".join(f"{kind} x{counts[kind]}" for kind in IssueKind if counts[kind])  # errors first
        if self.mode == "check":
            return f"{reasons}: the folder no longer matches what was prepared; run 'tad prepare' again"
        return reasons


def _issue_where(issue: Issue) -> str:
    parts = [part for part in (issue.subset, issue.video_id) if part]
    return f"{'/'.join(parts)}: " if parts else ""


def write_report(dataset_dir: str | Path, report: DatasetReport) -> Path:
    """Write ``report.json`` and ``report.txt`` (atomically); returns the text report's path."""
    root = Path(dataset_dir)
    write_json_atomic(root / REPORT_JSON_FILE, report.to_json(), indent=1)
    return write_text_atomic(root / REPORT_TEXT_FILE, report.summary(examples_per_kind=20) + "\n")
