"""Compliance exports of the drill history: selection, content, report, signed bundles."""
