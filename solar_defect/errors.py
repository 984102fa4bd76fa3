"""User-facing errors: one clear line that says what is wrong and what to do."""


class UserInputError(ValueError):
    """Bad data, config or path given by the user; the CLI prints it as one line."""


class BadImageError(UserInputError):
    """An image file that cannot be decoded."""
