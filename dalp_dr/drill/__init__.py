"""Running a drill: the engine (one run of a prepared drill) and the use case around it
(``run_drill``: store, crash recovery, signals, metrics, notifications)."""
