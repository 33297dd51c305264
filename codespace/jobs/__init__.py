"""Jobs: the notebook SDK, and (server side) one backend interface with several backends.

Server side: :mod:`codespace.jobs.models` (the job spec and record), :mod:`codespace.jobs.backend`
(the interface). The kernel side (the SDK) loads only the standard library.
"""
