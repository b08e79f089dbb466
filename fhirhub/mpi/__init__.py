"""The master patient index: one citizen, one Person, across every source.

Built in steps (issue 11): ``names`` and ``nik`` normalise what records say of a person; the
blocking, scoring and linking that use them come next.
"""
