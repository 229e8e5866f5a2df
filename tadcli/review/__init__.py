"""Reviewing detections: reading back any events file, ground truth as events, and the self-contained HTML
page that shows a video beside its timeline (``tad review``, ``tad detect --html``)."""

from tadcli.review.events_file import EventsFile, FileVideo, read_events_file
from tadcli.review.page import ReviewVideo, review_page, write_review_page
from tadcli.review.truth import read_ground_truth_events, truth_of

__all__ = [
    "EventsFile",
    "FileVideo",
    "ReviewVideo",
    "read_events_file",
    "read_ground_truth_events",
    "review_page",
    "truth_of",
    "write_review_page",
]
