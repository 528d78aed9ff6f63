"""Backtest reports (HTML with plots, perf manifest) and the `bot4 backtest` / `bot4 demo` commands."""

from bot4.report.html import (PERF_FILE, REPORT_FILE, SECTIONS, format_summary, summarize,
                              write_perf_manifest, write_report)

__all__ = ["PERF_FILE", "REPORT_FILE", "SECTIONS", "format_summary", "summarize", "write_perf_manifest",
           "write_report"]
