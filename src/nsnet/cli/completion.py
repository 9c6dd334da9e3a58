"""``nsnet completion SHELL``: print the shell completion script."""

from __future__ import annotations

import click

from nsnet.cli._common import main
from nsnet.cli.complete import SHELLS, script


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, labs, nodes, interfaces, sections.

    \b
    bash:  nsnet completion bash > /etc/bash_completion.d/nsnet
           (or: eval "$(nsnet completion bash)" in ~/.bashrc)
    zsh:   nsnet completion zsh > "${fpath[1]}/_nsnet"
    fish:  nsnet completion fish > ~/.config/fish/completions/nsnet.fish
    """
    click.echo(script(shell), nl=False)
