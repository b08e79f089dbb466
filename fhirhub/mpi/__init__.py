"""The master patient index: one citizen, one Person, across every source.

Built in steps (issue 11, docs/mpi.md): ``names`` and ``nik`` normalise what records say of a
person; ``features`` reads a Patient and gives its blocking keys; ``compare`` gives a pair's
agreement levels; ``score`` estimates a Fellegi-Sunter model without labels and decides a pair;
``cluster`` turns links into persons. Storage and the write-path hook come next.
"""
