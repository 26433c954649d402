"""The search: the Optuna study (``search``, the only place optuna is imported), its space
(``space``), objectives, study files and the progress line."""
