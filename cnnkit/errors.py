"""The one exception type that means "the user gave us something we cannot use"."""


class InputError(ValueError):
    """A bad input (path, file, name, option value) named in a one-line message.

    Raise it with a message that names the input and says what was expected,
    e.g. ``InputError("--dataset 'idx:/nope': no such directory")``. The CLI
    prints the message on one line and exits with status 2; any other
    exception is a bug and shows a traceback.
    """
