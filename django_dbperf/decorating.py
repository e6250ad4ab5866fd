"""Context managers as decorators of sync and async functions, with a fresh block per call."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


def run_inside[F: Callable[..., Any]](
    func: F, block: Callable[[], AbstractContextManager[Any]]
) -> F:
    """``func`` wrapped so that each call runs inside its own ``block()``.

    A coroutine function enters the block inside the coroutine, so it lasts for its awaits;
    each call gets its own block, so concurrent calls never share state.
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with block():
                return await func(*args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with block():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
