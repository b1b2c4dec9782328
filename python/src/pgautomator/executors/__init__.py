"""Executors: how each kind of step runs on the agent's host."""
