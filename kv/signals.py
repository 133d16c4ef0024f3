"""Sent after commit for every applied version, local or replicated (watch and push hook here)."""

from django.dispatch import Signal

# kwargs: key (str), revision (int), deleted (bool), origin (node id of the version's writer)
entry_applied = Signal()
