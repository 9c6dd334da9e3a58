"""Scenario results as tables: agreement by category (markdown), and a compact list of what went wrong."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from .runner import Result


def _pct(good: int, total: int) -> str:
    return f"{100 * good / total:.0f}% ({good}/{total})" if total else "-"


def agreement_table(results: Iterable[Result]) -> str:
    """Per category: verdict agreement, mutated object named, fix works (both over the scenarios where the real
    traffic dies), crashes; a last row for all."""
    groups: dict[str, list[Result]] = defaultdict(list)
    done = [r for r in results if not r.error]
    for r in done:
        groups[r.kind].append(r)
    lines = [
        "| category | scenarios | verdict agrees | object named | fix works | crashes |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def row(name: str, rs: list[Result]) -> str:
        dead = [r for r in rs if r.real is False]
        return (
            f"| {name} | {len(rs)} | {_pct(sum(r.agrees for r in rs), len(rs))} | "
            f"{_pct(sum(bool(r.named) for r in dead), len(dead))} | "
            f"{_pct(sum(bool(r.fix_works) for r in dead), len(dead))} | {sum(bool(r.crash) for r in rs)} |"
        )

    for name in sorted(groups):
        lines.append(row(name, groups[name]))
    lines.append(row("**all**", done))
    return "\n".join(lines)


def problem_lines(results: Iterable[Result]) -> list[str]:
    """One line per problem: category, scenario, flow, what is wrong, what explain said."""
    out = []
    for r in results:
        for problem in r.problems:
            said = (r.crash or r.said or r.verdict).replace("\n", " ")
            out.append(
                f"{r.kind or r.scenario.builder} | {r.scenario.id} {r.desc} | {r.flow} | {problem} | "
                f"explain: {said[:220]}"
            )
    return out


def failing_categories(results: Iterable[Result]) -> str:
    """Each category with a problem, how many scenarios have one, and one example."""
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.problems:
            groups[r.kind or r.scenario.builder].append(r)
    lines = []
    for name in sorted(groups, key=lambda k: -len(groups[k])):
        r = groups[name][0]
        said = (r.crash or r.said or r.verdict).replace("\n", " ")[:240]
        lines.append(
            f"- **{name}** ({len(groups[name])} failing): {r.desc} [{r.scenario.lab}, {r.flow}"
            f"{f', {r.scenario.id}' if r.scenario else ''}]: {'; '.join(r.problems)[:300]}. "
            f'explain: "{said}"'
        )
    return "\n".join(lines)
