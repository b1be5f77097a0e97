"""Foreign backends installed only to test spmdlearn's conformance suite.

``goodgram`` computes the co-moments another way (shifted by the first row), correctly; the
suite must certify it. ``naivesum`` uses raw sums of squares minus the squared mean, which
loses every digit for data far from the origin; the suite must reject it. ``lasttie`` gives
each row the last of equally near k-means centers (the reference: the first); ``widedtype``
returns float64 predictions for float32 input. The suite must reject both.
"""
