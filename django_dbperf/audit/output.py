"""An audit as text for people, as JSON, and as JUnit XML (each URL a test case, so CI systems
show which pages failed the gate and why)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Any

from django_dbperf.audit import AuditResult
from django_dbperf.audit.pages import PageAudit

SQL_SHOWN = 120


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= SQL_SHOWN else flat[: SQL_SHOWN - 1] + "…"


def _page_lines(page: PageAudit) -> list[str]:
    status = page.status if page.error is None else "raised"
    budget = ""
    if page.budget is not None:
        budget = f", budget {page.budget}: " + ("OVER" if page.over_budget else "ok")
    lines = [f"GET {page.url}  {status}  {page.queries} queries, {page.db_ms:.1f} ms{budget}"]
    if page.error:
        lines.append(f"  the view failed: {page.error}")
    if page.slow:
        lines.append(f"  {page.slow} slow statement(s)")
    for finding in page.findings:
        label = "N+1" if finding.kind == "nplusone" else "duplicate"
        lines.append(
            f"  {label} {finding.subject}: {finding.queries} queries, {finding.ms:.1f} ms, "
            f"at {finding.where}"
        )
        lines.append(f"    fix: {finding.suggestion}")
        lines.append(
            f"    saves about {finding.saves_queries} queries and {finding.saves_ms:.1f} ms "
            f"on this page"
        )
    return lines


def as_text(result: AuditResult) -> str:
    lines: list[str] = []
    for page in result.pages:
        lines += _page_lines(page)
    if result.skipped:
        lines.append("")
        lines.append(f"Routes not requested ({len(result.skipped)}):")
        left_out: dict[str, int] = {}
        for route in result.skipped:
            reason = route.skipped or ""
            if reason.startswith(("an admin route", "a debug route")):
                left_out[reason] = left_out.get(reason, 0) + 1
            else:
                lines.append(f"  {route.pattern}: {reason}")
        for reason, count in left_out.items():
            plural = reason.replace("route", "routes", 1).removeprefix("an ").removeprefix("a ")
            lines.append(f"  {count} {plural}")
    queries = sum(page.queries for page in result.pages)
    saves = sum(finding.saves_queries for page in result.pages for finding in page.findings)
    lines.append("")
    lines.append(
        f"{len(result.pages)} page(s), {queries} queries; fixing every finding would save "
        f"about {saves}."
    )
    if result.baseline is not None:
        lines.append(f"Baseline: {result.baseline}")
    if result.failures:
        lines.append(f"FAILED: {len(result.failures)} page(s)")
        for url, why in result.failures.items():
            lines += [f"  {url}: {reason}" for reason in why]
    else:
        lines.append("Passed.")
    return "\n".join(lines)


def as_data(result: AuditResult) -> dict[str, Any]:
    return {
        "pages": [
            {
                **dataclasses.asdict(page),
                "over_budget": page.over_budget,
            }
            for page in result.pages
        ],
        "skipped": [dataclasses.asdict(route) for route in result.skipped],
        "failures": result.failures,
        "baseline": str(result.baseline) if result.baseline else None,
        "passed": not result.failed,
    }


def as_junit(result: AuditResult) -> str:
    suite = ET.Element(
        "testsuite",
        name="dbperf_audit",
        tests=str(len(result.pages) + len(result.skipped)),
        failures=str(sum(1 for page in result.pages if page.url in result.failures)),
        errors="0",
        skipped=str(len(result.skipped)),
    )
    for page in result.pages:
        case = ET.SubElement(
            suite, "testcase", classname="dbperf_audit", name=f"GET {page.url}",
            time=f"{page.db_ms / 1000:.3f}",
        )  # fmt: skip
        failures = result.failures.get(page.url)
        if failures:
            failure = ET.SubElement(case, "failure", message="; ".join(failures))
            failure.text = "\n".join(_page_lines(page))
        output = ET.SubElement(case, "system-out")
        output.text = "\n".join(_page_lines(page))
    for route in result.skipped:
        case = ET.SubElement(suite, "testcase", classname="dbperf_audit", name=route.pattern)
        ET.SubElement(case, "skipped", message=route.skipped or "")
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
