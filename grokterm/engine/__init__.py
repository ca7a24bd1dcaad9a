"""Training engine: tasks, models, the loop, the run process. Imported only by run processes."""
