"""An independent check of the HBase emulator with happybase, the Python HBase Thrift1
client: tables, versioned puts, deletes with timestamps, delete markers masking older
puts (also ones written later) until a major compaction, scans (also key-only ones
through the filter language), checkAndPut and
atomicIncrement. Usage: happybase_scenario.py PORT [buffered|framed] [binary|compact].
Exits 1 on the first mismatch batch, printing every check.
"""

import os
import sys
import time

import happybase
from Hbase_thrift import AlreadyExists, IllegalArgument, IOError, Mutation
from thriftpy2.thrift import TApplicationException

PORT = int(sys.argv[1])
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "buffered"
PROTOCOL = sys.argv[3] if len(sys.argv) > 3 else "binary"
failures = []


def check(name, got, want):
    ok = got == want
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": got {got!r}, want {want!r}"))
    if not ok:
        failures.append(name)


def raises(name, exc, fn):
    try:
        fn()
    except exc as e:
        print(f"ok   {name} ({type(e).__name__})")
        return
    except Exception as e:  # noqa: BLE001 - report the wrong exception type
        print(f"FAIL {name}: raised {type(e).__name__}: {e!r}")
        failures.append(name)
        return
    print(f"FAIL {name}: did not raise {exc.__name__}")
    failures.append(name)


conn = happybase.Connection("127.0.0.1", PORT, transport=TRANSPORT, protocol=PROTOCOL)
client = conn.client
name = f"scenario_{os.getpid()}_{TRANSPORT}_{PROTOCOL}".encode()

# tables
conn.create_table(name, {"a": dict(max_versions=3), "b": dict(max_versions=1)})
check("table listed", name in conn.tables(), True)
raises("create twice", AlreadyExists, lambda: conn.create_table(name, {"a": dict()}))
check("enabled", conn.is_table_enabled(name), True)
t = conn.table(name)
fams = t.families()
check("families", sorted(fams), [b"a", b"b"])
check("max versions", fams[b"a"]["max_versions"], 3)

# versioned puts: newest first, capped at max versions, time range exclusive
for ts, v in [(10, b"v1"), (20, b"v2"), (30, b"v3"), (40, b"v4")]:
    t.put(b"r1", {b"a:q": v}, timestamp=ts)
check("newest", t.row(b"r1"), {b"a:q": b"v4"})
check("versions capped", t.cells(b"r1", b"a:q", include_timestamp=True), [(b"v4", 40), (b"v3", 30), (b"v2", 20)])
check("row at ts (exclusive)", t.row(b"r1", timestamp=30, include_timestamp=True), {b"a:q": (b"v2", 20)})
check("cells at ts", t.cells(b"r1", b"a:q", versions=2, timestamp=35), [b"v3", b"v2"])
t.put(b"r1", {b"a:q": b"v4b"}, timestamp=40)
check("same ts replaces", t.cells(b"r1", b"a:q", include_timestamp=True)[0], (b"v4b", 40))
t.put(b"r1", {b"b:x": b"1"}, timestamp=1)
t.put(b"r1", {b"b:x": b"2"}, timestamp=2)
check("family b keeps one version", t.cells(b"r1", b"b:x"), [b"2"])
check("row with columns", t.row(b"r1", columns=[b"b"]), {b"b:x": b"2"})
check("family with colon is the empty qualifier", t.row(b"r1", columns=[b"a:"]), {})
check("absent row", t.row(b"nope"), {})

# deletes with timestamps mask every version at or below them
t.delete(b"r1", columns=[b"a:q"], timestamp=30)
check("delete at 30 keeps 40", t.cells(b"r1", b"a:q", include_timestamp=True), [(b"v4b", 40)])
t.put(b"r1", {b"a:q": b"late"}, timestamp=25)
check("put below marker written later stays hidden", t.cells(b"r1", b"a:q"), [b"v4b"])
client.deleteAllTs(name, b"r1", b"a:q", 40, {})
check("deleteAllTs 40 hides all", t.row(b"r1", columns=[b"a"]), {})
t.put(b"r1", {b"a:q": b"old"}, timestamp=35)
check("older put after delete hidden", t.row(b"r1", columns=[b"a"]), {})
conn.compact_table(name)
check("minor compaction keeps markers", t.row(b"r1", columns=[b"a"]), {})
conn.compact_table(name, major=True)
check("major compaction purged masked cells", t.row(b"r1", columns=[b"a"]), {})
t.put(b"r1", {b"a:q": b"again"}, timestamp=35)
check("after major compaction old ts visible", t.row(b"r1", columns=[b"a"], include_timestamp=True), {b"a:q": (b"again", 35)})
t.put(b"r2", {b"a:q": b"x"})
t.delete(b"r2")
check("deleted row", t.row(b"r2"), {})
t.put(b"r2", {b"a:q": b"y"}, timestamp=1000)
check("delete without ts masks later old puts", t.row(b"r2"), {})
time.sleep(0.005)  # a put in the same millisecond as the delete stays masked, as in HBase
t.put(b"r2", {b"a:q": b"z"})
check("put without ts after delete visible", t.row(b"r2"), {b"a:q": b"z"})
client.deleteAllRowTs(name, b"r2", 5, {})
check("row delete below the cell keeps it", t.row(b"r2"), {b"a:q": b"z"})

