"""Serving: more than one call at a time, the first call after launch, and long runs.

    arrangement.py  how N requests in flight are served (one shared session, N sessions with
                    the threads split, N sessions on one global pool, N processes)
    pool.py         an arrangement built and running: ``ServingPool.run`` (the run-time API)
    driver.py       a fresh process measuring arrangements in paired rounds (a generation)
    throughput_search.py  the throughput objective: screening, head-to-head, verdict
    coldstart.py    compile caches and the three states of a start (first ever, cached, warm)
    soak.py         long runs: per-window latency and RSS, drift and growth flags

Only ``arrangement`` and ``pool`` are on the run-time path (never optuna).
"""
