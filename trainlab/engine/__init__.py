"""The training engine: one event-driven loop, its state, callbacks and checkpoints."""
