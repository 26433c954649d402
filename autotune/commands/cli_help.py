"""Click groups whose ``--help`` lists each command with its whole first sentence."""

from __future__ import annotations

import click


class HelpGroup(click.Group):
    """Lists its commands with their whole first sentence (wrapped), not click's cut-off one."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            first = (cmd.short_help or cmd.help or "").split("\n\n")[0]
            rows.append((name, " ".join(first.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
