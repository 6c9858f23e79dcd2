"""Model runtime both ML apps use: checkpoints, model store, optimiser, config base. No Django."""
