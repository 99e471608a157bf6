#!/usr/bin/env python3
"""The benchmark driver behind scripts/bench (run that: it installs the peers
and builds docmill first). Python standard library only.

Every case runs docmill and its peers in rounds on the same files, in the
same sitting: A B C, A B C, ... (at least 3 rounds), so that a machine whose
load drifts (a shared 2-core box) hurts every contender alike. A case reports
the median of each command and the ratios between medians, prints a table,
and everything lands as JSON in bench-out/ (git-ignored).

docmill is built as the README builds it (release, default features, so with
the in-process MuPDF engine); `docmill-auto` is what a user gets without
flags.

Cases (see BENCHMARKS.md):
  1 throughput   normal corpus PDFs repeated; docmill per engine vs xargs/PyMuPDF
  2 tiny         many one-page PDFs; documents/s vs xargs -n1 pdftotext
  3 massive      the 12,000-page PDF; chunked vs unchunked vs peers
  4 mixed        corpus + massive + EPUBs; makespan vs peers (PDFs only)
  5 memory       supervisor RSS at 100k catalogued docs; tree peak under a budget
  6 scaling      1..12 workers (only with >= 12 cores, or --scaling)
  7 library      the whole sample library (the corpus folder), a whole job,
                 vs recollindex (Recoll) indexing the same folder
  8 ocr          a scanned book (corpus scans joined, 45 pages): docmill on all
                 workers vs one worker vs xargs -P<cores> (mutool draw | tesseract)
                 per page
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCMILL = ROOT / "target" / "release" / "docmill"
PYMUPDF_SCRIPT = ROOT / "scripts" / "bench-pymupdf.py"
CORES = os.cpu_count() or 1
PEER_AS_KIB = 4 << 20  # 4 GiB: docmill's default ceiling for a worker's address space


def log(msg=""):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# the corpus and the generated libraries


def corpus_dir():
    env = os.environ.get("DOCMILL_CORPUS")
    d = Path(env) if env else ROOT.parent / "shared" / "corpus"
    if not (d / "MANIFEST.tsv").is_file():
        sys.exit(f"bench: no corpus at {d} (set DOCMILL_CORPUS)")
    return d


def manifest(corpus):
    rows = []
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            cols = dict(zip(header, line.rstrip("\n").split("\t")))
            rows.append(cols)
    return rows


def normal_pdfs(corpus):
    """(path, pages) of the corpus's `normal` PDFs, in manifest order."""
    out = []
    for r in manifest(corpus):
        if r["path"].endswith(".pdf") and r["kind"].split(";")[0] == "normal":
            out.append((corpus / r["path"], int(r["pages"])))
    return out


def link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def repeat_library(dest, files, copies):
    """`copies` copies of every file under distinct names (hard links where
    the file system allows, else copies); docmill skips symbolic links."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(copies):
        for src, _ in files:
            dst = dest / f"c{c:02d}-{src.name}"
            link_or_copy(src, dst)
            paths.append(dst)
    return paths


def tiny_pdf(text):
    """A minimal valid one-page PDF (Helvetica, one line of text)."""
    esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({esc}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


WORDS = ("invoice memo receipt ledger quarterly report minutes agenda letter notice "
         "summary contract annex schedule budget forecast review draft final copy").split()


def tiny_library(dest, n):
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(8))
        p = dest / f"tiny-{i:06d}.pdf"
        p.write_bytes(tiny_pdf(f"Document {i}: {words}"))
        paths.append(p)
    return paths


def many_names(dest, n):
    """One tiny PDF hard-linked under n names, 1,000 to a folder."""
    dest.mkdir(parents=True, exist_ok=True)
    master = dest / "master.pdf.src"
    master.write_bytes(tiny_pdf("the same small document under many names"))
    for i in range(n):
        sub = dest / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(exist_ok=True)
        link_or_copy(master, sub / f"doc-{i:06d}.pdf")
    master.unlink()


def make_massive(corpus, out, pages):
    script = corpus / "make-massive.sh"
    subprocess.run(["bash", str(script), str(out), str(pages)], check=True,
                   stdout=subprocess.DEVNULL)


def write_list(path, files):
    with open(path, "w", encoding="utf-8") as f:
        for p in files:
            f.write(f"{p}\n")
    with open(str(path) + ".0", "wb") as f:
        for p in files:
            f.write(os.fsencode(str(p)) + b"\0")
    return path


def warm_cache(files):
    for p in files:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


# --------------------------------------------------------------------------
# commands and measurement


class Cmd:
    """One contender. argv runs with stdout captured (docmill's --json
    summary) and stderr to a log; `before` runs untimed before each run."""

    def __init__(self, name, argv, *, docmill=False, db=None, stdin=None, sample=False):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.docmill = docmill
        self.db = db
        self.stdin = stdin
        self.sample = sample

    def before(self):
        if self.db:
            for suffix in ("", "-wal", "-shm", ".lock"):
                p = Path(str(self.db) + suffix)
                if p.exists():
                    p.unlink()


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "PPid"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def tree_rss_kb(root):
    """Resident memory of `root` and all its descendants, in KiB."""
    children = {}
    rss = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        ppid, pages = int(fields[1]), int(fields[21])
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


class Sampler(threading.Thread):
    """Polls the supervisor's own peak (VmHWM) and the whole tree's RSS."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.hwm_kb = 0
        self.tree_peak_kb = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            st = proc_status(self.pid)
            if not st:
                break
            self.hwm_kb = max(self.hwm_kb, st.get("VmHWM", 0))
            self.tree_peak_kb = max(self.tree_peak_kb, tree_rss_kb(self.pid))
            self.stop.wait(self.interval)


