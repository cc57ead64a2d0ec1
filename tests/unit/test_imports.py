"""What a process that serves models imports: not pandas, nor the pyarrow pandas brings (some
75 MB per process; scikit-learn would import them, training/__init__.py keeps it from it), and
pandas still imports for whoever asks for it afterwards (MLflow, while training)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import importlib, json, sys
import api.app, worker.app
from worker import names
for module in names.TASK_MODULES:
    importlib.import_module(module)
from training import modelfile
modelfile.preload()
serving = sorted(m for m in ("pandas", "pyarrow") if m in sys.modules)
import pandas
import sklearn.utils.fixes
print(json.dumps({"serving": serving, "pandas": pandas.__version__,
                  "fixes_pd": sklearn.utils.fixes.pd is None}))
"""


def test_a_serving_process_imports_neither_pandas_nor_pyarrow_and_pandas_still_imports() -> None:
    # given the worker's and the API's modules, every task module and the model libraries
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # then neither pandas nor pyarrow was imported, scikit-learn did without pandas,
    assert found["serving"] == []
    assert found["fixes_pd"] is True
    # and pandas imports when asked for afterwards
    assert found["pandas"]
