"""Pipelines: the models of one app, tuned together (issue 20).

spec.py         the pipeline file (TOML): stages, repeat, overlap, state; its result key
arrangement.py  what is chosen for a pipeline: a SessionConfig per stage, and one shared
                thread pool or one per session
replay.py       the call pattern run end to end in one process (overlap as threads)
worker.py       the measuring process of one arrangement (the manager is the single
                model's, ``autotune.measure.manager``)
decision.py     two baselines in every verdict: ORT's defaults, and every stage's own pick
search.py       each stage alone, then jointly; stored through ``autotune.store``
runtime.py      ``best_pipeline()``: the stages' sessions and ``prewarm()`` (never optuna)
example.py      a pipeline built in code: encoder, decoder step with state, post-net
"""