OK_CODES = {0, 1, 123}  # docmill 1: some documents failed; xargs 123: a child failed


def measure(cmd, logdir):
    cmd.before()
    errlog = logdir / f"{cmd.name}.stderr"
    stdin = open(cmd.stdin, "rb") if cmd.stdin else subprocess.DEVNULL
    with open(errlog, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd.argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err)
        sampler = None
        if cmd.sample:
            sampler = Sampler(p.pid)
            sampler.start()
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout.close()
        if sampler:
            sampler.stop.set()
            sampler.join()
    if cmd.stdin:
        stdin.close()
    # CPU time of the whole process tree (every child is reaped before it
    # exits): much less sensitive to a busy machine than the wall time.
    res = {"seconds": dt, "rc": p.returncode, "cpu_s": ru.ru_utime + ru.ru_stime,
           "loadavg": os.getloadavg()[0]}
    if p.returncode not in OK_CODES:
        tail = errlog.read_text(errors="replace")[-800:]
        log(f"  ! {cmd.name} exited {p.returncode}:\n{tail}")
        res["error"] = True
    text = out.decode(errors="replace").strip()
    if cmd.docmill and text:
        try:
            s = json.loads(text.splitlines()[-1])
            t = s.get("totals", {})
            res.update(pages=t.get("pages"), done=t.get("done"), failed=t.get("failed"),
                       peak_rss=t.get("peak_rss"), internal_seconds=s.get("seconds"))
        except (ValueError, AttributeError):
            pass
    elif text.startswith("{"):  # the PyMuPDF script
        try:
            s = json.loads(text.splitlines()[-1])
            res.update(pages=s.get("pages"), failed=s.get("failed"),
                       internal_seconds=s.get("seconds"), internal_cpu_s=s.get("cpu_seconds"))
        except ValueError:
            pass
    if sampler:
        res["supervisor_peak_kb"] = sampler.hwm_kb
        res["tree_peak_kb"] = sampler.tree_peak_kb
    return res


def interleave(cmds, rounds, logdir):
    """Runs the commands in turn, `rounds` times: A B C A B C ..."""
    runs = {c.name: [] for c in cmds}
    for r in range(rounds):
        for c in cmds:
            res = measure(c, logdir)
            runs[c.name].append(res)
            log(f"  round {r + 1}/{rounds}  {c.name:<28} {res['seconds']:8.2f} s"
                f"  cpu {res['cpu_s']:7.2f} s  load {res['loadavg']:4.1f}"
                + (f"  rc={res['rc']}" if res["rc"] else ""))
    out = {}
    for c in cmds:
        rs = runs[c.name]
        secs = [x["seconds"] for x in rs]
        out[c.name] = {"argv": c.argv, "runs": rs, "median_s": statistics.median(secs),
                       "median_cpu_s": statistics.median(x["cpu_s"] for x in rs),
                       "min_s": min(secs), "max_s": max(secs),
                       "errors": sum(1 for x in rs if x.get("error"))}
    return out


# --------------------------------------------------------------------------
# the contenders


