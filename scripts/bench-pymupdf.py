#!/usr/bin/env python3
"""The Python user's choice, as a peer for scripts/bench: extract the text of
every page of every PDF with PyMuPDF (PyPI `pymupdf`) in a multiprocessing
pool, one task per file, and throw the text away.

usage: bench-pymupdf.py [--processes N] [--inproc] [--limit-as BYTES] (--list FILE | PDF...)

--list FILE   read the paths from FILE, one per line
--processes   pool size (default: the number of cores)
--inproc      no pool: extract in this process and time only the extraction
              (after the import, no process start-up), to measure the
              engine's pure single-core rate

Prints one JSON object: {"files", "pages", "failed", "seconds",
"cpu_seconds"}: the extraction's wall time and this process's CPU time,
measured inside the script (with --inproc, pages / cpu_seconds is the
single-core rate, unaffected by other load on the machine).
"""
import argparse
import json
import multiprocessing
import os
import resource
import sys
import time

import pymupdf  # noqa: E402  (PyPI: pymupdf)

pymupdf.TOOLS.mupdf_display_errors(False)


def extract(path):
    try:
        with pymupdf.open(path) as doc:
            n = 0
            for page in doc:
                page.get_text()
                n += 1
            return n, 0
    except Exception:  # a broken file fails alone, like in docmill
        return 0, 1


def limit_as(nbytes):
    if nbytes:
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    ap.add_argument("--inproc", action="store_true")
    ap.add_argument("--list")
    ap.add_argument("--limit-as", type=int, default=0,
                    help="address-space cap (bytes) for each extracting process")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = list(a.files)
    if a.list:
        with open(a.list, encoding="utf-8") as f:
            files += [line.rstrip("\n") for line in f if line.strip()]
    if not files:
        ap.error("no files")

    t0, c0 = time.perf_counter(), time.process_time()
    if a.inproc:
        limit_as(a.limit_as)
        results = [extract(p) for p in files]
    else:
        with multiprocessing.Pool(a.processes, limit_as, (a.limit_as,)) as pool:
            results = list(pool.imap_unordered(extract, files, chunksize=1))
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0  # this process only: the extraction itself with --inproc
    pages = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    json.dump({"files": len(files), "pages": pages, "failed": failed, "seconds": secs,
               "cpu_seconds": cpu}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
