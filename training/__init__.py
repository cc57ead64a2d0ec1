"""Models: training them, their files, serving them fast."""

import sys

# scikit-learn imports pandas when it is installed (sklearn.utils.fixes, for a helper of its
# ARFF reader), and pandas imports pyarrow: some 75 MB in every process that serves a model, for
# nothing a causa model uses. scikit-learn is imported here first, with pandas hidden, so it
# does without; pandas still imports as usual for whoever asks for it (MLflow, while training).
if "sklearn" not in sys.modules and "pandas" not in sys.modules:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` fails
    try:
        import sklearn.utils.fixes  # noqa: F401
    finally:
        del sys.modules["pandas"]
