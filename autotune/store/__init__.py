"""The tuning database: its schema (``schema``), the layered store every read and write goes
through (``database``), and team sharing (``sharing``: export, merge, stats)."""
