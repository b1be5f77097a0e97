"""Global metrics: scikit-learn's value on the gathered arrays, from each rank's rows."""

import numpy as np
import pytest
from sklearn import metrics as skm

from spmdlearn import metrics
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _classes(seed, n=150, k=3, strings=False):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, k, n))
    if strings:
        names = np.array(["cat", "dog", "emu", "fox"])[:k]
        y_true, y_pred = names[y_true], names[y_pred]
    return y_true, y_pred, rng.uniform(0.1, 2.0, n)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("strings", [False, True])
def test_confusion_family(comm, seed, weighted, strings):
    y_true, y_pred, w = _classes(seed, strings=strings)
    w = w if weighted else None
    cuts = random_cuts(len(y_true), comm.size, seed)
    yt, yp, ww = local_rows(cuts, comm.rank, y_true, y_pred, w)
    exact = 0.0 if not weighted else 1e-12
    checks = [
        (metrics.accuracy_score(yt, yp, sample_weight=ww),
         skm.accuracy_score(y_true, y_pred, sample_weight=w), "accuracy"),
        (metrics.accuracy_score(yt, yp, normalize=False, sample_weight=ww),
         skm.accuracy_score(y_true, y_pred, normalize=False, sample_weight=w), "accuracy count"),
        (metrics.confusion_matrix(yt, yp, sample_weight=ww),
         skm.confusion_matrix(y_true, y_pred, sample_weight=w), "confusion_matrix"),
        (metrics.confusion_matrix(yt, yp, sample_weight=ww, normalize="true"),
         skm.confusion_matrix(y_true, y_pred, sample_weight=w, normalize="true"), "normalized"),
    ]
    for average in ("micro", "macro", "weighted", None):
        ours = metrics.precision_recall_fscore_support(yt, yp, average=average, sample_weight=ww)
        ref = skm.precision_recall_fscore_support(y_true, y_pred, average=average, sample_weight=w)
        for a, b, name in zip(ours, ref, ("precision", "recall", "fscore", "support")):
            if b is None:
                assert_all_ranks(comm, a is None, f"{name} is None")
            else:
                checks.append((a, b, f"{name} ({average})"))
    checks.append((metrics.f1_score(yt, yp, average="macro", sample_weight=ww),
                   skm.f1_score(y_true, y_pred, average="macro", sample_weight=w), "f1"))
    checks.append((metrics.precision_score(yt, yp, average="micro", sample_weight=ww),
                   skm.precision_score(y_true, y_pred, average="micro", sample_weight=w), "precision"))
    checks.append((metrics.recall_score(yt, yp, average="weighted", sample_weight=ww),
                   skm.recall_score(y_true, y_pred, average="weighted", sample_weight=w), "recall"))
    for ours, ref, name in checks:
        assert_allclose_all_ranks(comm, ours, ref, rtol=exact, what=name)
        assert_identical_on_all_ranks(comm, ours, name)


def test_binary_f1_and_counts_are_exact_integers(comm):
    y_true, y_pred, _ = _classes(4, k=2)
    cuts = random_cuts(len(y_true), comm.size, 4)
    yt, yp = local_rows(cuts, comm.rank, y_true, y_pred)
    cm = metrics.confusion_matrix(yt, yp)
    assert_all_ranks(comm, cm.dtype.kind == "i", "unweighted confusion matrix holds ints")
    assert_allclose_all_ranks(comm, metrics.f1_score(yt, yp), skm.f1_score(y_true, y_pred),
                              rtol=0, what="binary f1")


