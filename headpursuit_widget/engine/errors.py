"""The one exception type the engine raises for bad input, and `shorten` for echoing that input in messages."""


class HeadPursuitError(ValueError):
    """Bad input to the engine: the message says what was wrong and what is accepted."""


def shorten(text, limit: int = 60) -> str:
    """`text` (str() of anything) cut to at most `limit` characters with an ellipsis, for echoing user input."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
