"""What explanations cost: prediction alone against prediction with explanations, one core.

For the bootstrap model on demo data (made once under CAUSA_HOME/bench-models) and, with
`--models DIR`, the model in that directory (e.g. the default model of `bench/training.py
--keep DIR`): batches of 1,000 (a worker's batch), 100 and 1 texts, each batch new to the
model's memory of texts, each timed predicting and explaining (in turn, so that the
machine's ups and downs fall on both); the median of `--repeat` rounds. Texts: the
reference tickets when `--data` exists (the default is the copy beside the repository),
else demo tickets.

    python bench/explain.py [--models DIR] [--data FILE] [--json]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "it_service_tickets.csv.gz"
SIZES = (1000, 100, 1)
TEXTS = 10_000


def seconds(model: Any, texts: list[str], size: int) -> tuple[float, float]:
    """Seconds per batch of `size` predicting, and explaining: batches that cover `texts`
    (each one new to the model's memory of texts) go in turn to one and the other, then the
    other way round, so that each batch is timed both ways and the machine's ups and downs
    fall on both alike."""
    spent = [0.0, 0.0]
    calls = [model.fast, model.fast.explain]
    batches = range(0, len(texts) - size + 1, size)[: max(20, 2000 // size)]
    for turn in (0, 1):
        for n, i in enumerate(batches):
            which = (n + turn) % 2
            started = time.perf_counter()
            calls[which](texts[i : i + size])
            spent[which] += time.perf_counter() - started
    return spent[0] / len(batches), spent[1] / len(batches)


def main() -> None:
    p = common.parser(__doc__ or "", services=False)
    p.add_argument("--models", type=Path, help="also measure the model in this directory")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()

    from threadpoolctl import threadpool_limits

    from shared import logs
    from shared.settings import load_settings
    from shared.text import clean
    from training import dataset, registry
    from worker import demodata

    logs.configure(level="WARNING")
    base = load_settings()
    apart = base.model_copy(update={"models_dir": base.home / "bench-models"})
    chosen = [("bootstrap", common.model_dir(apart, base.home)[0])]
    if args.models is not None:
        chosen.append(("given", args.models))
    if args.data.exists():
        texts = [e.text for e in dataset.from_csv(args.data, "Document", "Topic_group")]
        source = args.data.name
    else:
        tickets = demodata.generate(TEXTS, seed=13)
        texts, source = [f"{t.short_description} {t.description}" for t in tickets], "demo"
    texts = [clean(t) for t in texts[:TEXTS]]
    rows, summary = [], []
    for name, where in chosen:
        models = registry.ModelRegistry.local(where, registry.signing_key(base))
        model = models.load_current()
        if model.fast is None:
            raise SystemExit(f"the model in {where} is not one causa explains")
        for size in SIZES:
            with threadpool_limits(1):
                seconds(model, texts, size)  # the model's memory of words filled
                rounds = [seconds(model, texts, size) for _ in range(args.repeat)]
            alone, explained = (statistics.median(r[i] for r in rounds) for i in (0, 1))
            extra = explained / alone - 1
            rows.append(
                (
                    f"{name} {model.version}, {size:,} texts",
                    f"{alone * 1000:,.2f} ms",
                    f"{explained * 1000:,.2f} ms",
                    f"{extra:+.0%}",
                )
            )
            summary.append(
                {
                    "model": name,
                    "version": model.version,
                    "texts": size,
                    "predict_ms": round(alone * 1000, 3),
                    "explain_ms": round(explained * 1000, 3),
                    "extra": round(extra, 3),
                }
            )
    common.emit(
        rows,
        f"explanations on {source} texts, one core; {common.machine()}",
        {"results": summary},
        args.json,
        columns=("batch", "predict", "with explanations", "extra"),
    )


if __name__ == "__main__":
    main()
