"""Random forests grown from every rank's rows; the same forest for any number of ranks.

    mpiexec -n 4 python examples/random_forest_spmd.py [--device numpy|cpu|gpu]
"""

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier as SkRandomForestClassifier

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn.io import shard

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, y = make_classification(n_samples=6000, n_features=20, n_informative=10, random_state=0)
X_train, y_train, X_test, y_test = X[:4000], y[:4000], X[4000:], y[4000:]
forest = RandomForestClassifier(n_estimators=30, max_depth=10, random_state=0)
forest.fit(to_device(shard(X_train)), to_device(shard(y_train)))
accuracy = forest.score(to_device(shard(X_test)), to_device(shard(y_test)))  # all test rows
ref = SkRandomForestClassifier(n_estimators=30, max_depth=10, random_state=0).fit(X_train, y_train)
if comm.rank == 0:
    print(f"RandomForestClassifier on {len(X_train)} rows over {comm.size} ranks "
          "(histogram trees; held-out accuracy next to scikit-learn's forest)")
report(comm, [("held-out accuracy", accuracy, ref.score(X_test, y_test))], rtol=0.02)
