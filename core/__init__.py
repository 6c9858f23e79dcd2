"""Django-free pieces every app shares: the annotation vocabulary, JSON helpers, the held-out rule.

Nothing here imports Django, torch or another Margin package, so any room may import it.
"""
