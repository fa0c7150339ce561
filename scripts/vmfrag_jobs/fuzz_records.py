"""What a fuzzing run leaves, turned into the results layer's formats (reports/README.md):

  libFuzzer's output   -> vmfrag-fuzz-stats (final figures, and a history from its status lines)
  a crash artifact     -> vmfrag-bug (kind and title from the report libFuzzer or a sanitizer printed,
                          stack = the report's frames with the fuzzing/sanitizer runtime dropped)
  a hunt finding       -> vmfrag-finding (from the minimised trace's `#` block, written by
                          harness/hunt finding_comment, and its `vmfrag replay --json`)

Pure functions of text and already-parsed documents; fuzz_job.py runs the tools and writes the files.
Bug dedup signature: results.tables.bug_signature (kind + the top three frames, else the masked title),
the same one the report uses, so a bug is one bug in both.
"""
import hashlib
import re

from .results import schemas, tables

# libFuzzer status lines, plain ("#4096\tpulse  cov: 41 ft: 77 corp: 9/1kb ... exec/s: 2048 rss: 31Mb")
# and -fork ("#12345: cov: 41 ft: 77 corp: 9 exec/s 100 oom/timeout/crash: 0/0/0 time: 5s job: 2").
STATUS_LINE = re.compile(r"^#(\d+):?\s+(?:(\w+)\s+)?cov: (\d+) ft: (\d+) corp: (\d+)")
EXEC_RATE = re.compile(r"exec/s:? (\d+)")
STAT_LINE = re.compile(r"^stat::(\w+):\s+(\S+)")
HUNT_LINE = re.compile(r"vmfrag-hunt: best (\S+) kind (\S+) execs (\d+) ops (\d+) cpu (\S+)")
ARTIFACT_LINE = re.compile(r"Test unit written to (\S+)")
# "#4 0x7f in func file:line" or, for a frame with no symbol, "#3 0x7f  (/lib/libc.so.6+0x3c04f)"
FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+(?: in (.*)|\s+(\(.*))$")
# Frames of the fuzzing and sanitizer runtimes, libc's abort path and our check machinery: not where a bug is.
RUNTIME_FRAME = re.compile(r"^(__sanitizer|__asan|__ubsan|__lsan|__interceptor|__libc|__GI_|fuzzer::|raise|abort\b|"
                           r"gsignal|pthread_kill|__pthread|vmfrag::detail::check_failed|main\b|_start\b|\()")


def parse_status(line):
    """A libFuzzer status line as {execs, event, cov, features, corpus_size, exec_per_sec}, or None."""
    m = STATUS_LINE.match(line)
    if not m:
        return None
    rate = EXEC_RATE.search(line)
    return {"execs": int(m.group(1)), "event": m.group(2), "cov": int(m.group(3)), "features": int(m.group(4)),
            "corpus_size": int(m.group(5)), "exec_per_sec": int(rate.group(1)) if rate else None}


def parse_final_stats(text):
    """libFuzzer's -print_final_stats lines (stat::name: value)."""
    stats = {}
    for line in text.splitlines():
        m = STAT_LINE.match(line)
        if m:
            value = m.group(2)
            stats[m.group(1)] = float(value) if "." in value else int(value)
    return stats


def parse_hunt_progress(text):
    """fuzz_frag_hunt's `vmfrag-hunt: best ...` lines (harness/hunt HuntProgress), in order."""
    out = []
    for line in text.splitlines():
        m = HUNT_LINE.search(line)
        if m:
            out.append({"best": float(m.group(1)), "kind": m.group(2), "execs": int(m.group(3)),
                        "ops": int(m.group(4)), "cpu": float(m.group(5))})
    return out


def fuzz_stats(target, wall_seconds, history, final_stats, corpus_size, findings, bugs, jobs, provenance, **extra):
    """The vmfrag-fuzz-stats document. history: [{seconds, execs, features, corpus_size}] from the
    status lines, timestamped as they arrived; execs prefer libFuzzer's final count."""
    last = history[-1] if history else {}
    execs = final_stats.get("number_of_executed_units") or last.get("execs") or 0
    rate = final_stats.get("average_exec_per_sec")
    if rate is None:
        rate = execs / wall_seconds if wall_seconds > 0 else 0.0
    doc = {"format": schemas.FUZZ_STATS, "version": 1, "target": target, "seconds": round(wall_seconds, 3),
           "execs": int(execs), "execs_per_second": rate, "corpus_size": corpus_size,
           "features": last.get("features"), "findings": findings, "bugs": bugs, "jobs": jobs,
           "history": [{"seconds": h["seconds"], "execs": h["execs"], "features": h["features"],
                        "corpus_size": h["corpus_size"]} for h in history],
           "provenance": provenance}
    doc.update(extra)
    return doc


# ------------------------------------------------------------------------------------------------ bugs

def crash_reports(log_text):
    """{artifact path: the report text before it} from libFuzzer's "Test unit written to PATH" lines."""
    reports, start = {}, 0
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        m = ARTIFACT_LINE.search(line)
        if m:
            reports[m.group(1)] = "\n".join(lines[start:i + 1])
            start = i + 1
    return reports


def stack_frames(report):
    """The first stack of a report, top first, without runtime frames (all of it if nothing is left)."""
    frames, seen_frames = [], False
    for line in report.splitlines():
        m = FRAME.match(line)
        if m:
            seen_frames = True
            frames.append(line.strip())
        elif seen_frames and frames:
            break
    kept = [f for f in frames if not RUNTIME_FRAME.match(_frame_text(f))]
    return kept or frames


def _frame_text(frame):
    m = FRAME.match(frame)
    return m.group(1) or m.group(2)


def _frame_name(frame):
    """'#0 0x55 in vmfrag::FreeTree::erase(unsigned long) a/b.cpp:1:2' -> 'FreeTree::erase'."""
    text = _frame_text(frame)
    name = text.split("(")[0].split(" ")[0]
    return name.removeprefix("vmfrag::")


def classify(report):
    """(kind, title) of a crash report: a sanitizer's error, a vmfrag check that failed (fuzz_ops's
    comparison with the reference, an invariant), a timeout, an out-of-memory, or a plain crash."""
    lines = report.splitlines()
    stack = stack_frames(report)
    where = f" in {_frame_name(stack[0])}" if stack else ""

    def first(pattern):
        rx = re.compile(pattern)
        return next((m for m in map(rx.search, lines) if m), None)

    if m := first(r"ERROR: libFuzzer: timeout after (\d+) seconds"):
        return "timeout", f"timeout after {m.group(1)} s{where}"
    if m := first(r"ERROR: libFuzzer: out-of-memory \(([^)]*)\)"):
        return "oom", f"out-of-memory ({m.group(1)})"
    if m := first(r"vmfrag check failed: (.*)$"):
        what = m.group(1)
        problem = re.sub(r"^.*?fuzz_ops: op \d+: ", "", what)
        if problem != what:  # fuzz_ops: the allocator disagreed with the reference, or a check failed
            if problem.startswith(("check()", "reference validate()", "leak:", "release at the end")):
                kind = "invariant-violation"
            elif re.search(r": accepted \(|not counted as misuse|changed the allocator's state", problem):
                kind = "misuse-unreported"
            else:
                kind = "divergence"
            return kind, m.group(1)[m.group(1).find("fuzz_ops:"):][:200]
        return "invariant-violation", what[:200]
    if m := first(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer): ([\w-]+)"):
        return "sanitizer", f"{m.group(2)}{where}" if m.group(1) != "LeakSanitizer" else "memory leak" + where
    if m := first(r"runtime error: (.*)$"):
        return "sanitizer", f"runtime error: {m.group(1)}"[:200]
    if m := first(r"ERROR: libFuzzer: ([\w -]+)"):
        return "crash", f"{m.group(1).strip()}{where}"
    return "crash", f"crash{where}"


def bug_record(target, report, reproducer, command, found_at, provenance, excerpt_lines=12):
    """A vmfrag-bug document (its id is derived from the dedup signature)."""
    kind, title = classify(report)
    stack = stack_frames(report)
    signature = tables.bug_signature(kind, stack, title)
    bug_id = f"{target}-{kind}-{hashlib.sha1(signature.encode()).hexdigest()[:10]}"
    error = [ln for ln in report.splitlines() if "ERROR:" in ln or "runtime error" in ln or "check failed" in ln]
    return {"format": schemas.BUG, "version": 1, "id": bug_id, "kind": kind, "title": title, "signature": signature,
            "target": target, "reproducer": reproducer, "command": command, "stack": stack[:20],
            "log_excerpt": "\n".join(error[:excerpt_lines]) or None, "found_at": found_at,
            "provenance": provenance}


# -------------------------------------------------------------------------------------------- findings

FINDING_LINE = re.compile(r"^# finding: (\S+) at op (\d+)")
# Virtual findings: "peak live need P pages (guard and failing request of N included) / region R pages";
# physical ones (harness/hunt/phys_hunt.h): "peak live physical pages P (the failing request's block of N
# included) / physical memory R pages".
SEVERITY_LINE = re.compile(r"^# severity (\S+) = peak live (?:need (\d+) pages|physical pages (\d+)) "
                           r"\((?:guard and failing request|the failing request's block) of (\d+) included\) / "
                           r"(region|physical memory) (\d+) pages")
BUDDY_LINE = re.compile(r"^# buddy free blocks by order at the failure:((?: \d+)+)$")
FLOOR_LINE = re.compile(r"^# first-fit floor ln2/H_(\d+) = (\S+), distance")
NO_FLOOR_LINE = re.compile(r"^# first-fit floor not applied: (.*)$")
SIGNATURE_LINE = re.compile(r"^# signature (\S+)")
OP_LINE = re.compile(r"^(a|f|p|k|m|h|v|u)( |$)")


def count_ops(trace_text):
    return sum(1 for line in trace_text.splitlines() if OP_LINE.match(line))


def finding_comment(trace_text):
    """The finding block harness/hunt's finding_comment() wrote into a trace, parsed; None without one."""
    d = {}
    for line in trace_text.splitlines():
        if m := FINDING_LINE.match(line):
            d["kind"], d["op"] = m.group(1), int(m.group(2))
        elif m := SEVERITY_LINE.match(line):
            d.update(severity=float(m.group(1)), peak_pages=int(m.group(2) or m.group(3)), need_pages=int(m.group(4)))
            d["region_pages" if m.group(5) == "region" else "physical_pages"] = int(m.group(6))
        elif m := BUDDY_LINE.match(line):
            d["buddy_free_blocks"] = [int(n) for n in m.group(1).split()]
        elif m := FLOOR_LINE.match(line):
            d["floor"] = {"value": float(m.group(2)), "applies": True,
                          "reason": f"eager free, page alignment, vmalloc/vfree only, needs <= {m.group(1)} pages: "
                                    f"ln 2 / H_{m.group(1)}"}
        elif m := NO_FLOOR_LINE.match(line):
            d["floor"] = {"value": None, "applies": False, "reason": m.group(1)}
        elif m := SIGNATURE_LINE.match(line):
            d["signature"] = m.group(1)
    return d if {"kind", "op", "severity", "signature"} <= d.keys() else None


def physical_map(comment):
    """The report's physical map (free blocks per buddy order at the failure) of a physical finding's
    parsed comment, or None for a virtual one. failed_order: the order of the failing block."""
    blocks = comment.get("buddy_free_blocks")
    if blocks is None or "physical_pages" not in comment:
        return None
    return {"page_bytes": 4096, "total_pages": comment["physical_pages"], "free_blocks_by_order": blocks,
            "failed_order": max(comment.get("need_pages", 1), 1).bit_length() - 1}


def finding_id(target, signature):
    return f"{target}-" + re.sub(r"[^A-Za-z0-9]+", "-", signature).strip("-")


def finding_record(target, comment, replay, trace_name, ops_before, ops_after, found_at, provenance,
                   physical_map=None):
    """A vmfrag-finding document from a minimised trace's parsed finding block and its replay JSON
    (the failure at the finding's op gives the request and the address-space map)."""
    failure = next((f for f in replay.get("failures") or [] if f.get("op") == comment["op"]), None)
    if failure is None and replay.get("failures"):
        failure = replay["failures"][-1]
    failure = failure or {}
    page = 4096
    doc = {"format": schemas.FINDING, "version": 1, "id": finding_id(target, comment["signature"]),
           "signature": comment["signature"], "kind": comment["kind"], "target": target, "trace": trace_name,
           "request": {"size": failure.get("size", 0), "op": comment["op"], "align": failure.get("align"),
                       "need_bytes": comment.get("need_pages", 0) * page},
           "severity": comment["severity"], "floor": comment.get("floor"),
           "ops_before_minimisation": ops_before, "ops_after_minimisation": ops_after,
           "region_bytes": replay.get("region_bytes", comment.get("region_pages", 0) * page),
           "guard_pages": replay.get("guard_pages", 0), "map": failure.get("map"),
           "physical_map": physical_map,
           "peak_live_need_bytes": comment.get("peak_pages", 0) * page,
           "replay_command": f"scripts/vmfrag replay {trace_name} --json",
           "found_at": found_at, "provenance": provenance}
    return doc