@pytest.mark.parametrize("weighted", [False, True])
def test_log_loss(comm, weighted):
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 120)
    proba = rng.dirichlet(np.ones(3), 120)
    w = rng.uniform(0.5, 2, 120) if weighted else None
    cuts = random_cuts(120, comm.size, 5)
    yt, pp, ww = local_rows(cuts, comm.rank, y_true, proba, w)
    ours = metrics.log_loss(yt, pp, sample_weight=ww)
    assert_allclose_all_ranks(comm, ours, skm.log_loss(y_true, proba, sample_weight=w), rtol=1e-12,
                              what="log_loss")
    assert_identical_on_all_ranks(comm, ours, "log_loss")
    total = metrics.log_loss(yt, pp, normalize=False, sample_weight=ww)
    assert_allclose_all_ranks(comm, total, skm.log_loss(y_true, proba, normalize=False,
                                                       sample_weight=w), rtol=1e-12, what="sum")


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_is_exact(comm, weighted, ties):
    rng = np.random.default_rng(6)
    y_true = rng.integers(0, 2, 200)
    score = y_true * 0.5 + rng.normal(size=200)
    if ties:
        score = np.round(score, 1)  # many tied scores, across ranks
    w = rng.uniform(0.5, 2.0, 200) if weighted else None
    cuts = random_cuts(200, comm.size, 6)
    yt, ss, ww = local_rows(cuts, comm.rank, y_true, score, w)
    ours = metrics.roc_auc_score(yt, ss, sample_weight=ww)
    ref = skm.roc_auc_score(y_true, score, sample_weight=w)
    assert_allclose_all_ranks(comm, ours, ref, rtol=0 if not weighted else 1e-12, what="roc_auc")
    partial = metrics.roc_auc_score(yt, ss, sample_weight=ww, max_fpr=0.3)
    assert_allclose_all_ranks(comm, partial, skm.roc_auc_score(y_true, score, sample_weight=w,
                                                              max_fpr=0.3), rtol=1e-12,
                              what="partial roc_auc")


def _multiclass_scores(seed, n=160, k=4, ties=True):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + np.eye(k)[y_true]
    if ties:
        logits = np.round(logits, 1)  # tied probabilities within and across ranks
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, proba, rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("seed", [0, 1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_roc_auc_multiclass_ovr_is_exact(comm, seed, weighted):
    y_true, proba, w = _multiclass_scores(seed)
    w = w if weighted else None
    cuts = random_cuts(len(y_true), comm.size, seed)
    yt, pp, ww = local_rows(cuts, comm.rank, y_true, proba, w)
    for average in ("macro", "weighted", "micro", None):
        ours = metrics.roc_auc_score(yt, pp, multi_class="ovr", average=average,
                                     sample_weight=ww)
        ref = skm.roc_auc_score(y_true, proba, multi_class="ovr", average=average,
                                sample_weight=w)
        assert_allclose_all_ranks(comm, ours, ref, rtol=0 if not weighted else 1e-12,
                                  what=f"ovr {average}")
        assert_identical_on_all_ranks(comm, ours, f"ovr {average}")


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("strings", [False, True])
def test_roc_auc_multiclass_ovo_is_exact(comm, seed, strings):
    y_true, proba, _ = _multiclass_scores(seed, k=3)
    if strings:
        y_true = np.array(["ant", "bee", "cat"])[y_true]
    cuts = random_cuts(len(y_true), comm.size, seed)
    yt, pp = local_rows(cuts, comm.rank, y_true, proba)
    for average in ("macro", "weighted"):
        ours = metrics.roc_auc_score(yt, pp, multi_class="ovo", average=average)
        ref = skm.roc_auc_score(y_true, proba, multi_class="ovo", average=average)
        assert_allclose_all_ranks(comm, ours, ref, rtol=0, what=f"ovo {average}")
        assert_identical_on_all_ranks(comm, ours, f"ovo {average}")


def test_roc_auc_multiclass_labels_and_errors(comm):
    # Class 3 never occurs: named through labels, as scikit-learn allows.
    y_true, proba, w = _multiclass_scores(4, k=4)
    y_true = np.where(y_true == 3, 0, y_true)
    labels = np.arange(4)
    cuts = random_cuts(len(y_true), comm.size, 4)
    yt, pp, ww = local_rows(cuts, comm.rank, y_true, proba, w)
    for multi_class, average in (("ovr", "weighted"), ("ovo", "macro"), ("ovo", "weighted")):
        ours = metrics.roc_auc_score(yt, pp, multi_class=multi_class, average=average,
                                     labels=labels)
        ref = skm.roc_auc_score(y_true, proba, multi_class=multi_class, average=average,
                                labels=labels)
        assert_allclose_all_ranks(comm, ours, ref, rtol=0, what=f"{multi_class} with labels")
    for kwargs, match in (({}, "multi_class must be in"),
                          ({"multi_class": "ovr"}, "Number of classes in y_true not equal"),
                          ({"multi_class": "ovo", "sample_weight": ww, "labels": labels},
                           "sample_weight is not supported"),
                          ({"multi_class": "ovr", "labels": labels, "max_fpr": 0.5},
                           "Partial AUC"),
                          ({"multi_class": "ovo", "labels": labels, "average": "micro"},
                           "average must be one of")):
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: metrics.roc_auc_score(yt, pp, **kwargs), match=match)
    # Rows not summing to one on one rank only: every rank raises scikit-learn's error.
    bad = pp * 2 if comm.rank == comm.size - 1 else pp
    if len(local_rows(cuts, comm.size - 1, y_true)):
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: metrics.roc_auc_score(yt, bad, multi_class="ovr",
                                                                 labels=labels),
                                   match="need to be probabilities")


