"""Foreign backends installed only to test spmdlearn's conformance suite.

``goodgram`` computes the co-moments another way (shifted by the first row), correctly; the
suite must certify it. ``naivesum`` uses raw sums of squares minus the squared mean, which
loses every digit for data far from the origin; the suite must reject it.
"""