# scans: sorted, start inclusive, stop exclusive, prefix, reversed, columns, paging
for i in range(10):
    t.put(f"row-{i:02}".encode(), {b"a:q": str(i).encode()})
t.put(b"row-05", {b"b:x": b"five"})
t.put(b"other-1", {b"a:q": b"o"})
keys = lambda it: [k for k, _ in it]  # noqa: E731
check("scan start/stop", keys(t.scan(row_start=b"row-03", row_stop=b"row-06")), [b"row-03", b"row-04", b"row-05"])
check("scan prefix", len(keys(t.scan(row_prefix=b"row-0"))), 10)
check("scan all sorted", keys(t.scan(batch_size=3))[:3], [b"other-1", b"r1", b"r2"])
check("scan columns", keys(t.scan(columns=[b"b"])), [b"r1", b"row-05"])
check("scan reversed", keys(t.scan(row_start=b"row-05", row_stop=b"row-02", reverse=True)), [b"row-05", b"row-04", b"row-03"])
check("scan limit", keys(t.scan(row_start=b"row", limit=2)), [b"row-00", b"row-01"])
KEY_ONLY = b"FirstKeyOnlyFilter() AND KeyOnlyFilter()"
check("scan key-only filter", list(t.scan(row_start=b"row-04", row_stop=b"row-06", filter=KEY_ONLY)), [(b"row-04", {b"a:q": b""}), (b"row-05", {b"a:q": b""})])
check("scan KeyOnlyFilter lenAsVal", list(t.scan(row_prefix=b"row-05", filter=b"KeyOnlyFilter(true)")), [(b"row-05", {b"a:q": b"\x00\x00\x00\x01", b"b:x": b"\x00\x00\x00\x04"})])
check("scan first key of selected family", list(t.scan(row_prefix=b"row-05", columns=[b"b"], filter=b"FirstKeyOnlyFilter()")), [(b"row-05", {b"b:x": b"five"})])
raises("scan unknown filter", TApplicationException, lambda: list(t.scan(filter=b"NoSuchFilter()")))
raises("scan filter not emulated", IOError, lambda: list(t.scan(filter=b"PrefixFilter('row')")))
sid = client.scannerOpenWithPrefix(name, b"row-0", [b"a:q"], {})
got = [r.row for r in client.scannerGetList(sid, 100)]
check("scannerOpenWithPrefix", got, [f"row-{i:02}".encode() for i in range(10)])
check("scanner exhausted", client.scannerGet(sid), [])
client.scannerClose(sid)
raises("closed scanner", IllegalArgument, lambda: client.scannerGet(sid))
sid = client.scannerOpenWithStop(name, b"row-08", b"", None, {})
check("scannerOpenWithStop empty stop", [r.row for r in client.scannerGetList(sid, 10)], [b"row-08", b"row-09"])
client.scannerClose(sid)

# checkAndPut and atomicIncrement
cp = lambda expect, value: client.checkAndPut(name, b"cp", b"a:c", expect, Mutation(column=b"a:c", value=value), {})  # noqa: E731
check("checkAndPut on absent", cp(b"", b"1"), True)
check("checkAndPut absent again", cp(b"", b"x"), False)
check("checkAndPut match", cp(b"1", b"2"), True)
check("checkAndPut mismatch", cp(b"1", b"3"), False)
check("checkAndPut value", t.row(b"cp"), {b"a:c": b"2"})
check("increment", t.counter_inc(b"ctr", b"a:n"), 1)
check("increment by 5", t.counter_inc(b"ctr", b"a:n", 5), 6)
check("counter get", t.counter_get(b"ctr", b"a:n"), 6)
check("decrement", t.counter_dec(b"ctr", b"a:n"), 5)
raises("increment non-counter", IOError, lambda: t.counter_inc(b"cp", b"a:c"))

# errors
raises("unknown table", IOError, lambda: conn.table(b"no_such_table").row(b"x"))
raises("unknown family put", IOError, lambda: t.put(b"r9", {b"zz:q": b"v"}))
raises("unknown family read", IOError, lambda: t.row(b"r1", columns=[b"zz"]))
raises("delete enabled table", IOError, lambda: conn.delete_table(name))
conn.disable_table(name)
check("disabled", conn.is_table_enabled(name), False)
raises("read disabled table", IOError, lambda: t.row(b"r1"))
conn.delete_table(name)
check("table gone", name in conn.tables(), False)
conn.close()

if failures:
    print(f"{len(failures)} check(s) failed: {failures}")
    sys.exit(1)
print("all checks passed")
