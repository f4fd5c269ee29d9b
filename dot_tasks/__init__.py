"""dot-tasks: isolated, reproducible dbt builds for any git commit."""

from __future__ import annotations

__version__ = "0.1.0"
