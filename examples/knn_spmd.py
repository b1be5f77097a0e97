"""k-nearest neighbours: training rows stay on their rank; queries meet them in a ring pass.

    mpiexec -n 4 python examples/knn_spmd.py [--device numpy|cpu|gpu]
"""

import numpy as np
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier as SkKNN

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.io import shard
from spmdlearn.neighbors import KNeighborsClassifier

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
X, y = make_classification(n_samples=12_000, n_features=16, n_informative=8, n_classes=4,
                           random_state=0)
X_train, y_train, X_test, y_test = X[:10_000], y[:10_000], X[10_000:], y[10_000:]
X_local, y_local = to_device(shard(X_train)), to_device(shard(y_train))
Q_local, q_labels = to_device(shard(X_test)), to_device(shard(y_test))
knn = KNeighborsClassifier(n_neighbors=10).fit(X_local, y_local)
dist, ind = knn.kneighbors(Q_local)  # global row indices of the training rows
dist, ind = to_host(dist), to_host(ind)  # (on the queries' device: compared on the host)
accuracy = knn.score(Q_local, q_labels)  # over all ranks' queries

ref = SkKNN(n_neighbors=10, algorithm="brute").fit(X_train, y_train)
start, _ = comm.offsets(len(Q_local))
rdist, rind = ref.kneighbors(X_test)
rows = slice(start, start + len(ind))
same = all(comm.allgather(bool(np.array_equal(ind, rind[rows]))))
if comm.rank == 0:
    print(f"KNN: {len(X_train)} training rows and {len(X_test)} queries over {comm.size} ranks; "
          f"neighbour indices identical to scikit-learn's brute force: {same}")
report(comm, [("indices identical (1=yes)", float(same), 1.0),
              ("distances within 1e-10 (1=yes)", float(all(comm.allgather(bool(
                  np.max(np.abs(dist - rdist[rows]), initial=0.0) <= 1e-10)))), 1.0),
              ("accuracy", accuracy, ref.score(X_test, y_test))], rtol=1e-10)
