"""Command line: build the book, re-execute one chapter, run the benchmark harness, or the demo.

    python -m phase2 book --profile default
    python -m phase2 precompute --profile default --scheduler tcp://10.0.0.5:8786
    python -m phase2 pdf --profile default
    python -m phase2 results export --profile default --format csv --to results-csv/
    python -m phase2 chapter quality_vs_memory -p dataset scifact -p model minilm-l6
    python -m phase2 demo --dataset scifact
    python -m phase2 bench kernels --n 1000000 --bits 384,1024 --threads 1,2
    python -m phase2 bench methods --dataset scifact --sizes 10000,100000 --methods flat,bin-flat,hnsw-flat
    python -m phase2 scale --profile default
    python -m phase2 advise --docs 10_000_000 --memory 4GB --target-recall 0.7
    python -m phase2 embeddings export --model mpnet-base --dataset scifact --to stores/
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from phase2 import BLAS_ROLE, blas_environment
from phase2.book import pipeline
from phase2.data.datasets import load_dataset
from phase2.data.embeddings import export_store
from phase2.demo import DEMO_METHODS
from phase2.demo import run_demo as demo
from phase2.errors import ParameterError, Phase2Error, PrecomputeError
from phase2.experiments import harness, params, precompute, published, results, scale
from phase2.experiments.params import split_ints
from phase2.experiments.results import results_dir
from phase2.experiments.timing import busy_cores_elsewhere
from phase2.findings import advisor, reproduction, throughput
from phase2.search.methods import FaissTrainingWarning
from phase2.search.registry import REGISTRY
from phase2.storage import atomic_write_bytes


def _literal(text: str):
    """papermill's ``-p`` typing: int, then float, then the string itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phase2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    profiles = params.profile_names()

    book = sub.add_parser("book", help="execute every chapter on a profile, then build the HTML book in _build/html")
    book.add_argument("--profile", default="default", choices=profiles, help="parameter set (chapters/profiles/)")
    book.add_argument("--force", action="store_true", help="re-execute chapters even when up to date")
    book.add_argument("--scheduler", help="run the precompute tasks on this Dask scheduler (tcp://HOST:PORT) instead "
                                          "of a local cluster")

    for command, help_text in (("precompute", "embed and search every (collection, model, codec) a profile's "
                                              "chapters need and the published results lack, as Dask tasks"),
                               ("reproduce", "recompute every search of a profile from cold caches into "
                                             "_build/reproduce/<profile>/, then compare it with the committed "
                                             "results")):
        runner = sub.add_parser(command, help=help_text)
        runner.add_argument("--profile", default="default", choices=profiles, help="parameter set (chapters/profiles/)")
        runner.add_argument("--scheduler", help="an existing Dask scheduler, tcp://HOST:PORT, whose workers share the "
                                                "cache and published directories (default: a local cluster)")
        runner.add_argument("--workers", type=int, help="local cluster size (default: one single-threaded worker per "
                                                        "core)")
        runner.add_argument("--serial", action="store_true", help="run the tasks in this process, one by one")
        runner.add_argument("--only", type=_names, default=[], help="searching chapters, collections or models, "
                                                                    "comma-separated: only their searches"
                                                                    + ("; throughput: measure the throughput run "
                                                                       "again (without --only: everything)"
                                                                       if command == "reproduce" else ""))

    pdf = sub.add_parser("pdf", help="print the executed book of a profile to _build/pdf/book.pdf (another profile "
                         "than default: _build/profiles/<profile>/_build/pdf/; headless Chromium)")
    pdf.add_argument("--profile", default="default", choices=profiles, help="parameter set (chapters/profiles/)")

    results = sub.add_parser("results", help="the results tables")
    result_commands = results.add_subparsers(dest="action", required=True)
    export_results = result_commands.add_parser("export", help="write every chapter's newest results of a profile "
                                                "and its current published tasks (scale), with their run metadata, "
                                                "as CSV or JSON")
    export_results.add_argument("--profile", default="default", choices=profiles, help="whose results")
    export_results.add_argument("--format", choices=["csv", "json"], default="csv", help="file format (csv)")
    export_results.add_argument("--to", type=Path, required=True, help="directory to write <chapter>.<format> into")

    status = result_commands.add_parser("status", help="each planned search of a profile: current, missing or "
                                                       "computed by other code or from other inputs "
                                                       "(phase2.experiments.published)")
    status.add_argument("--profile", default="default", choices=profiles, help="whose results")
    compared = result_commands.add_parser("compare", help="set recomputed results (python -m phase2 reproduce) "
                                                          "against the committed ones, search by search")
    compared.add_argument("--profile", default="default", choices=profiles, help="whose results")
    compared.add_argument("--against", type=Path, help="the recomputed results (default: "
                                                        "_build/reproduce/<profile>/results)")

    chapter = sub.add_parser("chapter", help="execute one chapter notebook with a profile and overrides")
    chapter.add_argument("name", help="chapter file name without .ipynb, e.g. quality_vs_memory")
    chapter.add_argument("--profile", default="smoke", choices=profiles, help="base parameter set")
    chapter.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                         help="override one parameter (repeatable); see --list")
    chapter.add_argument("--output", type=Path, help="executed notebook path (default: _build/executed/...)")
    chapter.add_argument("--list", action="store_true", help="list the chapter's parameters and exit")

    demo = sub.add_parser("demo", help="build a few indexes on one collection; show example hits and a comparison",
                          description=_demo_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--dataset", default="scifact", help="collection name (default: scifact)")
    demo.add_argument("--model", default="minilm-l6", help="embedding model (default: minilm-l6)")
    demo.add_argument("--indexes", type=_names, help="comma-separated subset of the indexes above (default: all)")
    demo.add_argument("--examples", type=int, default=3, help="example queries to show (default: 3)")
    demo.add_argument("--threads", type=int, help="threads for building and searching (default: all)")

    bench = sub.add_parser("bench", help="the benchmark harness; results are appended under the results directory",
                           description=_bench_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    runs = bench.add_subparsers(dest="suite", required=True)
    kernels = runs.add_parser("kernels", help="exhaustive Hamming top-k: this project's kernel vs faiss")
    kernels.add_argument("--n", type=int, default=1_000_000, help="database codes (default: 1,000,000)")
    kernels.add_argument("--bits", type=_ints, default=[384, 768, 1024],
                         help="code widths, multiples of 8 (384,768,1024)")
    kernels.add_argument("--threads", type=_ints, help="thread counts (default: 1 and all)")
    kernels.add_argument("--queries", type=int, default=1000, help="queries per batch (default: 1,000)")
    kernels.add_argument("--repeats", type=int, default=5, help="timed repeats after a warm-up; median kept (5)")
    methods = runs.add_parser("methods", help="recall, q/s, latency, build time and memory of every method")
    methods.add_argument("--dataset", type=_names, default=["scifact"],
                         help="collections whose documents are pooled into the real corpus (default: scifact)")
    methods.add_argument("--model", default="minilm-l6", help="embedding model (default: minilm-l6)")
    methods.add_argument("--sizes", type=_ints, default=[10_000, 100_000],
                         help="corpus sizes; beyond the real corpus, synthetic (default: 10000,100000)")
    methods.add_argument("--methods", type=_names, help="registry names (default: all; see --list)")
    methods.add_argument("--queries", type=int, default=1000, help="real queries used, a seeded sample (1000)")
    methods.add_argument("--repeats", type=int, default=3, help="timed repeats after a warm-up (default: 3)")
    methods.add_argument("--latency-queries", type=int, default=1000, help="single queries timed for p50/p99 (1000)")
    methods.add_argument("--latency-budget", type=float, default=30.0,
                         help="most seconds of single queries per setting and thread count (30)")
    methods.add_argument("--threads", type=_ints, help="search thread counts (default: 1 and all)")
    methods.add_argument("--no-synthetic-check", action="store_true",
                         help="do not also run synthetic data at the sizes that are real")
    methods.add_argument("--list", action="store_true", help="list the registered methods and their grids")

    tasks = sub.add_parser("scale", help="measure the published tasks at sizes no book build measures (the throughput "
                                         "chapter's scale_sizes x scale_methods), each written as soon as it is done")
    tasks.add_argument("--profile", default="default", choices=profiles, help="whose tasks (default: default)")
    tasks.add_argument("--only", type=_names, default=[], help="only these methods, comma-separated")
    tasks.add_argument("--status", action="store_true", help="list the planned tasks and their state; measure nothing")

    advise = sub.add_parser("advise", help="which scheme for N documents, a RAM budget and a recall target",
                            description=_advise_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    advise.add_argument("--docs", type=_count, required=True, help="documents to index, e.g. 10_000_000")
    advise.add_argument("--memory", required=True, help="RAM budget, e.g. 4GB (decimal) or 4GiB (binary)")
    advise.add_argument("--target-recall", type=float, required=True,
                        help="minimum recall@10 against exact float32 search, e.g. 0.9")
    advise.add_argument("--min-qps", type=float, default=0.0, help="minimum queries/s (default: no minimum)")
    advise.add_argument("--threads", type=int, help="search threads, as measured (default: the most measured)")
    advise.add_argument("--rescore-on-disk", action="store_true",
                        help="also consider pipelines whose re-ranking store lives on disk, as measured with "
                             "direct I/O (queries/s capped by the disk's measured reads/s)")
    advise.add_argument("--strict", action="store_true", help="refuse corpus sizes beyond the measured ones")
    advise.add_argument("--candidates", type=int, default=5, help="also list this many runners-up (default: 5)")
    advise.add_argument("--profile", default="default", choices=profiles,
                        help="answer from this profile's newest throughput run (default: default); the answer "
                             "names the run")

    stores = sub.add_parser("embeddings", help="publish embeddings as a read-only store other machines verify and use")
    store_commands = stores.add_subparsers(dest="action", required=True)
    export = store_commands.add_parser("export", help="write <to>/<model>/<collection>/ from the cache, embedding "
                                                      "what is missing first (phase2.data.embedding_stores layout)")
    export.add_argument("--model", required=True, help="embedding model, e.g. mpnet-base")
    export.add_argument("--dataset", type=_names, required=True, help="collection name(s), comma-separated")
    export.add_argument("--to", type=Path, required=True, help="the store's root directory")

    args = parser.parse_args(argv)
    measures = (args.command == "bench" and not getattr(args, "list", False)) or (args.command == "scale"
                                                                                   and not args.status)
    if measures and BLAS_ROLE != "timing":  # OpenBLAS reads its kernels once, when it loads: run again in a process
        # of the timing role (phase2.BLAS_ROLES), with the widest kernels the CPU has
        return subprocess.call([sys.executable, "-m", "phase2", *(sys.argv[1:] if argv is None else argv)],
                               env={**os.environ, **blas_environment("timing")})
    try:
        if args.command == "embeddings":
            run_export(args)
        elif args.command == "book":
            run_book(args)
        elif args.command == "precompute":
            run_precompute(args.profile, args.scheduler, args.workers, args.serial, tuple(args.only))
        elif args.command == "pdf":
            pipeline.build_pdf(args.profile)
        elif args.command == "results" and args.action == "status":
            print_status(args.profile)
        elif args.command == "results" and args.action == "compare":
            compare_results(args.profile, args.against or reproduce_dir(args.profile) / "results")
        elif args.command == "reproduce":
            run_reproduce(args)
        elif args.command == "results":
            for path in results_export(args):
                print(f"exported: {path}")
        elif args.command == "demo":
            run_demo(args)
        elif args.command == "bench":
            run_bench(args)
        elif args.command == "advise":
            run_advise(args)
        elif args.command == "scale":
            run_scale(args)
        else:
            run_one_chapter(args)
    except Phase2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _ints(text: str) -> list[int]:
    try:
        return split_ints(text, "value")
    except Phase2Error as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        return split_ints(text, "docs")[0]
    except Phase2Error as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _advise_description() -> str:

    return ("Answer from the newest throughput measurements (phase2.findings.advisor): the fastest measured\n"
            "scheme that fits the RAM budget and whose recall@10 (lower 95% bound) meets the target, scaled to\n"
            "--docs. Memory scales linearly; queries/s by a power law fitted to the measured sizes; recall is\n"
            "taken at the nearest measured size. Every extrapolation is stated in the answer; --strict refuses it.\n\n"
            + advisor.__doc__.split("\n\n")[0])


def _demo_description() -> str:

    listing = "\n".join(f"  {key:<15} {label}" for key, (label, *_rest) in DEMO_METHODS.items())
    return ("Embed one collection (cached after the first run), build each index below, print the top hits of a\n"
            "few example queries from each, then a table of bytes/vector (measured index size), nDCG@10 on the\n"
            "collection's judgements, recall@10 against float32 exhaustive search, queries/s (whole query set,\n"
            "median of 3) and build time.\n\nIndexes:\n" + listing)


def _bench_description() -> str:

    return ("Timed runs of the benchmark harness (phase2.experiments.harness). Each run appends one file\n"
            f"  {results_dir()}/throughput/<run id>.parquet\n"
            "(set PHASE2_RESULTS_DIR to write elsewhere); nothing is overwritten. The machine should be otherwise\n"
            "idle: medians of repeated timings are kept, and ratios are only quoted within one run.")


def run_demo(args: argparse.Namespace) -> None:

    if args.examples < 0:
        raise ParameterError(f"--examples must be at least 0, got {args.examples}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FaissTrainingWarning)
        hits, table = demo(args.dataset, args.model, args.examples, args.indexes, args.threads)
    print(hits)
    print(f"\n{args.dataset}, {args.model}: {len(table)} indexes, top-10 of every judged query\n")
    formats = {"code bytes/vector": "{:,.0f}", "index bytes/vector": "{:,.0f}", "nDCG@10": "{:.3f}",
               "recall@10 vs float32": "{:.3f}", "queries/s": "{:,.0f}", "build s": "{:.2f}"}
    print(table.to_string(index=False, formatters={c: f.format for c, f in formats.items()}))
    for message in dict.fromkeys(str(w.message) for w in caught if w.category is FaissTrainingWarning):
        print(f"note: {message}")


def run_bench(args: argparse.Namespace) -> None:

    if args.suite == "kernels":
        table = harness.run_kernels(args.n, args.bits, args.threads, n_queries=args.queries, repeats=args.repeats)
        summary = throughput.kernel_table(table)[["N", "bits", "threads", "k", "ours q/s", "faiss q/s", "speedup",
                                                  "roof q/s", "ours / roof", "ours simd", "faiss simd"]]
    elif args.list:
        for name, entry in REGISTRY.items():
            grid = ", ".join(str(q) for q in entry.grid(10**6) if q) or "-"
            print(f"{name:<18} query grid at 10^6: {grid}")
        return
    else:
        table = harness.run_grid(args.dataset, args.model, args.sizes, args.methods, n_queries=args.queries,
                                 check_synthetic=not args.no_synthetic_check, repeats=args.repeats,
                                 latency_queries=args.latency_queries, latency_budget_s=args.latency_budget,
                                 thread_counts=args.threads)
        points = throughput.operating_points(table)
        summary = points[["data_kind", "n_vectors", "method", "query_params", "search_threads", "recall@10", "qps",
                          "p50_ms", "p99_ms", "bytes_per_vector", "build_s"]]
    path = harness.save(table)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"))
    print(f"\nresults appended: {path}")


def run_advise(args: argparse.Namespace) -> None:

    question = advisor.Question(args.docs, advisor.parse_bytes(args.memory), args.target_recall, args.min_qps,
                                args.threads, args.rescore_on_disk)
    points, evidence = advisor.measured_points(profile=args.profile)
    advice = advisor.advise(points, question, evidence, strict=args.strict)
    print(advice.text())
    if args.candidates:
        columns = ["series", "query_params", "RAM GB", "disk GB", "recall@10", "recall low", "qps", "feasible"]
        print(f"\ncandidates (feasible first, then by queries/s), top {args.candidates}:")
        print(advice.candidates[columns].head(args.candidates).to_string(
            index=False, float_format=lambda v: f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"))


def run_export(args: argparse.Namespace) -> None:

    for name in args.dataset:
        print(f"exported: {export_store(load_dataset(name), args.model, args.to)}", flush=True)


def run_precompute(profile: str, scheduler: str | None, workers: int | None = None, serial: bool = False,
                   only: tuple[str, ...] = ()) -> None:

    start = time.perf_counter()
    size = workers or precompute.default_workers()
    where = ("this process" if serial else f"the Dask scheduler at {scheduler}" if scheduler else
             f"a local Dask cluster of {size} single-threaded worker{'s' if size > 1 else ''}")
    print(f"precompute: embeddings and codec searches of the {profile} profile on {where}", flush=True)
    timings = (precompute.run_serial(profile, only=only) if serial else
               precompute.run(profile, scheduler=scheduler, workers=workers, only=only))
    path = pipeline.BUILD_DIR / "precompute" / f"{profile}.csv"
    atomic_write_bytes(path, timings.to_csv(index=False).encode())
    failed = timings[timings.error != ""]
    slowest = timings.sort_values("seconds", ascending=False).head(3)
    print(f"precompute: {len(timings) - len(failed)} tasks done in {pipeline.duration(time.perf_counter() - start)} "
          f"({pipeline.duration(timings.seconds.sum())} of task time; slowest: "
          + ", ".join(f"{r.dataset}/{r.model} {r.codec or 'embedding'} {r.seconds:.0f} s" for r in slowest.itertuples())
          + f"; every task's time in {path.relative_to(pipeline.PROJECT_ROOT)})", flush=True)
    if len(failed):
        raise PrecomputeError(f"{len(failed)} of {len(timings)} precompute tasks failed:\n" + "\n".join(
            "  " + " ".join(filter(None, [r.task, f"{r.dataset}/{r.model}", r.codec, r.training])) + f": {r.error}"
            for r in failed.itertuples()))


def run_book(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    run_precompute(args.profile, args.scheduler)
    index = pipeline.build_book(args.profile, force=args.force)
    print(f"book ({args.profile} profile) built in {pipeline.duration(time.perf_counter() - start)}; open it: "
          f"{index.resolve().as_uri()}", flush=True)


def reproduce_dir(profile: str) -> Path:
    """Scratch root of ``reproduce``: its own caches and published results, never the committed ones."""
    return pipeline.BUILD_DIR / "reproduce" / profile


def run_reproduce(args: argparse.Namespace) -> None:
    """Precompute into scratch caches and a scratch results folder (a killed run resumes from what that folder
    already holds), measure the throughput run again when asked (``--only throughput``, or no ``--only``), then
    compare with the committed results."""
    root = reproduce_dir(args.profile)
    os.environ["PHASE2_CACHE_DIR"] = str(root / "cache")
    os.environ["PHASE2_PUBLISHED_DIR"] = str(root / "results")
    os.environ["PHASE2_RESULTS_DIR"] = str(root / "runs")
    measure = not args.only or "throughput" in args.only
    only = tuple(name for name in args.only if name != "throughput")
    if only or not args.only:
        run_precompute(args.profile, args.scheduler, args.workers, args.serial, only)
    if measure:
        notebook = params.CHAPTERS_DIR / "throughput.ipynb"
        start = time.perf_counter()
        pipeline.execute_chapter(notebook, params.chapter_parameters(notebook, args.profile),
                                 root / "executed" / notebook.name, force=True)
        print(f"throughput measured again in {pipeline.duration(time.perf_counter() - start)}", flush=True)
    compare_results(args.profile, root / "results")


def compare_results(profile: str, recomputed: Path) -> None:

    committed = published.committed_dir(profile)
    table = published.compare(recomputed, committed)
    runs = sorted((recomputed / harness.CHAPTER).glob("*.parquet"))
    if table.empty and not runs:
        raise Phase2Error(f"no recomputed results under {recomputed}: run python -m phase2 reproduce --profile "
                          f"{profile} first")
    failures = []
    if len(table):
        counts = table.outcome.str.replace(r":.*", "", regex=True).value_counts()
        for row in table[table.outcome != "identical"].itertuples():
            print(f"{row.search}: {row.outcome}")
        print(f"{recomputed} against {committed}: {len(table)} searches; "
              + ", ".join(f"{n} {outcome}" for outcome, n in counts.items()), flush=True)
        if counts.get("identical", 0) != len(table):
            failures.append(f"{len(table) - counts.get('identical', 0)} recomputed searches differ from the committed "
                            "results (listed above)")
    if runs:
        mine = pd.read_parquet(runs[-1])
        theirs, _ = harness.published_run(profile)
        if theirs is None:
            raise Phase2Error(f"no committed throughput run of the {profile} profile to compare {runs[-1]} with")
        timing = reproduction.compare_runs(mine, theirs)
        for metric, g in timing.groupby("metric", sort=False):
            outcomes = g.outcome.value_counts()
            print(f"throughput {metric}: {len(g)} operating points; "
                  + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())
                  + (f" (tolerance x{1 + reproduction.TIMING_TOLERANCE:g} either way; median quotient "
                     f"{g.quotient.median():.2f})" if metric != "recall@10" else ""), flush=True)
        print(f"recomputed on {harness.machine_line(mine.machine.iloc[0])}; committed on "
              f"{harness.machine_line(theirs.machine.iloc[0])}", flush=True)
        differs = timing[(timing.metric == "recall@10") & (timing.outcome != "identical")]
        if len(differs):
            print(differs.to_string(index=False))
            failures.append(f"{len(differs)} deterministic recall@10 values differ from the committed run")
    if failures:
        raise Phase2Error("; ".join(failures))


def print_status(profile: str) -> None:

    status = precompute.published_status(profile)
    summary = precompute.status_summary(status)
    print(summary.to_string(index=False))
    counts = status.status.value_counts()
    stale = status[status.status != "current"].seconds
    print(f"{published.published_dir(profile)}: {len(status)} searches; "
          + ", ".join(f"{counts.get(state, 0)} {state}" for state in published.STATES)
          + f"; refreshing those not current took {pipeline.duration(stale.sum())} of recorded wall time"
          + (f" ({stale.isna().sum()} never computed, not counted)" if stale.isna().any() else ""), flush=True)
    tasks = scale.status(profile).state.value_counts()
    print(f"{scale.tasks_dir(profile)}: {tasks.sum()} tasks at sizes no build measures; "
          + ", ".join(f"{tasks.get(state, 0)} {state}" for state in scale.STATES)
          + f" (python -m phase2 scale --profile {profile} --status)")


def results_export(args: argparse.Namespace) -> list[Path]:
    """Every chapter's newest run, and the profile's current published tasks as ``scale.<format>``."""
    try:
        written = results.export_results(args.profile, args.format, args.to)
    except FileNotFoundError as exc:
        raise Phase2Error(str(exc)) from None
    tasks = scale.read_tasks(args.profile)
    return written + ([results.write_export(tasks, Path(args.to) / f"scale.{args.format}")] if len(tasks) else [])


def run_scale(args: argparse.Namespace) -> None:
    if not args.status:
        busy = busy_cores_elsewhere()
        if busy is not None and busy > 0.25:
            print(f"warning: other processes keep {busy:.2f} cores busy: the timings will not be reliable")
        for path in scale.run_scale(args.profile, args.only):
            print(f"published: {path}")
    print(scale.status(args.profile).to_string(index=False))


def run_one_chapter(args: argparse.Namespace) -> None:
    notebooks = {nb.stem: nb for nb in pipeline.chapter_notebooks()}
    if args.name not in notebooks:
        raise ParameterError(f"unknown chapter {args.name!r}; chapters: {', '.join(notebooks)}")
    notebook = notebooks[args.name]
    if args.list:
        for name, info in params.declared_parameters(notebook).items():
            print(f"{name}: {info['inferred_type_name']} = {info['default']}  # {info['help']}")
        return
    overrides = {name: _literal(value) for name, value in args.parameter}
    parameters = params.chapter_parameters(notebook, args.profile, overrides)
    output = args.output or pipeline.executed_dir(args.profile) / "custom" / notebook.name
    pipeline.execute_chapter(notebook, parameters, output, force=True)
    print(f"executed: {output}")


if __name__ == "__main__":
    sys.exit(main())
