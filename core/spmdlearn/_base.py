"""What every spmdlearn estimator shares."""

from __future__ import annotations

from contextlib import nullcontext

from threadpoolctl import threadpool_limits

from .comm import get_comm

__all__ = ["SPMDEstimatorMixin", "thread_limit"]


class SPMDEstimatorMixin:
    """Mixin: the communicator is resolved at each call, never stored on the estimator.

    Subclasses list the scikit-learn class they mirror in ``_sklearn_class`` and the fitted
    attributes to copy in ``_fitted_attributes``; :meth:`to_sklearn` builds the equivalent fitted
    scikit-learn estimator from them.
    """

    _sklearn_class = None
    _fitted_attributes: tuple = ()

    @staticmethod
    def _comm():
        return get_comm()

    def to_sklearn(self):
        """The equivalent fitted scikit-learn estimator, for serving without MPI (not collective).

        Returns
        -------
        estimator : scikit-learn estimator
            Same parameters, same fitted attributes (NumPy arrays, identical on every rank).
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        sk_class = type(self)._sklearn_class
        params = sk_class().get_params(deep=False)
        mine = self.get_params(deep=False)
        est = sk_class(**{k: mine[k] for k in params if k in mine})
        for name in self._fitted_attributes + ("n_features_in_", "feature_names_in_"):
            if hasattr(self, name):
                setattr(est, name, getattr(self, name))
        return est


def thread_limit(n_jobs):
    """Context limiting this rank's BLAS/OpenMP threads to ``n_jobs`` (None: unchanged).

    Negative values count back from the cores of this rank's share, as in joblib: -1 is all.
    """
    if n_jobs is None or n_jobs < 0:
        return nullcontext()
    return threadpool_limits(limits=int(n_jobs))
