"""Progress bars only when asked for."""

from __future__ import annotations


def progress(iterable, verbose: bool, **kwargs):
    """``iterable`` behind a tqdm bar when ``verbose``, else as it is: a disabled bar still starts tqdm's monitor
    thread, which then outlives the call, and costs tens of microseconds a call (felt at batch 1).

    Examples
    --------
    >>> progress(range(3), verbose=False)
    range(0, 3)
    """
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
