"""Streaming: each rank reads its rows of a .npy file and feeds them in batches.

    mpiexec -n 4 python examples/incremental_spmd.py [--device numpy|cpu|gpu]

partial_fit is local (any number of calls per rank); finalize_fit is the one collective.
"""

import os
import tempfile

import numpy as np
from sklearn.linear_model import LinearRegression as SkLinearRegression

from _check import device_arrays, report
from spmdlearn.basic_statistics import IncrementalBasicStatistics
from spmdlearn.comm import get_comm
from spmdlearn.io import read_npy
from spmdlearn.linear_model import IncrementalLinearRegression

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu
path = os.path.join(tempfile.gettempdir(), "spmdlearn_incremental_example.npy")
rng = np.random.default_rng(0)
data = np.column_stack([rng.normal(size=(50_000, 8)), np.zeros(50_000)])
data[:, -1] = data[:, :8] @ np.arange(1, 9) + 0.1 * rng.normal(size=50_000)
if comm.rank == 0:
    np.save(path, data)  # in real use the file is already on a shared file system
comm.barrier()

local = read_npy(path)  # this rank's rows only (a memory-mapped slice)
stats, model = IncrementalBasicStatistics(result_options=["mean", "variance"]), IncrementalLinearRegression()
for batch in np.array_split(local, 10):  # e.g. batches that arrive over time
    batch = to_device(np.ascontiguousarray(batch))
    stats.partial_fit(batch[:, :8])
    model.partial_fit(batch[:, :8], batch[:, 8])
stats.finalize_fit()
model.finalize_fit()

ref = SkLinearRegression().fit(data[:, :8], data[:, 8])
if comm.rank == 0:
    print(f"{len(data)} rows streamed in batches over {comm.size} ranks")
report(comm, [("mean_", stats.mean_, data[:, :8].mean(0)),
              ("variance_", stats.variance_, data[:, :8].var(0, ddof=1)),
              ("coef_", model.coef_, ref.coef_), ("intercept_", model.intercept_, ref.intercept_)],
       rtol=1e-7)