class Ctx:
    def __init__(self, args, work, venv_python):
        self.args = args
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.py = venv_python
        self.corpus = corpus_dir()
        self.rounds = args.rounds
        self.help = subprocess.run([DOCMILL, "index", "--help"], capture_output=True,
                                   text=True).stdout
        self._massive = None

    def chunking(self):
        return "--no-chunking" in self.help and "--massive-pages" in self.help

    def massive_args(self):
        """Makes docmill treat the massive file as massive when a smaller one
        than its default threshold (10,000 pages) is used."""
        pages = self.args.massive_pages
        if self.chunking() and pages < 10000:
            return ["--massive-pages", str(max(1, pages // 2))]
        return []

    def massive(self):
        if self._massive is None:
            out = self.work / "massive" / "massive.pdf"
            out.parent.mkdir(parents=True, exist_ok=True)
            log(f"  making the {self.args.massive_pages}-page PDF (make-massive.sh)")
            make_massive(self.corpus, out, self.args.massive_pages)
            self._massive = out
        return self._massive

    def docmill(self, name, paths, *extra, workers=None, sample=False):
        db = self.work / "db" / f"{name}.db"
        db.parent.mkdir(exist_ok=True)
        argv = [DOCMILL, "index", "--db", db, "--workers", workers or CORES,
                "--progress", "off", "--json", *extra, *paths]
        return Cmd(name, argv, docmill=True, db=db, sample=sample)

    def xargs(self, name, listfile, tool, deadline=None):
        """`xargs -P<cores>`, one process per file. Every peer child runs
        under the address-space cap docmill's workers get by default (4 GiB):
        a peer left unbounded on a pathological file can take the whole
        machine's memory. With `deadline`, each child also runs under
        `timeout`, as docmill's jobs do (for libraries with bad files)."""
        wrap = ["timeout", "-s", "KILL", str(deadline)] if deadline else []
        if tool == "mutool":
            cmd = ["xargs", "-0", f"-P{CORES}", "-n1", *wrap, "mutool", "draw", "-q", "-F", "txt",
                   "-o", "/dev/null"]
        else:  # pdftotext, one process per file, text to stdout (discarded)
            cmd = ["xargs", "-0", f"-P{CORES}", "-I{}", *wrap, "pdftotext", "-q", "{}", "-"]
        argv = ["sh", "-c", f'ulimit -v {PEER_AS_KIB} && exec "$@"', "sh", *cmd]
        return Cmd(name, argv, stdin=str(listfile) + ".0")

    def pymupdf(self, name, listfile, processes=None, inproc=False):
        argv = [self.py, PYMUPDF_SCRIPT, "--list", listfile, "--limit-as", PEER_AS_KIB * 1024]
        argv += ["--inproc"] if inproc else ["--processes", processes or CORES]
        return Cmd(name, argv)


def rate(pages, secs):
    return pages / secs if secs else None


def ratio(a, b):
    return a / b if a and b else None


# --------------------------------------------------------------------------
# the cases


def case_throughput(ctx):
    a = ctx.args
    files = normal_pdfs(ctx.corpus)
    corpus_pages = sum(n for _, n in files)
    res = {"title": "Throughput (normal corpus PDFs repeated)", "groups": {}}

    def group(key, copies, contenders):
        lib = ctx.work / f"thr-x{copies}"
        if not lib.exists():
            paths = repeat_library(lib, files, copies)
            write_list(ctx.work / f"thr-x{copies}.list", paths)
            warm_cache(paths[: len(files)])
        lst = ctx.work / f"thr-x{copies}.list"
        pages = corpus_pages * copies
        log(f"[1] throughput/{key}: {len(files) * copies} files, {pages} pages, "
            f"{ctx.rounds} rounds")
        cmds = contenders(lib, lst)
        r = interleave(cmds, ctx.rounds, ctx.logs)
        for v in r.values():
            v["pages_per_min"] = rate(pages, v["median_s"]) * 60
        res["groups"][key] = {"copies": copies, "files": len(files) * copies, "pages": pages,
                              "results": r}
        return r

    # The best installed engine (MuPDF) against every peer, on ~20,000 pages.
    # Every docmill contender of this case does the peers' work, the text
    # layers, without OCR of the three image-only pages (covers, full-page
    # figures) that `--ocr auto`, the default, recognises on top;
    # `docmill-auto-ocr` runs as a user gets it, to show what that costs.
    g = group("mupdf", a.copies, lambda lib, lst: [
        ctx.docmill("docmill-mupdf", [lib], "--pdf-engine", "mupdf", "--ocr", "off"),
        ctx.docmill("docmill-auto", [lib], "--ocr", "off"),
        ctx.docmill("docmill-auto-ocr", [lib]),
        ctx.xargs("xargs-mutool", lst, "mutool"),
        ctx.pymupdf("pymupdf-pool", lst),
    ])
    # Poppler against the pdftotext peer.
    p = group("poppler", a.copies_poppler, lambda lib, lst: [
        ctx.docmill("docmill-poppler", [lib], "--pdf-engine", "poppler", "--ocr", "off"),
        ctx.xargs("xargs-pdftotext", lst, "pdftotext"),
    ])
    # The built-in engine alone, at all cores and at one worker.
    b = group("builtin", a.copies_builtin, lambda lib, lst: [
        ctx.docmill("docmill-builtin", [lib], "--pdf-engine", "builtin", "--ocr", "off"),
        ctx.docmill("docmill-builtin-w1", [lib], "--pdf-engine", "builtin", "--ocr", "off",
                    workers=1),
    ])
    # The engine's pure single-core rate: PyMuPDF in one process, timed
    # inside (no process start-up), over the corpus once.
    lst1 = ctx.work / "corpus-x1.list"
    write_list(lst1, [p for p, _ in files])
    log("[1] throughput/inproc: MuPDF single-core in-process rate (PyMuPDF, timed inside)")
    inproc = interleave([ctx.pymupdf("pymupdf-inproc-1core", lst1, inproc=True)],
                        ctx.rounds, ctx.logs)["pymupdf-inproc-1core"]
    # per CPU-second of the extracting process: a busy machine does not lower it
    inproc_rate = statistics.median(corpus_pages / x["internal_cpu_s"] for x in inproc["runs"])
    res["inproc_single_core_pages_per_s"] = inproc_rate
    res["inproc_runs"] = inproc["runs"]

    def pps(r, k):
        return r[k]["pages_per_min"] / 60

    def per_cpu(r, k, pages):
        return pages / r[k]["median_cpu_s"]

    m_rate = pps(g, "docmill-mupdf")
    res["targets"] = {
        "mupdf_vs_2x_single_core": ratio(m_rate, 2 * inproc_rate),
        "mupdf_vs_xargs_mutool": ratio(m_rate, pps(g, "xargs-mutool")),
        "mupdf_vs_pymupdf_pool": ratio(m_rate, pps(g, "pymupdf-pool")),
        "poppler_vs_xargs_pdftotext": ratio(pps(p, "docmill-poppler"), pps(p, "xargs-pdftotext")),
        "builtin_vs_2x_w1": ratio(pps(b, "docmill-builtin"), CORES * pps(b, "docmill-builtin-w1")),
    }
    i_rate = pps(g, "docmill-auto")
    res["targets"]["auto_vs_2x_single_core"] = ratio(i_rate, 2 * inproc_rate)
    res["targets"]["auto_vs_xargs_mutool"] = ratio(i_rate, pps(g, "xargs-mutool"))
    res["targets"]["auto_ocr_vs_xargs_mutool"] = ratio(pps(g, "docmill-auto-ocr"),
                                                       pps(g, "xargs-mutool"))
    gp = res["groups"]
    res["cpu_efficiency"] = {  # pages per CPU-second, docmill / peer
        "mupdf_vs_xargs_mutool": ratio(per_cpu(g, "docmill-mupdf", gp["mupdf"]["pages"]),
                                       per_cpu(g, "xargs-mutool", gp["mupdf"]["pages"])),
        "mupdf_vs_pymupdf_pool": ratio(per_cpu(g, "docmill-mupdf", gp["mupdf"]["pages"]),
                                       per_cpu(g, "pymupdf-pool", gp["mupdf"]["pages"])),
        "poppler_vs_xargs_pdftotext": ratio(
            per_cpu(p, "docmill-poppler", gp["poppler"]["pages"]),
            per_cpu(p, "xargs-pdftotext", gp["poppler"]["pages"])),
    }
    return res


def case_tiny(ctx):
    n = ctx.args.tiny
    lib = ctx.work / "tiny"
    paths = tiny_library(lib, n)
    lst = write_list(ctx.work / "tiny.list", paths)
    log(f"[2] tiny: {n} one-page PDFs, {ctx.rounds} rounds")
    # The default engine (in-process MuPDF) and the built-in one; the
    # mutool engine's two processes per document run with --full.
    cmds = [ctx.docmill("docmill-auto", [lib]),
            ctx.docmill("docmill-builtin", [lib], "--pdf-engine", "builtin")]
    if ctx.args.full:
        cmds.append(ctx.docmill("docmill-mupdf", [lib], "--pdf-engine", "mupdf"))
    cmds.append(ctx.xargs("xargs-pdftotext", lst, "pdftotext"))
    r = interleave(cmds, ctx.rounds, ctx.logs)
    for v in r.values():
        v["docs_per_s"] = n / v["median_s"]
    peer = r["xargs-pdftotext"]["docs_per_s"]
    return {"title": f"{n} tiny one-page PDFs", "docs": n, "results": r, "targets": {
        f"{k.removeprefix('docmill-')}_vs_xargs_pdftotext": ratio(v["docs_per_s"], peer)
        for k, v in r.items() if k.startswith("docmill-")}}


def case_massive(ctx):
    pages = ctx.args.massive_pages
    pdf = ctx.massive()
    lst = write_list(ctx.work / "massive.list", [pdf])
    warm_cache([pdf])
    res = {"title": f"one {pages}-page PDF", "pages": pages}
    cmds = []
    # The default engine (in-process MuPDF). As in case 1, the contenders
    # compared do the peers' work, the text layers (`--ocr off`): the file's
    # 7 image-only pages are OCR jobs of a page or a few each, the same
    # recognition (about 5.5 CPU-s) whether the text was chunked or not.
    # `docmill-chunked-ocr` runs as a user gets it, to show that cost.
    off = ["--ocr", "off"] if "--ocr" in ctx.help else []
    if ctx.chunking():
        # make sure it is chunked whatever the defaults, and compare with off
        cmds += [ctx.docmill("docmill-chunked", [pdf], *ctx.massive_args(), *off),
                 ctx.docmill("docmill-unchunked", [pdf], "--no-chunking", *off),
                 ctx.docmill("docmill-chunked-ocr", [pdf], *ctx.massive_args())]
    else:
        log("[3] massive: skipped: chunking not available (docmill index has no "
            "--no-chunking / --massive-pages); docmill runs unsplit against the peers")
        res["skipped"] = "chunking not available"
        cmds += [ctx.docmill("docmill-unchunked", [pdf], *off)]
    cmds += [ctx.xargs("xargs-mutool", lst, "mutool"),
             ctx.pymupdf("pymupdf-pool", lst)]
    if ctx.args.full:
        cmds.append(ctx.xargs("xargs-pdftotext", lst, "pdftotext"))
    log(f"[3] massive: {pages} pages in one file, {ctx.rounds} rounds")
    r = interleave(cmds, ctx.rounds, ctx.logs)
    for v in r.values():
        v["pages_per_min"] = rate(pages, v["median_s"]) * 60
    res["results"] = r
    un = r["docmill-unchunked"]["median_s"]
    t = {"unchunked_vs_xargs_mutool": ratio(r["xargs-mutool"]["median_s"], un)}
    if "docmill-chunked" in r:
        ch = r["docmill-chunked"]["median_s"]
        t["chunked_vs_unchunked"] = ratio(un, ch)
        t["chunked_vs_xargs_mutool"] = ratio(r["xargs-mutool"]["median_s"], ch)
    res["targets"] = t
    return res


def case_mixed(ctx):
    case_mixed_prepare(ctx)
    lib = ctx.work / "mixed"
    pdfs = sorted(p for p in (lib / "pdf").iterdir() if p.suffix == ".pdf")
    # in name order, as a plain `find | sort | xargs` would give them
    lst = write_list(ctx.work / "mixed.list", pdfs)
    n_epub = len(list((lib / "epub").iterdir()))
    which = "all corpus PDFs" if ctx.args.full else "normal corpus PDFs"
    log(f"[4] mixed: {len(pdfs)} PDFs ({which} + one of {ctx.args.massive_pages} pages) + "
        f"{n_epub} EPUBs, {ctx.rounds} rounds; peers get the PDFs only")
    # peers get docmill's default deadline per file (60 s + 2 s/MiB, at most
    # ~100 s for the 12,000-page file): without one, a pathological file can
    # keep `mutool` busy for as long as memory lasts.
    cmds = [ctx.docmill("docmill-auto", [lib], *ctx.massive_args()),
            ctx.xargs("xargs-mutool", lst, "mutool", deadline=120),
            ctx.pymupdf("pymupdf-pool", lst)]
    if ctx.args.full:
        cmds.append(ctx.xargs("xargs-pdftotext", lst, "pdftotext", deadline=120))
    r = interleave(cmds, ctx.rounds, ctx.logs)
    d = r["docmill-auto"]["median_s"]
    return {"title": "mixed library makespan", "pdfs": len(pdfs), "epubs": n_epub,
            "note": "peers extract the PDFs only; docmill also the EPUBs", "results": r,
            "targets": {f"docmill_vs_{k}": ratio(v["median_s"], d)
                        for k, v in r.items() if k != "docmill-auto"}}


def case_library(ctx):
    """The README's first job: the sample library as it is (normal, broken,
    encrypted and pathological PDFs, EPUBs), indexed from nothing, against
    Recoll's indexer over the same folder. Each Recoll round gets a fresh
    configuration folder naming the library as its only top folder, so that
    it indexes from nothing too."""
    lib = ctx.corpus
    conf = ctx.work / "recoll"
    # Recoll reads its configuration folder's recoll.conf; the index lands
    # in the same folder (xapiandb), removed before every round.
    script = ('rm -rf "$1" && mkdir -p "$1" && printf "topdirs = %s\\n" "$2" >"$1/recoll.conf"'
              ' && exec recollindex -c "$1" -z >/dev/null 2>&1')
    recoll = Cmd("recollindex", ["sh", "-c", script, "sh", conf, lib])
    log(f"[7] library: {lib} as it is, a whole job, {ctx.rounds} rounds")
    # Recoll as configured here runs no OCR, so `docmill-auto` does the same
    # work (`--ocr off`); `docmill-auto-ocr` runs as a user gets it, also
    # recognising the library's pages without a text layer.
    cmds = [ctx.docmill("docmill-auto", [lib], "--ocr", "off"),
            ctx.docmill("docmill-auto-ocr", [lib]), recoll]
    r = interleave(cmds, ctx.rounds, ctx.logs)
    d = r["docmill-auto"]["median_s"]
    return {"title": "the sample library, a whole job", "results": r,
            "targets": {"docmill_vs_recollindex": ratio(r["recollindex"]["median_s"], d),
                        "docmill_ocr_vs_recollindex":
                            ratio(r["recollindex"]["median_s"],
                                  r["docmill-auto-ocr"]["median_s"])}}


# Scanned corpus pages (no text layer), joined into one book for case 8:
# 9 pages a pass, from typewriter to two-column print and rotated pages.
SCANNED = ["pdf/ocrmypdf-c02-22.pdf", "pdf/ocrmypdf-linn.pdf", "pdf/ocrmypdf-epson.pdf",
           "pdf/ocrmypdf-jbig2.pdf", "pdf/ocrmypdf-ccitt.pdf", "pdf/ocrmypdf-cardinal.pdf"]


def scanned_book(corpus, out, pages):
    """Joins the scans above, over and over, into one image-only PDF of at
    least `pages` pages, with qpdf (as make-massive.sh does)."""
    counts = {p: n for p, n in manifest_pages(corpus) if p in SCANNED}
    args, n = [], 0
    while n < pages:
        for rel in SCANNED:
            args.append(str(corpus / rel))
            n += counts.get(rel, 1)
            if n >= pages:
                break
    out.parent.mkdir(parents=True, exist_ok=True)
    # qpdf exits 3 on warnings (some scans carry them); the file is written.
    subprocess.run(["qpdf", "--empty", "--pages", *args, "--", str(out)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not out.exists():
        raise SystemExit(f"bench: qpdf could not join the scans into {out}")
    return n


def manifest_pages(corpus):
    for line in (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]:
        f = line.split("\t")
        if len(f) > 3 and f[3].isdigit():
            yield f[0], int(f[3])


def case_ocr(ctx):
    """OCR of a scanned book: docmill (OCR jobs spread over the workers)
    against itself on one worker, and against the plain pipeline a user
    would script: every page rendered by `mutool draw` at the same 300 dpi
    and read by `tesseract` with the same options, `xargs -P<cores>` pages
    at a time, one thread each. The peer only recognises; docmill also
    indexes, and extracts the (empty) text layer first."""
    if not shutil.which("tesseract"):
        log("[8] ocr: skipped: tesseract is not installed")
        return {"title": "OCR", "skipped": "tesseract not installed"}
    pdf = ctx.work / "ocr" / "scanned-book.pdf"
    pages = scanned_book(ctx.corpus, pdf, ctx.args.ocr_pages)
    warm_cache([pdf])
    script = ('seq 1 "$2" | xargs -P"$3" -I{} sh -c \'mutool draw -q -r 300 -c gray -F pgm '
              '-o - "$0" {} | OMP_THREAD_LIMIT=1 tesseract stdin stdout --dpi 300 --psm 1 '
              '-l eng tsv >/dev/null 2>&1\' "$1"')
    peer = Cmd("xargs-tesseract", ["sh", "-c", script, "sh", pdf, pages, CORES])
    cmds = [ctx.docmill("docmill-ocr", [pdf], "--ocr", "auto"),
            ctx.docmill("docmill-ocr-w1", [pdf], "--ocr", "auto", workers=1),
            peer]
    log(f"[8] ocr: a {pages}-page scanned PDF, {ctx.rounds} rounds")
    r = interleave(cmds, ctx.rounds, ctx.logs)
    for v in r.values():
        v["pages_per_min"] = rate(pages, v["median_s"]) * 60
    d = r["docmill-ocr"]["median_s"]
    return {"title": f"a {pages}-page scanned PDF, OCR", "pages": pages, "results": r,
            "targets": {"all_workers_vs_one": ratio(r["docmill-ocr-w1"]["median_s"], d),
                        "docmill_vs_xargs_tesseract": ratio(r["xargs-tesseract"]["median_s"], d)}}


def case_memory(ctx):
    n = ctx.args.memory_docs
    lib = ctx.work / "many"
    log(f"[5] memory: one tiny PDF under {n} names")
    many_names(lib, n)
    # The supervisor's own peak over a whole run that catalogues and indexes
    # n documents (built-in engine: no child process per document).
    r1 = interleave([ctx.docmill("docmill-100k", [lib], "--pdf-engine", "builtin",
                                 sample=True)], 1, ctx.logs)["docmill-100k"]
    # The whole tree under a 2 GiB budget, on the mixed library (massive
    # file included): the heaviest workers here.
    mixed = ctx.work / "mixed"
    if not mixed.exists():
        case_mixed_prepare(ctx)
    log(f"[5] memory: process tree under --memory-budget {ctx.args.budget} (mixed library)")
    r2 = interleave([ctx.docmill("docmill-budget", [mixed], "--memory-budget", ctx.args.budget,
                                 *ctx.massive_args(), sample=True)], 1, ctx.logs)["docmill-budget"]
    sup_mb = r1["runs"][0].get("supervisor_peak_kb", 0) / 1024
    tree_mb = r2["runs"][0].get("tree_peak_kb", 0) / 1024
    budget_mb = parse_size(ctx.args.budget) / (1 << 20)
    return {"title": "memory", "docs": n, "results": {"docmill-100k": r1,
                                                       "docmill-budget": r2},
            "supervisor_peak_mb": sup_mb, "supervisor_seconds": r1["median_s"],
            "tree_peak_mb": tree_mb, "budget_mb": budget_mb,
            "targets": {"supervisor_mb_vs_64": sup_mb / 64,
                        "tree_peak_vs_budget": tree_mb / budget_mb}}


def case_mixed_prepare(ctx):
    """The corpus's normal PDFs (with --full: every PDF, broken and
    pathological ones included), every EPUB, and the massive PDF."""
    lib = ctx.work / "mixed"
    for sub in ("pdf", "epub"):
        (lib / sub).mkdir(parents=True, exist_ok=True)
    if ctx.args.full:
        pdfs = sorted(f for f in (ctx.corpus / "pdf").iterdir() if f.is_file())
    else:
        pdfs = [p for p, _ in normal_pdfs(ctx.corpus)]
    for f in pdfs:
        if not (lib / "pdf" / f.name).exists():
            link_or_copy(f, lib / "pdf" / f.name)
    for f in sorted((ctx.corpus / "epub").iterdir()):
        if f.is_file() and not (lib / "epub" / f.name).exists():
            link_or_copy(f, lib / "epub" / f.name)
    if not (lib / "pdf" / "massive.pdf").exists():
        link_or_copy(ctx.massive(), lib / "pdf" / "massive.pdf")


def parse_size(s):
    s = s.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s and s[-1] in mult:
        return float(s[:-1]) * mult[s[-1]]
    return float(s)


def case_scaling(ctx):
    if CORES < 12 and not ctx.args.scaling:
        log(f"[6] scaling: skipped: {CORES} cores (needs >= 12, or --scaling)")
        return {"title": "scaling", "skipped": f"{CORES} cores; needs >= 12 (or --scaling)"}
    files = normal_pdfs(ctx.corpus)
    copies = ctx.args.scaling_copies
    lib = ctx.work / f"scale-x{copies}"
    repeat_library(lib, files, copies)
    pages = sum(n for _, n in files) * copies
    out = {"title": "scaling", "pages": pages, "engines": {}}
    for engine in ("mupdf", "builtin"):
        counts = [1, 2, 4, 8, 12]
        log(f"[6] scaling/{engine}: {pages} pages at {counts} workers")
        cmds = [ctx.docmill(f"{engine}-w{w}", [lib], "--pdf-engine", engine, workers=w)
                for w in counts]
        r = interleave(cmds, ctx.rounds, ctx.logs)
        base = pages / r[f"{engine}-w1"]["median_s"]
        for w in counts:
            v = r[f"{engine}-w{w}"]
            v["pages_per_s"] = pages / v["median_s"]
            v["speedup"] = v["pages_per_s"] / base
            v["efficiency"] = v["speedup"] / w
        out["engines"][engine] = r
    out["targets"] = {"mupdf_w12_speedup": out["engines"]["mupdf"]["mupdf-w12"]["speedup"],
                      "builtin_w12_speedup": out["engines"]["builtin"]["builtin-w12"]["speedup"]}
    return out


# --------------------------------------------------------------------------
# report


def machine():
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / (1 << 20):.1f} GiB"
    except OSError:
        pass

    def ver(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return None

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"cores": CORES, "cpu": model, "ram": mem, "os": platform.platform(),
            "commit": commit + ("+dirty" if dirty else ""),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_at_start": os.getloadavg(),
            "docmill": ver([DOCMILL, "--version"]),
            "mutool": ver(["mutool", "-v"]), "pdftotext": ver(["pdftotext", "-v"])}


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def table(results, m, args):
    """A Markdown table (printed and written beside the JSON)."""
    L = [f"Machine: {m['cores']} cores, {m['cpu']}, {m['ram']} RAM; commit {m['commit']}; "
         f"{m['date']}; {args.rounds} rounds, interleaved; medians.", "",
         "| case | contender | median s | min–max s | CPU s | rate | docmill speed-up |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]

    def rows(case, r, unit, amount, ref):
        for k, v in r.items():
            med = v["median_s"]
            rt = amount / med if amount else None
            vs = ratio(v["median_s"], r[ref]["median_s"]) if ref in r and k != ref else None
            L.append(f"| {case} | {k} | {med:.2f} | {v['min_s']:.2f}–{v['max_s']:.2f} | "
                     f"{v['median_cpu_s']:.1f} | {fmt(rt * (60 if unit == 'pages/min' else 1) if rt else None, 0)} {unit} | "
                     f"{'' if vs is None else f'{vs:.2f}×'} |")

    if "throughput" in results:
        t = results["throughput"]
        for key, g in t["groups"].items():
            ref = {"mupdf": "docmill-mupdf", "poppler": "docmill-poppler",
                   "builtin": "docmill-builtin"}[key]
            rows(f"1 throughput ×{g['copies']} ({g['pages']} p)", g["results"], "pages/min",
                 g["pages"], ref)
        L.append(f"| 1 throughput | MuPDF in-process, 1 core (PyMuPDF, per CPU-second) | | | | "
                 f"{t['inproc_single_core_pages_per_s'] * 60:.0f} pages/min | |")
    if "tiny" in results:
        t = results["tiny"]
        rows(f"2 tiny ({t['docs']} docs)", t["results"], "docs/s", t["docs"], "docmill-auto")
    if "massive" in results:
        t = results["massive"]
        ref = "docmill-chunked" if "docmill-chunked" in t["results"] else "docmill-unchunked"
        rows(f"3 massive ({t['pages']} p)", t["results"], "pages/min", t["pages"], ref)
        if t.get("skipped"):
            L.append(f"| 3 massive | chunked | skipped: {t['skipped']} | | | | |")
    if "mixed" in results:
        t = results["mixed"]
        rows(f"4 mixed ({t['pdfs']} PDFs + {t['epubs']} EPUBs)", t["results"], "", None,
             "docmill-auto")
    if "library" in results:
        t = results["library"]
        rows("7 library", t["results"], "", None, "docmill-auto")
    if "ocr" in results:
        t = results["ocr"]
        if t.get("skipped"):
            L.append(f"| 8 ocr | skipped: {t['skipped']} | | | | | |")
        else:
            rows(f"8 ocr ({t['pages']} p)", t["results"], "pages/min", t["pages"], "docmill-ocr")
    if "memory" in results:
        t = results["memory"]
        L.append(f"| 5 memory | supervisor peak RSS, {t['docs']} docs "
                 f"({t['supervisor_seconds']:.0f} s run) | | | | {t['supervisor_peak_mb']:.1f} MB | |")
        L.append(f"| 5 memory | process tree peak RSS, --memory-budget {args.budget} | | | | "
                 f"{t['tree_peak_mb']:.0f} MB | |")
    if "scaling" in results:
        t = results["scaling"]
        if t.get("skipped"):
            L.append(f"| 6 scaling | skipped: {t['skipped']} | | | | | |")
        else:
            for eng, r in t["engines"].items():
                for k, v in r.items():
                    L.append(f"| 6 scaling ({t['pages']} p) | {k} | {v['median_s']:.2f} | "
                             f"{v['min_s']:.2f}–{v['max_s']:.2f} | {v['median_cpu_s']:.1f} | "
                             f"{v['pages_per_s']:.0f} pages/s | "
                             f"{v['speedup']:.2f}× speed-up, {v['efficiency']:.2f} eff. |")
    L += ["", "| target | ratio | goal | met |", "| --- | ---: | --- | --- |"]
    goals = {
        ("throughput", "mupdf_vs_2x_single_core"): (">=", 0.9),
        ("throughput", "auto_vs_2x_single_core"): (">=", 0.9),
        ("throughput", "auto_vs_xargs_mutool"): (">=", 1.0),
        ("library", "docmill_vs_recollindex"): (">=", 1.5),
        ("throughput", "mupdf_vs_xargs_mutool"): (">=", 1.0),
        ("throughput", "mupdf_vs_pymupdf_pool"): (">=", 1.0),
        ("throughput", "poppler_vs_xargs_pdftotext"): (">=", 1.0),
        ("throughput", "builtin_vs_2x_w1"): (">=", 0.95),
        ("tiny", "auto_vs_xargs_pdftotext"): (">=", 3.0),
        ("tiny", "builtin_vs_xargs_pdftotext"): (">=", 3.0),
        ("massive", "chunked_vs_unchunked"): (">=", 1.8),
        ("massive", "chunked_vs_xargs_mutool"): (">=", 1.0),
        ("massive", "unchunked_vs_xargs_mutool"): (">=", 1.0),
        ("memory", "supervisor_mb_vs_64"): ("<=", 1.0),
        ("memory", "tree_peak_vs_budget"): ("<=", 1.0),
        ("scaling", "mupdf_w12_speedup"): (">=", 10.0),
        ("scaling", "builtin_w12_speedup"): (">=", 8.0),
        ("ocr", "all_workers_vs_one"): (">=", 1.8),
        ("ocr", "docmill_vs_xargs_tesseract"): (">=", 1.0),
    }
    for case, r in results.items():
        for k, v in (r.get("targets") or {}).items():
            op, goal = goals.get((case, k), (">=", 1.0))
            met = None if v is None else (v >= goal if op == ">=" else v <= goal)
            L.append(f"| {case}: {k} | {fmt(v)} | {op} {goal} | "
                     f"{'—' if met is None else ('yes' if met else 'NO')} |")
    eff = results.get("throughput", {}).get("cpu_efficiency")
    if eff:
        L += ["", "Pages per CPU-second (whole process tree), docmill ÷ peer: "
              + "; ".join(f"{k} {fmt(v)}" for k, v in eff.items())]
    return "\n".join(L) + "\n"


CASES = {"1": ("throughput", case_throughput), "2": ("tiny", case_tiny),
         "3": ("massive", case_massive), "4": ("mixed", case_mixed),
         "5": ("memory", case_memory), "6": ("scaling", case_scaling),
         "7": ("library", case_library), "8": ("ocr", case_ocr)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="1,2,3,4,5,6,7,8",
                    help="comma-separated case numbers or names (default: all; 6 runs only "
                         "with >= 12 cores or --scaling)")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes: a smoke run of every case")
    ap.add_argument("--full", action="store_true",
                    help="the issue's full sizes and every peer in every case (corpus x7, "
                         "a 12,000-page massive PDF, docmill's default engine on the tiny "
                         "PDFs): roughly an hour on 2 cores")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    ap.add_argument("--copies", type=int, help="case 1, MuPDF group: corpus copies (default 2; "
                                                "--full 7, ~20,000 pages)")
    ap.add_argument("--copies-poppler", type=int, help="case 1, Poppler group (default 1; --full 7)")
    ap.add_argument("--copies-builtin", type=int, help="case 1, built-in group (default 1; --full 7)")
    ap.add_argument("--tiny", type=int, help="case 2: number of one-page PDFs (default 5000)")
    ap.add_argument("--massive-pages", type=int, help="cases 3-5: pages of the massive PDF "
                                                       "(default 4000; --full 12000)")
    ap.add_argument("--memory-docs", type=int, help="case 5: catalogued documents "
                                                     "(default 100000)")
    ap.add_argument("--budget", default="2G", help="case 5: --memory-budget (default 2G)")
    ap.add_argument("--ocr-pages", type=int, help="case 8: pages of the scanned book "
                                                  "(default 45; --quick 9)")
    ap.add_argument("--scaling", action="store_true", help="run case 6 on any machine")
    ap.add_argument("--scaling-copies", type=int, default=4, help="case 6: corpus copies")
    ap.add_argument("--python", default=sys.executable,
                    help="a Python with pymupdf (scripts/bench passes its venv)")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    ap.add_argument("--keep", action="store_true", help="keep the generated libraries")
    a = ap.parse_args()
    if a.rounds < 3:
        ap.error("--rounds must be at least 3 (A B A B A B)")
    if a.quick and a.full:
        ap.error("--quick or --full, not both")
    # sizes: quick / default (fits 15 minutes on 2 cores) / full (the issue's)
    pick = (lambda quick, default, full: quick if a.quick else full if a.full else default)
    a.copies = a.copies or pick(1, 2, 7)
    a.copies_poppler = a.copies_poppler or pick(1, 1, 7)
    a.copies_builtin = a.copies_builtin or pick(1, 1, 7)
    a.tiny = a.tiny or pick(500, 5000, 5000)
    a.massive_pages = a.massive_pages or pick(2000, 4000, 12000)
    a.memory_docs = a.memory_docs or pick(10000, 100000, 100000)
    a.ocr_pages = a.ocr_pages or pick(9, 45, 45)
    names = {v[0]: k for k, v in CASES.items()}
    wanted = [names.get(c.strip(), c.strip()) for c in a.cases.split(",") if c.strip()]
    for c in wanted:
        if c not in CASES:
            ap.error(f"unknown case {c!r}")
    if a.scaling and "6" not in wanted:
        wanted.append("6")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=out))
    m = machine()
    log(f"bench: {m['cores']} cores, {m['cpu']}, {m['ram']}; commit {m['commit']}; "
        f"work in {work.relative_to(ROOT) if work.is_relative_to(ROOT) else work}")
    t0 = time.perf_counter()
    results = {}
    ctx = Ctx(a, work, a.python)
    try:
        for c in sorted(wanted):
            name, fn = CASES[c]
            c0 = time.perf_counter()
            results[name] = fn(ctx)
            results[name]["case_seconds"] = time.perf_counter() - c0
            log(f"    ({name}: {results[name]['case_seconds']:.0f} s)")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t0
    doc = {"machine": m, "options": {k: v for k, v in vars(a).items() if k != "python"},
           "total_seconds": total, "cases": results}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    md = table(results, m, a)
    for p in (out / f"bench-{stamp}.json", out / "latest.json"):
        p.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (out / "latest.md").write_text(md)
    print(md)
    log(f"bench: {total:.0f} s in all; JSON in {out.name}/latest.json "
        f"(and bench-{stamp}.json), table in {out.name}/latest.md")


if __name__ == "__main__":
    main()
