"""The Typer app, `--version`, and the one place errors become a line and an exit code.

Command modules import torch only inside their bodies, so `dlcli --help` stays fast.
"""

import difflib
import os
import re
import sys
from typing import Annotated

import typer

try:  # typer >= 0.2x vendors click; older releases use the click package
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import ClickException

from dlcli import __version__
from dlcli.errors import EXIT_INTERRUPT, EXIT_USAGE, EXIT_WORK, DlcliError

app = typer.Typer(
    name="dlcli",
    help="Train, compress, export and benchmark PyTorch models. Results go to stdout, progress to stderr.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich-formatted help costs ~0.17 s of the 0.3 s budget
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dlcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    """dlcli: one tool from training to a compressed, verified ONNX artifact with measured speed."""


def _register() -> None:
    from dlcli.cli import (
        benchmark,
        compare,
        distill,
        evaluate,
        export,
        finetune,
        frontier,
        info,
        predict,
        prune,
        quantize,
        train,
    )

    app.command("train", no_args_is_help=False)(train.train)
    app.command("eval")(evaluate.eval_command)
    app.command("finetune")(finetune.finetune)
    app.command("distill")(distill.distill)
    app.command("info")(info.info)
    app.command("models")(info.models)
    app.command("datasets")(info.datasets)
    app.command("export")(export.export)
    app.command("benchmark")(benchmark.benchmark)
    app.command("compare")(compare.compare)
    app.command("predict")(predict.predict)
    app.command("prune")(prune.prune)
    app.command("quantize")(quantize.quantize)
    app.command("frontier")(frontier.frontier)


_register()


# pydantic's wording for a value typer could not convert (typer >= 0.2x validates options with pydantic)
_PLAIN_WORDING = {
    "Input should be a valid number, unable to parse string as a number": "is not a number",
    "Input should be a valid integer, unable to parse string as an integer": "is not a whole number",
}


def _usage_message(exc: ClickException, args: list[str]) -> str:
    """Click's usage errors in our one-line form: its message (pydantic's phrasing made plain, with the
    value given), a suggestion when the value is close to one of the allowed choices, and where the
    help is (click prints usage, a blank line and a hint)."""
    message = " ".join(exc.format_message().split()).replace("Value error, ", "")  # one line, whatever click wrapped
    for wording, plain in _PLAIN_WORDING.items():
        if wording in message:
            value = _given_value(args, re.findall(r"'(-[^']*)'", message.partition(":")[0]))
            message = message.replace(wording, f"{value!r} {plain}" if value is not None else plain.removeprefix("is "))
    choices = re.findall(r"'([^']*)'", message.partition(" is not one of ")[2])
    given = re.findall(r"'([^']*)'", message.partition(" is not one of ")[0])
    close = difflib.get_close_matches(given[-1], choices, n=1, cutoff=0.5) if choices and given else []
    if close:
        message += f" Did you mean {close[0]!r}?"
    return message + f" (see `{_help_command(exc, args)} -h`)"


def _given_value(args: list[str], names: list[str]) -> str | None:
    """The value given to option `names` (`--epochs three` or `--epochs=three`), the last if repeated."""
    value = None
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in names:
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
    return value


def _help_command(exc: ClickException, args: list[str]) -> str:
    """The command whose help explains the error: click's context when it has one below the root (an
    option missing its value is reported from the root), else the command named on the line."""
    ctx = getattr(exc, "ctx", None)
    return ctx.command_path if ctx is not None and ctx.command_path != "dlcli" else _command_line(args)


def _command_line(args: list[str]) -> str:
    """`dlcli COMMAND` for the command named in `args` (dlcli's own options are flags), else `dlcli`."""
    named = next((a for a in args if not a.startswith("-")), None)
    return f"dlcli {named}" if named in {info.name for info in app.registered_commands} else "dlcli"


def _error(message: str) -> None:
    """One line, whatever a library put in the message (pickle and onnxruntime errors span lines)."""
    message = " ".join(message.split())
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _before_separator(argv: list[str]) -> list[str]:
    """The words dlcli reads itself: those after a `--` are passed on untouched."""
    return argv[: argv.index("--")] if "--" in argv else argv


def _wants_json(argv: list[str]) -> bool:
    """--json anywhere before a `--` separator: failures then print one JSON object on stdout too."""
    return "--json" in _before_separator(argv)


def _empty_argument(argv: list[str]) -> str | None:
    """The error for an empty word on the command line, None when there is none. Typer reads "" as a
    path to the current folder, so `dlcli eval "$(ls runs/*/best.pt)"` that matched nothing would
    have evaluated whatever `.` holds (or written `--out ""` into it): no dlcli value is empty."""
    words = _before_separator(argv)
    if "" not in words:
        return None
    where = words.index("")
    after = f" after {words[where - 1]!r}" if where else ""
    return (f"argument {where + 1} is empty{after} (a \"$(...)\" that printed nothing?); give a value, or leave "
            f"the argument out (see `{_command_line(words[:where])} -h`)")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map every failure to one line and an exit code.

    Exit codes: 0 ok, 1 failure during work, 2 bad input, 130 interrupted. DLCLI_DEBUG=1 re-raises so
    the full traceback is shown.
    """
    from dlcli.cli import _options

    debug = os.environ.get("DLCLI_DEBUG", "") not in ("", "0")
    args = list(sys.argv[1:] if argv is None else argv)
    _options.ARGV = args
    empty = _empty_argument(args)
    message, code = (empty, EXIT_USAGE) if empty else _run(args, debug)
    if message is not None:
        _error(message)
        from dlcli.runs import remove_empty_created

        remove_empty_created()
        if _wants_json(args):
            _print_json_error(message, code)
    sys.exit(code)


def console_main(argv: list[str] | None = None) -> None:
    """The `dlcli` executable and `python -m dlcli`: torch imported without the garbage collector
    (dlcli.process_start), `main`, then a process exit without the interpreter teardown
    (dlcli.process_exit says why). `argv` (default: the process's) lets a benchmark run exactly this."""
    from dlcli.process_exit import exit_process
    from dlcli.process_start import import_torch_quietly

    import_torch_quietly()
    try:
        main(argv)
    except SystemExit as exc:
        exit_process(exc.code)
    exit_process(0)


def _run(args: list[str], debug: bool) -> tuple[str | None, int]:
    """Run the command; return (one-line error or None, exit code)."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="dlcli", standalone_mode=False)
    except typer.Exit as exc:
        return None, exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPT
    except ClickException as exc:
        return _usage_message(exc, args), exc.exit_code
    except DlcliError as exc:
        if debug:
            raise
        return str(exc), exc.exit_code
    except Exception as exc:  # the last line of defence: never a traceback without DLCLI_DEBUG
        if debug:
            raise
        return f"{type(exc).__name__}: {exc} (set DLCLI_DEBUG=1 for the traceback)", EXIT_WORK
    return None, code if isinstance(code, int) else 0


def _print_json_error(message: str, code: int) -> None:
    """With --json, scripts parse stdout in both outcomes: a failure is one object too."""
    import json

    from dlcli.console import write_stdout

    write_stdout(json.dumps({"error": message, "exit_code": code}) + "\n")


__all__ = ["EXIT_USAGE", "app", "console_main", "main"]