def test_balanced_accuracy_and_rmse(comm):
    y_true, y_pred, w = _classes(9)
    cuts = random_cuts(len(y_true), comm.size, 9)
    yt, yp, ww = local_rows(cuts, comm.rank, y_true, y_pred, w)
    for adjusted in (False, True):
        assert_allclose_all_ranks(
            comm, metrics.balanced_accuracy_score(yt, yp, adjusted=adjusted),
            skm.balanced_accuracy_score(y_true, y_pred, adjusted=adjusted), rtol=0,
            what="balanced accuracy")
        assert_allclose_all_ranks(
            comm, metrics.balanced_accuracy_score(yt, yp, sample_weight=ww, adjusted=adjusted),
            skm.balanced_accuracy_score(y_true, y_pred, sample_weight=w, adjusted=adjusted),
            rtol=1e-12, what="weighted balanced accuracy")
    rng = np.random.default_rng(9)
    y = rng.normal(size=(90, 2))
    p = y + rng.normal(scale=0.3, size=(90, 2))
    yl, pl, wl = local_rows(random_cuts(90, comm.size, 9), comm.rank, y, p, w[:90])
    for multioutput in ("uniform_average", "raw_values"):
        assert_allclose_all_ranks(
            comm, metrics.root_mean_squared_error(yl, pl, sample_weight=wl,
                                                  multioutput=multioutput),
            skm.root_mean_squared_error(y, p, sample_weight=w[:90], multioutput=multioutput),
            rtol=1e-12, what="rmse")


@pytest.mark.parametrize("multioutput", ["uniform_average", "raw_values"])
def test_regression_metrics(comm, multioutput):
    rng = np.random.default_rng(7)
    y = rng.normal(size=(90, 2))
    p = y + rng.normal(scale=0.3, size=(90, 2))
    w = rng.uniform(0.5, 2, 90)
    cuts = random_cuts(90, comm.size, 7)
    yl, pl, wl = local_rows(cuts, comm.rank, y, p, w)
    for ours, ref in [
        (metrics.mean_squared_error(yl, pl, sample_weight=wl, multioutput=multioutput),
         skm.mean_squared_error(y, p, sample_weight=w, multioutput=multioutput)),
        (metrics.mean_absolute_error(yl, pl, multioutput=multioutput),
         skm.mean_absolute_error(y, p, multioutput=multioutput)),
        (metrics.r2_score(yl, pl, sample_weight=wl, multioutput=multioutput),
         skm.r2_score(y, p, sample_weight=w, multioutput=multioutput)),
    ]:
        assert_allclose_all_ranks(comm, ours, ref, rtol=1e-12, what="regression metric")


def test_metric_errors_are_collective(comm):
    y_true, y_pred, _ = _classes(8)
    cuts = random_cuts(len(y_true), comm.size, 8)
    yt, yp = local_rows(cuts, comm.rank, y_true, y_pred)
    bad_pred = yp[:-1] if comm.rank == comm.size - 1 and len(yp) else yp
    if comm.size > 1 and len(local_rows(cuts, comm.size - 1, y_true)):
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: metrics.accuracy_score(yt, bad_pred),
                                   match="inconsistent numbers of samples")
    if comm.size > 1:
        mixed = yt.astype(str) if comm.rank == 0 else yt
        mixed_p = yp.astype(str) if comm.rank == 0 else yp
        if all(comm.allgather(len(yt) > 0)):
            assert_raises_on_all_ranks(comm, ValueError,
                                       lambda: metrics.accuracy_score(mixed, mixed_p),
                                       match="labels of different types across ranks")
    # Multiclass labels with 1-D scores: scikit-learn's error, on every rank.
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: metrics.roc_auc_score(yt, yp.astype(float)),
                               match="multi_class must be in")
