"""cnnkit command line: a thin click front over pipelines/.

Each command parses its options into the pipeline's frozen Config, calls
``run(cfg)`` and prints the result. TensorFlow and every other heavy import
happen inside the commands, so ``python cli.py --help`` answers at once.

Bad input raises ``cnnkit.errors.InputError``; the group prints its message on
one line and exits with status 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import os
import sys

import click

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the output of
# a short run; users who want it can set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class CnnkitGroup(click.Group):
    """A click group that turns ``InputError`` into a one-line message and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:  # noqa: BLE001 - filtered just below
            from cnnkit.errors import InputError

            if not isinstance(error, InputError) or ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)


@click.group(cls=CnnkitGroup)
@click.version_option(__version__, prog_name="cnnkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """cnnkit: CNNs on images and audio, with hand-written gradients."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    import json

    click.echo(json.dumps(obj, indent=2, default=str))


# --- foundation: gradient check -------------------------------------------------


# --- train-image --------------------------------------------------------------


# --- commands on a finished run: evaluate, predict, export ----------------------


# --- train-speech -------------------------------------------------------------


# --- compress -----------------------------------------------------------------


if __name__ == "__main__":
    main()
