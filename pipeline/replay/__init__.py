"""Replay a recorded answer on its frozen index, or on today's, and say what changed (docs/replay.md)."""
