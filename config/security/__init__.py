"""How people who handle money sign in: the wrong-password throttle (throttle.py), the limits
on a staff session (sessions.py) and the optional second step for staff (two_step.py).

The parent portal keeps its own sign-in pages; only the throttle applies to it.
"""
