"""Correctly rounded arithmetic on the device, where the reference's decisions depend on it.

SYCL's ``sqrt`` (dpnp's, on the OpenCL CPU runtime among others) may be off by one unit in the
last place: about 1% of float64 square roots differ from the correctly rounded ones of NumPy
and SciPy. A distance one ulp off reorders neighbours whose distances round to the same
float64 in the reference (a tie, which goes to the lower index there), and moves pairs across
a radius. :func:`sqrt_rn` repairs the last bit with exact integer arithmetic.
"""

from __future__ import annotations

from ._device import dpnp

__all__ = ["sqrt_rn"]

#: Veltkamp's splitting constant for float64 (2**27 + 1).
_SPLIT = 134217729.0
#: Integer unit of the midpoint test: 2**-108, below the square of half an ulp in [0.5, 2).
_UNIT_EXP = 108


def _below_midpoint(xp, a, c, u):
    """Where ``a < (c + u/2)**2`` exactly, for ``a`` in [0.5, 2), ``c`` a float64 within one
    ulp of ``sqrt(a)`` and ``u > 0`` the spacing from ``c`` to its neighbour above.

    ``c**2 = p + e`` exactly (Dekker's product: ``p`` rounded, ``e`` its error); ``a - p`` is
    exact (Sterbenz), and every term of ``a - c**2 - c*u - u**2/4`` is an integer multiple of
    2**-108 below 2**60, so their sum is exact in int64. ``a`` never equals the square of a
    midpoint (that square has a bit below ``a``'s last one), so the test has no tie.
    """
    p = c * c
    hi = c * _SPLIT
    ch = hi - (hi - c)
    cl = c - ch
    e = ((ch * ch - p) + 2.0 * ch * cl) + cl * cl

    def units(x):
        return xp.ldexp(x, _UNIT_EXP).astype(xp.int64)

    return units(a - p) - units(c * u) - units(e) - units(u * u * 0.25) < 0


def sqrt_rn(a):
    """The correctly rounded square root of a float64 dpnp array of non-negative values (and
    ``inf``), as NumPy's and SciPy's, from the device's ``sqrt`` (within one ulp) and an exact
    test of the two neighbouring midpoints. Other dtypes: the device's ``sqrt``."""
    xp = dpnp()
    if a.dtype != xp.float64 or a.size == 0:
        return xp.sqrt(a)
    finite = xp.isfinite(a) & (a > 0)
    # a = a_s * 2**k with k even and a_s in [0.5, 2): sqrt(a) = sqrt(a_s) * 2**(k/2) exactly.
    _, ex = xp.frexp(xp.where(finite, a, 1.0))
    k = ex - (ex & 1)
    a_s = xp.ldexp(xp.where(finite, a, 1.0), -k)
    r = xp.sqrt(a_s)
    lower = xp.nextafter(r, 0.0)
    upper = xp.nextafter(r, 4.0)
    out = xp.where(_below_midpoint(xp, a_s, lower, r - lower), lower,
                   xp.where(_below_midpoint(xp, a_s, r, upper - r), r, upper))
    return xp.where(finite, xp.ldexp(out, k // 2), xp.sqrt(a))
