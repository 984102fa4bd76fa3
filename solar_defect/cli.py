"""What every command shares: turning user errors into one line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf.errors import OmegaConfBaseException

from solar_defect.errors import UserInputError

# The repository's conf/ (the package is installed editable, as the Makefile does).
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")
EXIT_USER_ERROR = 2
USER_ERRORS = (UserInputError, OmegaConfBaseException)


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
        message = text.splitlines()[0] if text else type(cause).__name__
        print(f"{command}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
