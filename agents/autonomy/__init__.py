"""Governed autonomy: levels per rule earned by measured agreement, quiet hours and preferences, spend caps."""
