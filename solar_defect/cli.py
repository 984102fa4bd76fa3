"""What every command shares: turning user errors into one line and a non-zero exit."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from solar_defect.errors import UserInputError

# The repository's conf/ (the package is installed editable, as the Makefile does).
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C (128 + SIGINT)
USER_ERRORS = (UserInputError, OmegaConfBaseException)

T = TypeVar("T")


def report(command: str, message: str) -> None:
    """The one line a user sees for an error they can fix."""
    print(f"{command}: error: {message}", file=sys.stderr)


def _user_cause(err: BaseException | None) -> BaseException | None:
    """The user error behind `err`, also when Hydra's `instantiate` wrapped it."""
    while err is not None:
        if isinstance(err, USER_ERRORS):
            return err
        err = err.__cause__
    return None


@contextmanager
def user_errors(command: str) -> Iterator[None]:
    """Print `command: error: <what is wrong and what to do>` and exit 2 on bad input.

    Only errors the user can fix are caught; a bug still shows its traceback.
    """
    try:
        yield
    except Exception as err:
        cause = _user_cause(err)
        if cause is None:
            raise
        text = str(cause).strip()
        report(command, text.splitlines()[0] if text else type(cause).__name__)
        raise SystemExit(EXIT_USER_ERROR) from None


def hydra_main(
    command: str, config_name: str
) -> Callable[[Callable[[DictConfig], T]], Callable[[], T | None]]:
    """`hydra.main` for a console script, with one-line errors before and inside the task.

    The task runs under `user_errors`. Before it starts, Hydra composes the config and creates
    the run directory, and reports its own failures there (an override it cannot apply, a run
    directory it cannot create) as a traceback with exit 1. `HYDRA_FULL_ERROR` makes Hydra raise
    them instead, so they end here as one line and exit 2 too. Ctrl-C outside training (which
    handles it itself) ends with exit 130 and no traceback.
    """

    def decorate(task: Callable[[DictConfig], T]) -> Callable[[], T | None]:
        started = False

        @functools.wraps(task)  # Hydra names the job (and its log file) after the task's module
        def task_with_user_errors(cfg: DictConfig) -> T:
            nonlocal started
            started = True
            with user_errors(command):
                return task(cfg)

        entry = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(
            task_with_user_errors
        )

        @functools.wraps(task)
        def main() -> T | None:
            with _hydra_errors(command, lambda: started):
                return entry()

        return main

    return decorate


@contextmanager
def _hydra_errors(command: str, task_started: Callable[[], bool]) -> Iterator[None]:
    """Hydra's failures before the task as one line; a failure inside the task is not touched."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except (HydraException, OmegaConfBaseException, OSError) as err:
        if task_started():
            raise
        report(command, _setup_message(err))
        raise SystemExit(EXIT_USER_ERROR) from None
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def _setup_message(err: BaseException) -> str:
    """One line for a failure while Hydra set the run up."""
    if isinstance(err, OSError) and not isinstance(err, HydraException):
        # Hydra creates the run directory and writes .hydra/ and the log into it first.
        where = err.filename or "the run directory"
        return (
            f"cannot write the run directory ({where}: {err.strerror}): "
            "give a writable one with hydra.run.dir=DIR (hydra.sweep.dir=DIR with -m)"
        )
    # Hydra's messages span lines: a sentence, then e.g. "Available options in 'trainer':" and
    # one option a line, then the config search path (left out: it is not the user's concern).
    text = str(err).split("Config search path")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    head = next((i for i, line in enumerate(lines) if line.endswith(":")), len(lines))
    options = ", ".join(lines[head + 1 :])
    return " ".join(lines[: head + 1]) + (f" {options}" if options else "")
