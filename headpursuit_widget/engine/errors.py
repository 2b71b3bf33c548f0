"""The one exception type the engine raises for bad input, so callers can catch it specifically."""


class HeadPursuitError(ValueError):
    """Bad input to the engine: the message says what was wrong and what is accepted."""


class Cancelled(HeadPursuitError):
    """A long computation (refine, verify) was stopped through its `cancel` event."""
