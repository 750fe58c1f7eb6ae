"""Statistics and plot of the OMBRIA label-efficiency experiment (``scripts/ombria_label_efficiency.py``).

The paired difference (HFD minus SAR-only) at a label fraction is judged by a 95 % interval from a bootstrap
over test chips and seeds: each draw resamples the seeds and the test chips with replacement and averages the
per-chip differences of the same chip and seed, so both the seed-to-seed spread and the chip-to-chip spread of
the test set widen the interval. A paired t-interval over the seeds' mean differences is printed beside it for
readers used to it; the verdict uses the bootstrap. The same intervals compare the diagnostic arm (HFD with
the feature loss alone, no pseudo-labels) with each of the two arms, to tell the two parts of distillation
apart.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from scipy.stats import t as student_t

from ombria.report import mean_std

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (backend first)

BOOTSTRAP_DRAWS = 4000
#: The gain the issue expects at 10 % labels (per-chip mIoU).
EXPECTED_GAIN = 0.03


@dataclass
class Arm:
    """The finished runs of one arm at one fraction: seed -> test report (with ``per_chip``)."""

    reports: dict[int, dict] = field(default_factory=dict)

    def means(self) -> list[float]:
        return [r["per_chip_miou"] for r in self.reports.values()]


@dataclass
class Point:
    """One label fraction: its labelled chip count and the arms (SAR-only is empty at 0 %; the diagnostic
    arms exist only at the fractions where they were run)."""

    fraction: float
    labelled: int
    hfd: Arm = field(default_factory=Arm)
    sar_only: Arm = field(default_factory=Arm)
    hfd_features: Arm = field(default_factory=Arm)
    hfd_features_balanced: Arm = field(default_factory=Arm)
    hfd_balanced: Arm = field(default_factory=Arm)


@dataclass
class Interval:
    mean: float
    low: float
    high: float
    seeds: int


def _per_chip(report: dict) -> dict[str, float]:
    return {chip["name"]: chip["miou"] for chip in report["per_chip"] if not np.isnan(chip["miou"])}


def paired_chip_differences(arm: Arm, other: Arm) -> np.ndarray:
    """(seeds, chips) ``arm`` minus ``other`` per-chip mIoU: seeds both arms finished, chips both scored."""
    seeds = sorted(set(arm.reports) & set(other.reports))
    if not seeds:
        return np.zeros((0, 0))
    first = [_per_chip(arm.reports[s]) for s in seeds]
    second = [_per_chip(other.reports[s]) for s in seeds]
    chips = sorted(set.intersection(*(set(a) & set(b) for a, b in zip(first, second, strict=True))))
    return np.array([[a[c] - b[c] for c in chips] for a, b in zip(first, second, strict=True)])


def bootstrap_interval(differences: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> Interval:
    """Mean of ``differences`` (seeds, chips) and its 95 % bootstrap interval resampling seeds and chips."""
    seeds, chips = differences.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, seeds, (draws, seeds))
    columns = rng.integers(0, chips, (draws, chips))
    stats = differences[rows[:, :, None], columns[:, None, :]].mean(axis=(1, 2))
    low, high = np.percentile(stats, [2.5, 97.5])
    return Interval(float(differences.mean()), float(low), float(high), seeds)


def t_interval(values: list[float]) -> Interval:
    """Paired t-interval (95 %) of the mean of per-seed differences."""
    mean = statistics.mean(values)
    half = student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return Interval(mean, mean - half, mean + half, len(values))


def seed_differences(arm: Arm, other: Arm) -> list[float]:
    """Per seed finished in both arms: ``arm`` minus ``other`` per-chip mIoU."""
    both = sorted(set(arm.reports) & set(other.reports))
    return [arm.reports[s]["per_chip_miou"] - other.reports[s]["per_chip_miou"] for s in both]


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _verdict(interval: Interval | None) -> str:
    if interval is None or interval.seeds < 2:
        return "not enough seeds yet"
    if interval.low > 0:
        return "**helps** (interval above 0)"
    if interval.high < 0:
        return "**hurts** (interval below 0)"
    return "no difference shown (interval spans 0)"


def intervals(arm: Arm, other: Arm) -> tuple[Interval | None, Interval | None]:
    """(bootstrap, t) intervals of the paired difference ``arm`` minus ``other``; None with fewer than two
    seeds."""
    differences = seed_differences(arm, other)
    if len(differences) < 2:
        return None, None
    return bootstrap_interval(paired_chip_differences(arm, other)), t_interval(differences)


def _interval_text(interval: Interval | None) -> str:
    return "-" if interval is None else f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"


def results_table(points: list[Point], otsu: float, teacher: float | None) -> str:
    rows = [
        "| labels | labelled chips | SAR-only student | HFD student | HFD − SAR-only, 95 % bootstrap "
        "(chips × seeds) | paired t-interval (seeds) | distillation |",
        "|---|---|---|---|---|---|---|",
    ]
    for point in points:
        boot, tint = intervals(point.hfd, point.sar_only)
        hfd, sar = point.hfd.means(), point.sar_only.means()
        seeds = f" ({len(hfd)}/{len(point.sar_only.reports) if point.fraction else '-'} seeds)"
        verdict = _verdict(boot) if point.fraction else "label-free: compare with Otsu"
        rows.append(
            f"| {_pct(point.fraction)} | {point.labelled} | {mean_std(sar) if point.fraction else 'n/a'} | "
            f"{mean_std(hfd)}{seeds} | {_interval_text(boot)} | {_interval_text(tint)} | {verdict} |"
        )
    rows.append(f"| Otsu on S1 after (no labels) | - | - | {otsu:.3f} | - | - | - |")
    if teacher is not None:
        label = "EO teacher, S2 (all labels; optical at test time)"
        rows.append(f"| {label} | all | - | {teacher:.3f} | - | - | - |")
    return "\n".join(rows)


def _by_verdict(points: list[Point], arm: str, other: str) -> tuple[list[str], list[str], list[str]]:
    """The fractions where ``arm`` minus ``other`` is above, around and below 0 beyond the bootstrap
    interval, each as "10 % (+0.012 [-0.010, +0.030])"."""
    helps, level, hurts = [], [], []
    for point in points:
        boot, _ = intervals(getattr(point, arm), getattr(point, other))
        if point.fraction == 0 or boot is None:
            continue
        text = f"{_pct(point.fraction)} ({_interval_text(boot)})"
        (helps if boot.low > 0 else hurts if boot.high < 0 else level).append(text)
    return helps, level, hurts


def reading(points: list[Point], otsu: float) -> list[str]:
    """Where distillation helps beyond the interval, where it does not; label-free against Otsu."""
    lines = []
    helps, level, hurts = _by_verdict(points, "hfd", "sar_only")
    if helps:
        lines.append(f"Distillation helps beyond the 95 % interval at {', '.join(helps)}.")
    if level:
        lines.append(f"It shows no difference beyond the interval at {', '.join(level)}.")
    if hurts:
        lines.append(f"It hurts beyond the interval at {', '.join(hurts)}.")
    ten = next((p for p in points if abs(p.fraction - 0.10) < 1e-9), None)
    boot = intervals(ten.hfd, ten.sar_only)[0] if ten else None
    if boot is not None:
        met = "meets" if boot.mean >= EXPECTED_GAIN else "does not meet"
        lines.append(
            f"At 10 % labels the HFD student is {boot.mean:+.3f} per-chip mIoU from the SAR-only student: "
            f"it {met} the expected gain of {EXPECTED_GAIN:+.2f}"
            + (
                ""
                if boot.low > EXPECTED_GAIN or boot.high < EXPECTED_GAIN
                else f", and the interval [{boot.low:+.3f}, {boot.high:+.3f}] cannot rule either way on it"
            )
            + "."
        )
    zero = next((p for p in points if p.fraction == 0 and p.hfd.reports), None)
    if zero is not None:
        mean = statistics.mean(zero.hfd.means())
        side = "above" if mean > otsu else "below"
        lines.append(
            f"Without a single SAR label (teacher only), the HFD student scores {mean:.3f}, {side} Otsu "
            f"({otsu:.3f}) on the same test chips."
        )
    return lines


DIAGNOSTIC_COMPARISONS = (
    ("hfd_features", "sar_only", "the feature loss alone (no pseudo-labels) against the SAR-only student"),
    ("hfd", "hfd_features", "the teacher's pseudo-labels on top of the feature loss (HFD − features only)"),
    (
        "hfd_features_balanced",
        "sar_only",
        "the feature loss alone with half of the windows from labelled chips, against the SAR-only student",
    ),
    (
        "hfd_balanced",
        "sar_only",
        "HFD with half of the windows from labelled chips, against the SAR-only student",
    ),
)
DIAGNOSTIC_ARMS = {
    "hfd_features": "features only",
    "hfd": "HFD (features + pseudo-labels)",
    "hfd_features_balanced": "features only, labelled chips give half the windows",
    "hfd_balanced": "HFD, labelled chips give half the windows",
}


def diagnostic_table(points: list[Point]) -> str:
    """Per fraction with a diagnostic arm: each HFD variant, and its paired differences from the SAR-only
    student and from the features-only arm (what pseudo-labels add)."""
    rows = [
        "| labels | arm | test per-chip mIoU | − SAR-only | − features only |",
        "|---|---|---|---|---|",
    ]
    for point in points:
        if not point.hfd_features.reports:
            continue
        rows.append(f"| {_pct(point.fraction)} | SAR-only | {mean_std(point.sar_only.means())} | | |")
        for arm, name in DIAGNOSTIC_ARMS.items():
            runs = getattr(point, arm)
            if not runs.reports:
                continue
            differences = [
                "" if arm == other else _interval_text(intervals(runs, getattr(point, other))[0])
                for other in ("sar_only", "hfd_features")
            ]
            cells = [_pct(point.fraction), name, mean_std(runs.means()), *differences]
            rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows) if len(rows) > 2 else "Not run yet (it runs after the plan)."


def diagnostic_reading(points: list[Point]) -> list[str]:
    """What each part of distillation does, beyond the bootstrap interval."""
    lines = []
    for arm, other, what in DIAGNOSTIC_COMPARISONS:
        helps, level, hurts = _by_verdict(points, arm, other)
        verdicts = [
            f"{word} at {', '.join(fractions)}"
            for word, fractions in (("helps", helps), ("shows no difference", level), ("hurts", hurts))
            if fractions
        ]
        if verdicts:
            lines.append(f"{what[0].upper()}{what[1:]}: {'; '.join(verdicts)}.")
    return lines


def plot(points: list[Point], otsu: float, teacher: float | None, path: Path) -> None:
    """Both arms (mean, seed std) against the label fraction; Otsu and the teacher as lines."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    positions = np.arange(len(points))
    arms = (
        ("sar_only", "tab:orange", -0.06, "SAR-only student (S1)"),
        ("hfd", "tab:blue", 0.06, "HFD student (S1 + teacher)"),
        ("hfd_features", "tab:purple", 0.0, "HFD, features only (diagnostic)"),
        ("hfd_balanced", "tab:cyan", 0.12, "HFD, labelled half of the windows (diagnostic)"),
    )
    for arm, colour, shift, label in arms:
        xs, means, spreads = [], [], []
        for x, point in zip(positions, points, strict=True):
            values = getattr(point, arm).means()
            if values:
                xs.append(x + shift)
                means.append(statistics.mean(values))
                spreads.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        if not xs:
            continue
        axis.errorbar(xs, means, yerr=spreads, color=colour, marker="o", capsize=3, label=label)
    axis.axhline(otsu, color="grey", linestyle="--", label=f"Otsu on S1 ({otsu:.3f})")
    if teacher is not None:
        axis.axhline(teacher, color="tab:green", linestyle=":", label=f"EO teacher, S2 ({teacher:.3f})")
    axis.set_xticks(positions, [f"{_pct(p.fraction)}\n({p.labelled})" for p in points])
    axis.set_xlabel("SAR labels: fraction of OMBRIA's training chips (count)")
    axis.set_ylabel("test per-chip mIoU")
    axis.set_title("OMBRIA official test: label efficiency (mean ± seed std)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


CARD_START, CARD_END = "<!-- label-efficiency: generated -->", "<!-- /label-efficiency -->"


def card_section(points: list[Point], otsu: float, planned_missing: int) -> str:
    """The model card's paragraph: the answer of the label-efficiency experiment, in the card's words."""
    lines = [
        CARD_START,
        "## Distillation when SAR labels are scarce (OMBRIA, `make label-efficiency-ombria`)",
        "",
        "Per-chip mIoU on OMBRIA's official test, SAR-only vs HFD student (same labelled chips, plus the "
        "EO teacher's features and classes on every S1 + S2 pair), mean over seeds, HFD minus SAR-only with "
        "its 95 % bootstrap interval; full page: `docs/experiments/ombria_label_efficiency.md`.",
        "",
        "| SAR labels | SAR-only | HFD | HFD − SAR-only |",
        "|---|---|---|---|",
    ]
    for point in points:
        boot, _ = intervals(point.hfd, point.sar_only)
        lines.append(
            f"| {_pct(point.fraction)} | {mean_std(point.sar_only.means()) if point.fraction else 'n/a'} | "
            f"{mean_std(point.hfd.means())} | {_interval_text(boot)} |"
        )
    lines += [
        "",
        f"Otsu on the same chips: {otsu:.3f}.",
        "",
        *reading(points, otsu),
        *diagnostic_reading(points),
        "",
        _bearing_on_the_card(points),
    ]
    if planned_missing:
        lines.append(f"({planned_missing} planned run(s) not finished when this was written.)")
    return "\n".join([*lines, CARD_END])


def _bearing_on_the_card(points: list[Point]) -> str:
    """What the answer means for the model the card describes (which variant ships is the card's own choice,
    on the dB chips)."""
    helps = _by_verdict(points, "hfd", "sar_only")[0]
    if helps:
        return (
            f"For this card: distillation beat SAR-only training beyond the interval at {', '.join(helps)}; "
            "a distilled water model is worth training with that share of labels."
        )
    return (
        "For this card: at no label fraction did the planned HFD arm beat SAR-only training beyond the "
        "interval: OMBRIA's labels give no reason to prefer the distilled student, and the card chooses "
        "between the two on the dB chips (the balanced arm above is a lead, not a result)."
    )
