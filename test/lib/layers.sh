# test/lib/layers.sh: cycles DIR, the file-level call graph of the objects
# in DIR (nm: which functions and variables each defines and which it uses
# from the others).  Sourced by app_layout.sh and ext_layout.sh.
# cycles DIR: prints the graph, a line per file and the files it uses, then
# each circle (files that use each other, directly or round a longer
# circle); fails on one
cycles() {
	/usr/bin/python3 - "$1" <<-'PY'
	import glob, os, subprocess, sys
	defs, uses = {}, {}
	for o in sorted(glob.glob(os.path.join(sys.argv[1], "*.o"))):
	    name = os.path.basename(o)[:-2] + ".c"
	    defs[name], uses[name] = set(), set()
	    for line in subprocess.run(["nm", "-P", o], capture_output=True, text=True,
	                               check=True).stdout.splitlines():
	        sym, kind = (line.split() + ["", ""])[:2]
	        if kind in ("T", "D", "B", "R", "C"):
	            defs[name].add(sym)
	        elif kind == "U":
	            uses[name].add(sym)
	owner = {s: n for n, ss in defs.items() for s in ss}
	edges = {n: sorted({owner[s] for s in uses[n] if s in owner and owner[s] != n}) for n in defs}
	for n in sorted(edges):
	    print("  %-20s -> %s" % (n, " ".join(edges[n]) or "(nothing)"))
	# Tarjan's strongly connected components: any of more than one file is a circle.
	index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
	def visit(v):
	    index[v] = low[v] = counter[0]; counter[0] += 1
	    stack.append(v); on.add(v)
	    for w in edges[v]:
	        if w not in index:
	            visit(w); low[v] = min(low[v], low[w])
	        elif w in on:
	            low[v] = min(low[v], index[w])
	    if low[v] == index[v]:
	        comp = []
	        while True:
	            w = stack.pop(); on.discard(w); comp.append(w)
	            if w == v:
	                break
	        if len(comp) > 1:
	            found.append(sorted(comp))
	sys.setrecursionlimit(10000)
	for v in sorted(edges):
	    if v not in index:
	        visit(v)
	for comp in found:
	    print("  circle: " + " <-> ".join(comp))
	sys.exit(1 if found else 0)
	PY
}
