"""The one exception type the core raises for bad input."""


class RepresentationError(ValueError):
    """A representation (or a file holding one) cannot be used as given.

    The message always says what was wrong and how to fix it, so that the app,
    the command line and notebooks can show it to a person as it is.
    """
