"""What ``ingest_verify`` found: per problem class a count and the first examples, printed one
line a class with a summary (:class:`Report`)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

#: Problem classes, in report order, with what they mean.
PROBLEMS: dict[str, str] = {
    "row_without_file": "IngestRecords rows without their lake file",
    "file_hash_mismatch": "lake files whose payload does not hash to their row's hash_sha256",
    "row_hash_mismatch": "IngestRecords rows whose payload does not hash to their hash_sha256",
    "file_without_row": "lake files without an IngestRecords row",
    "duplicate_rows": "resources with several IngestRecords rows of the same content",
    "stuck_in_progress": "work items in_progress without a live lease",
    "completed_without_record": "completed work items whose content_hash is not their latest row's",
    "ground_truth_missing": "expected resources not completed",
    "ground_truth_unexpected": "completed resources not in the ground truth",
}
DEFAULT_EXAMPLES = 5


@dataclass
class Finding:
    """How many times one problem class occurred, and the first examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str, limit: int) -> None:
        self.count += 1
        if len(self.examples) < limit:
            self.examples.append(example)

    def add_sorted(self, example: str, limit: int) -> None:
        """Count ``example``, keeping the ``limit`` smallest examples, in order."""
        self.count += 1
        if len(self.examples) < limit or (limit and example < self.examples[-1]):
            bisect.insort(self.examples, example)
            del self.examples[limit:]


@dataclass
class Report:
    source_name: str
    findings: dict[str, Finding] = field(
        default_factory=lambda: {name: Finding() for name in PROBLEMS}
    )
    temp_files: Finding = field(default_factory=Finding)
    pending_files: Finding = field(default_factory=Finding)
    totals: dict[str, int] = field(default_factory=dict)
    checked_ground_truth: bool = False

    @property
    def problems(self) -> int:
        return sum(finding.count for finding in self.findings.values())

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def lines(self) -> list[str]:
        """One line per problem class (``OK`` or its count and examples), then a summary."""
        out = []
        for name, description in PROBLEMS.items():
            if name.startswith("ground_truth") and not self.checked_ground_truth:
                continue
            finding = self.findings[name]
            status = "OK" if not finding.count else f"{finding.count} PROBLEMS"
            line = f"{name}: {status} ({description})"
            if finding.examples:
                line += ", e.g. " + "; ".join(finding.examples)
            out.append(line)
        if self.temp_files.count:
            out.append(
                f"warning: {self.temp_files.count} leftover temporary files (not records), "
                "e.g. " + "; ".join(self.temp_files.examples)
            )
        if self.pending_files.count:
            out.append(
                f"warning: {self.pending_files.count} pending lake files (not records until "
                "the next run settles them), e.g. " + "; ".join(self.pending_files.examples)
            )
        totals = ", ".join(f"{key}={value}" for key, value in self.totals.items())
        verdict = "OK" if self.ok else f"{self.problems} problems"
        out.append(f"ingest_verify {self.source_name}: {verdict} ({totals})")
        return out
