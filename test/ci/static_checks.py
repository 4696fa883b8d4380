"""static_checks.py: checks of the container, CI and packaging files that
need no Docker engine, for test/static_checks.sh.

    /usr/bin/python3 test/ci/static_checks.py [--root DIR] GROUP...
        GROUP: docker compose workflows meta kubernetes (default: all); DIR: the tree
        to check instead of this repository

Prints one line per check, tab-separated: "ok<TAB>what", "fail<TAB>what<TAB>why"
or "skip<TAB>what<TAB>why"; test/static_checks.sh counts them.

docker     hadolint-style rules for docker/Dockerfile.*, written out here
           because hadolint is not a Debian package: base images pinned to
           a version, no ADD (and never of a URL), no secret-looking ENV or
           ARG, apt-get with update, -y, --no-install-recommends and its
           lists removed in the same RUN, no apt-get upgrade, no sudo,
           absolute WORKDIR, COPY --from of a known stage, COPY sources that
           exist, exec-form CMD/ENTRYPOINT/HEALTHCHECK, a HEALTHCHECK, a
           non-root USER in the app image, a deny-all .dockerignore.
compose    docker/docker-compose.yml parses; every long-running service has
           a health check; published ports only on 127.0.0.1 and only
           Vault's and the app's; images pinned; HashiCorp Vault 1.15;
           secret-looking environment values only from ${VARIABLES}; build
           contexts and Dockerfiles exist; one-shot services finish before
           what depends on them.
workflows  .github/workflows/*.yml parse; every `make TARGET` they run is a
           target of the Makefile; the PostgreSQL matrix is the versions
           test/ci/matrix.sh proves, run by make test-matrix; every
           job has a time limit; actions pinned to a version; read-only
           default permissions; a HashiCorp Vault 1.15 container for the
           integration job.
kubernetes docker/kubernetes.yaml parses; every container runs as non-root
           without privilege escalation or capabilities, on a read-only
           root file system, with cpu and memory requests and limits and
           (long-running) readiness and liveness probes; images pinned; no
           host namespaces; secret-looking values only from Secrets, never
           literals, and pg_vault's token file on a memory-backed volume a
           Vault Agent container writes; a default-deny NetworkPolicy and
           an egress policy with named destinations and ports for each
           workload.
meta       META.json is valid PGXN metadata whose versions equal
           pg_vault.control's default_version; the provided file exists;
           CHANGELOG.md has the version.
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)


def emit(status, what, why=""):
    print("\t".join([status, what, why.replace("\n", " ")]))


def check(what, problems):
    """problems: a list of strings; none means the check passed."""
    if problems:
        emit("fail", what, "; ".join(problems[:6]) + (" (and %d more)" % (len(problems) - 6) if len(problems) > 6 else ""))
    else:
        emit("ok", what)


def load_yaml():
    try:
        import yaml  # noqa: F401  (python3-yaml)
        return yaml
    except ImportError:
        return None


# ---------------------------------------------------------------- docker ----

SECRET_NAME = re.compile(r"(?i)(pass|secret|token|credential|private|api_?key|access_?key)")
SAFE_SECRET_SUFFIX = re.compile(r"(?i)_(file|path|dir|mount|addr|url)$")


def dockerfile_instructions(path):
    """(line number, INSTRUCTION, arguments) with continuations joined."""
    out, buf, start = [], "", 0
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if buf and line.lstrip().startswith("#"):
                continue
            if not buf:
                start = n
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            parts = buf.strip().split(None, 1)
            out.append((start, parts[0].upper(), parts[1] if len(parts) > 1 else ""))
            buf = ""
    return out


def is_exec_form(args):
    try:
        v = json.loads(args)
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    except ValueError:
        return False


def dockerignore_allows(ignore_lines, path):
    """Docker's rules, simplified: last matching pattern wins, ! re-includes."""
    import fnmatch
    allowed = True
    for pat in ignore_lines:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        if p.startswith("**/"):
            hit = fnmatch.fnmatch(path, p[3:]) or fnmatch.fnmatch(path, p) or \
                fnmatch.fnmatch(os.path.basename(path), p[3:])
        else:
            hit = fnmatch.fnmatch(path, p) or path.startswith(p + "/")
        if hit:
            allowed = neg
    return allowed


def check_dockerfile(path):
    name = os.path.basename(path)
    ins = dockerfile_instructions(path)
    stages, stage_starts = [], []
    pinned, adds, secrets, apt, workdir, copyfrom, copysrc, execform = ([] for _ in range(8))
    users = {}      # stage index -> last USER
    health = {}     # stage index -> has HEALTHCHECK
    stage = -1
    ignore_path = path + ".dockerignore"
    ignore = []
    if os.path.exists(ignore_path):
        with open(ignore_path, encoding="utf-8") as f:
            ignore = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]

    for n, inst, args in ins:
        where = "%s:%d" % (name, n)
        if inst == "FROM":
            stage += 1
            words = [w for w in args.split() if not w.startswith("--")]
            image = words[0]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            if image in stages:
                pass    # FROM an earlier stage
            elif "@sha256:" in image:
                pass
            else:
                tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else None
                if tag is None:
                    pinned.append("%s: %s has no tag" % (where, image))
                elif tag == "latest" or not re.search(r"\d+\.\d+", tag):
                    pinned.append("%s: %s is not pinned to a version (x.y)" % (where, image))
                elif "$" in image:
                    pinned.append("%s: %s is set by a build argument" % (where, image))
            stages.append(alias or "#%d" % stage)
            stage_starts.append(n)
            users[stage] = None
            health[stage] = False
        elif inst == "ADD":
            adds.append("%s: ADD %s (use COPY; fetch URLs with a checked download)" % (where, args)
                        if not re.search(r"https?://", args) else "%s: ADD of a URL" % where)
        elif inst in ("ENV", "ARG"):
            # ENV a=b c=d, ENV a b, ARG a[=b]
            if inst == "ENV" and "=" not in args.split(None, 1)[0]:
                names = [args.split(None, 1)[0]]
            else:
                names = [t.split("=", 1)[0] for t in shlex.split(args)]
            for var in names:
                if SECRET_NAME.search(var) and not SAFE_SECRET_SUFFIX.search(var):
                    secrets.append("%s: %s %s (secrets go in at run time, as files)" % (where, inst, var))
        elif inst == "RUN":
            if re.search(r"\bsudo\b", args):
                apt.append("%s: sudo" % where)
            if re.search(r"apt-get\s+(dist-)?upgrade", args):
                apt.append("%s: apt-get upgrade (pin the base image instead)" % where)
            if re.search(r"\bapt-get\s+(-\S+\s+)*install\b", args):
                if "apt-get update" not in args:
                    apt.append("%s: apt-get install without apt-get update in the same RUN" % where)
                if not re.search(r"\s(-y|--yes|-qq?y|--assume-yes)\b", args):
                    apt.append("%s: apt-get install without -y" % where)
                if "--no-install-recommends" not in args:
                    apt.append("%s: apt-get install without --no-install-recommends" % where)
                if not re.search(r"rm\s+-(rf|fr)\s+/var/lib/apt/lists/\*", args):
                    apt.append("%s: apt lists not removed in the same RUN" % where)
            if re.search(r"\bapt\s+install\b", args):
                apt.append("%s: apt (use apt-get in scripts)" % where)
        elif inst == "WORKDIR":
            if not args.startswith("/"):
                workdir.append("%s: WORKDIR %s is relative" % (where, args))
        elif inst == "COPY":
            words = shlex.split(args)
            frm = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            srcs = [w for w in words if not w.startswith("--")][:-1]
            if frm:
                if frm[0] not in stages:
                    copyfrom.append("%s: COPY --from=%s names no earlier stage" % (where, frm[0]))
            else:
                for s in srcs:
                    if not glob.glob(s.rstrip("/")):
                        copysrc.append("%s: COPY %s: no such file in the repository" % (where, s))
                    elif ignore and not dockerignore_allows(ignore, s.rstrip("/")):
                        copysrc.append("%s: COPY %s is excluded by %s" % (where, s, os.path.basename(ignore_path)))
        elif inst in ("CMD", "ENTRYPOINT"):
            if not is_exec_form(args):
                execform.append("%s: %s in shell form (signals would not reach the program)" % (where, inst))
        elif inst == "HEALTHCHECK":
            health[stage] = True
            cmd = re.split(r"\bCMD\b", args, 1)
            if args.strip().upper() != "NONE" and (len(cmd) < 2 or not is_exec_form(cmd[1].strip())):
                execform.append("%s: HEALTHCHECK CMD not in exec form" % where)
        elif inst == "USER":
            users[stage] = args.strip()

    final = stage
    check("%s: base images pinned to a version" % name, pinned)
    check("%s: no ADD, never of a URL" % name, adds)
    check("%s: no secrets in ENV or ARG" % name, secrets)
    check("%s: apt-get used cleanly (update, -y, --no-install-recommends, lists removed; no upgrade, no sudo)" % name, apt)
    check("%s: WORKDIR absolute, COPY --from known stages" % name, workdir + copyfrom)
    check("%s: COPY sources exist and pass the .dockerignore" % name, copysrc)
    check("%s: CMD, ENTRYPOINT and HEALTHCHECK in exec form" % name, execform)
    check("%s: HEALTHCHECK in the final image" % name,
          [] if health.get(final) else ["the final stage has no HEALTHCHECK"])
    check("%s: deny-all %s" % (name, os.path.basename(ignore_path)),
          [] if ignore and ignore[0] == "*" else ["%s missing, or its first pattern is not *" % os.path.basename(ignore_path)])
    return users, final, stages


def group_docker():
    files = sorted(f for f in glob.glob("docker/Dockerfile.*") if not f.endswith(".dockerignore"))
    check("docker/: Dockerfile.postgres and Dockerfile.app exist",
          [f for f in ("docker/Dockerfile.postgres", "docker/Dockerfile.app") if f not in files])
    for f in files:
        users, final, stages = check_dockerfile(f)
        if os.path.basename(f) == "Dockerfile.app":
            problems = []
            for i, u in users.items():
                # Stages that run: the final one and any named target
                # other than the build stage.
                if i != final and stages[i] in ("build",):
                    continue
                if u is None or u.split(":")[0] in ("root", "0"):
                    problems.append("stage %s runs as %s" % (stages[i], u or "root (no USER)"))
            check("Dockerfile.app: run-time stages end with a non-root USER", problems)
        if os.path.basename(f) == "Dockerfile.postgres":
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
            check("Dockerfile.postgres: multi-stage, from the official postgres image",
                  [] if len(re.findall(r"(?m)^FROM\s+postgres:", text)) >= 2 else
                  ["expected a build stage and a run-time stage FROM postgres:<version>"])


# --------------------------------------------------------------- compose ----

def group_compose():
    path = "docker/docker-compose.yml"
    yaml = load_yaml()
    if yaml is None:
        emit("skip", "compose file checks", "python3-yaml is not installed (apt-get install python3-yaml)")
        return
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        emit("ok", "%s parses as YAML" % path)
    except (OSError, yaml.YAMLError) as e:
        emit("fail", "%s parses as YAML" % path, str(e))
        return
    services = doc.get("services") or {}
    check("compose: services vault, postgres, bootstrap and app",
          [s for s in ("vault", "postgres", "bootstrap", "app") if s not in services])

    oneshot = set()
    for s in services.values():
        dep = s.get("depends_on") or {}
        if isinstance(dep, dict):
            for name, cond in dep.items():
                if (cond or {}).get("condition") == "service_completed_successfully":
                    oneshot.add(name)
    problems = []
    for name, s in services.items():
        if name in oneshot:
            if s.get("restart", "no") not in ("no", "on-failure"):
                problems.append("%s is a one-shot but restarts %s" % (name, s.get("restart")))
            continue
        hc = s.get("healthcheck")
        if not hc or hc.get("disable") or not hc.get("test"):
            problems.append("%s has no health check" % name)
    check("compose: every long-running service has a health check (one-shots: %s)"
          % (", ".join(sorted(oneshot)) or "none"), problems)

    problems, published = [], []
    for name, s in services.items():
        for p in s.get("ports") or []:
            if isinstance(p, dict):
                ip, target, pub = p.get("host_ip"), p.get("target"), p.get("published")
            else:
                parts = str(p).split(":")
                ip = parts[0] if len(parts) == 3 else None
                pub, target = (parts[-2] if len(parts) >= 2 else None), parts[-1]
            if ip != "127.0.0.1":
                problems.append("%s publishes %s beyond 127.0.0.1" % (name, p))
            published.append((name, str(target).split("/")[0]))
        if s.get("network_mode") == "host":
            problems.append("%s uses the host network" % name)
    check("compose: published ports bound to 127.0.0.1 only", problems)
    extra = [("%s:%s" % x) for x in published if x not in (("vault", "8200"), ("app", "5000"))]
    check("compose: only Vault (8200) and the app (5000) are published", extra)

    problems = []
    built = {s.get("image") for s in services.values() if s.get("build")}
    for name, s in services.items():
        img = s.get("image")
        # Built here (by this service or another one) rather than pulled.
        if s.get("build") or not img or img in built:
            continue
        tag = img.rsplit(":", 1)[1] if ":" in img.split("/")[-1] else None
        if "@sha256:" not in img and (tag is None or tag == "latest" or not re.search(r"\d+\.\d+", tag)):
            problems.append("%s: %s is not pinned to a version" % (name, img))
    check("compose: pulled images pinned to a version", problems)
    vault_img = (services.get("vault") or {}).get("image", "")
    check("compose: Vault is HashiCorp's image, 1.15",
          [] if re.match(r"^(docker\.io/)?hashicorp/vault:1\.15(\.\d+)?$", vault_img) else ["vault image is %r" % vault_img])

    problems = []
    for name, s in services.items():
        env = s.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (
            (e.split("=", 1) + [None])[:2] for e in env)
        for k, v in items:
            if v is None or not SECRET_NAME.search(k) or SAFE_SECRET_SUFFIX.search(k):
                continue
            if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}", str(v).strip()):
                problems.append("%s: %s is a literal" % (name, k))
        if s.get("env_file"):
            problems.append("%s: env_file (keep secrets out of files next to the compose file)" % name)
    check("compose: secret-looking environment values come from ${VARIABLES}", problems)

    problems = []
    for name, s in services.items():
        b = s.get("build")
        if not b:
            continue
        ctx = os.path.normpath(os.path.join("docker", b.get("context", ".") if isinstance(b, dict) else b))
        df = os.path.join(ctx, b.get("dockerfile", "Dockerfile")) if isinstance(b, dict) else os.path.join(ctx, "Dockerfile")
        if not os.path.isdir(ctx):
            problems.append("%s: build context %s missing" % (name, ctx))
        if not os.path.isfile(df):
            problems.append("%s: %s missing" % (name, df))
    check("compose: build contexts and Dockerfiles exist", problems)


# ------------------------------------------------------------ kubernetes ----

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


def pod_spec(doc):
    """The pod spec of a workload document, or None."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return spec
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return (spec.get("template") or {}).get("spec")


def pod_labels(doc):
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return (doc.get("metadata") or {}).get("labels") or {}
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def image_pinned(img):
    if "@sha256:" in img:
        return True
    tag = img.rsplit(":", 1)[1] if ":" in img.split("/")[-1] else None
    return tag is not None and tag != "latest" and "$" not in img and bool(re.search(r"\d+\.\d+", tag))


def group_kubernetes():
    path = "docker/kubernetes.yaml"
    yaml = load_yaml()
    if yaml is None:
        emit("skip", "kubernetes manifest checks", "python3-yaml is not installed (apt-get install python3-yaml)")
        return
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        emit("ok", "%s parses as YAML" % path)
    except (OSError, yaml.YAMLError) as e:
        emit("fail", "%s parses as YAML" % path, str(e))
        return
    check("kubernetes: every document has apiVersion, kind and metadata.name",
          ["document %d" % i for i, d in enumerate(docs, 1)
           if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind")
           or not (d.get("metadata") or {}).get("name")])
    docs = [d for d in docs if isinstance(d, dict)]
    kinds = {d.get("kind") for d in docs}
    check("kubernetes: a StatefulSet, a Deployment, Services and NetworkPolicies",
          [k for k in ("StatefulSet", "Deployment", "Service", "NetworkPolicy") if k not in kinds])

    workloads = [d for d in docs if d.get("kind") in WORKLOAD_KINDS and pod_spec(d)]
    nonroot, rofs, res, probes, pinned, hostns, secrets = ([] for _ in range(7))
    images = []
    for d in workloads:
        wname = "%s/%s" % (d["kind"], d["metadata"]["name"])
        spec = pod_spec(d)
        psc = spec.get("securityContext") or {}
        for k in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(k):
                hostns.append("%s: %s" % (wname, k))
        for v in spec.get("volumes") or []:
            if "hostPath" in v:
                hostns.append("%s: hostPath volume %s" % (wname, v.get("name")))
        oneshot = d["kind"] in ("Job", "CronJob")
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            where = "%s %s" % (wname, c.get("name"))
            csc = c.get("securityContext") or {}
            as_user = csc.get("runAsUser", psc.get("runAsUser"))
            if not csc.get("runAsNonRoot", psc.get("runAsNonRoot")) or as_user == 0:
                nonroot.append("%s: not runAsNonRoot" % where)
            if csc.get("privileged") or csc.get("allowPrivilegeEscalation", True):
                nonroot.append("%s: may escalate privileges" % where)
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                nonroot.append("%s: capabilities not dropped" % where)
            if not csc.get("readOnlyRootFilesystem"):
                rofs.append(where)
            r = c.get("resources") or {}
            missing = ["%s.%s" % (kind, what) for kind in ("requests", "limits")
                       for what in ("cpu", "memory") if what not in (r.get(kind) or {})]
            if missing:
                res.append("%s: no %s" % (where, ", ".join(missing)))
            is_init = c in (spec.get("initContainers") or []) and c.get("restartPolicy") != "Always"
            if not oneshot and not is_init and not (c.get("readinessProbe") and c.get("livenessProbe")):
                probes.append(where)
            img = str(c.get("image", ""))
            images.append(img)
            if not image_pinned(img):
                pinned.append("%s: %s" % (where, img or "no image"))
            for e in c.get("env") or []:
                name = e.get("name", "")
                if "value" in e and SECRET_NAME.search(name) and not SAFE_SECRET_SUFFIX.search(name):
                    secrets.append("%s: env %s is a literal" % (where, name))
                ref = (e.get("valueFrom") or {})
                if "configMapKeyRef" in ref and SECRET_NAME.search(name) and not SAFE_SECRET_SUFFIX.search(name):
                    secrets.append("%s: env %s from a ConfigMap" % (where, name))
            words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
            for w in words:
                if re.match(r"^vault\.(token|approle_secret_id)\s*=", w):
                    secrets.append("%s: %s on the command line" % (where, w.split("=", 1)[0]))
    for d in docs:
        if d.get("kind") == "Secret" and (d.get("data") or d.get("stringData")):
            secrets.append("Secret/%s holds values in this file" % d["metadata"]["name"])
        if d.get("kind") == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                if re.search(r"\b(hvs|s)\.[A-Za-z0-9]{20,}", str(v)) or \
                        re.search(r"(?i)\b(secret_id|token|password)\s*=\s*\"[^\"/]{8,}\"", str(v)):
                    secrets.append("ConfigMap/%s %s holds a credential" % (d["metadata"]["name"], k))

    # pg_vault's token file: on a memory-backed emptyDir written by a Vault
    # Agent container of the same pod.
    for d in workloads:
        spec = pod_spec(d)
        vols = {v.get("name"): v for v in spec.get("volumes") or []}
        for c in spec.get("containers") or []:
            for w in [str(x) for x in (c.get("args") or []) + (c.get("command") or [])]:
                m = re.match(r"^vault\.(token_file|approle_secret_id_file)=(.+)$", w)
                if not m:
                    continue
                f = m.group(2)
                mount = max((vm for vm in c.get("volumeMounts") or []
                             if f.startswith(vm.get("mountPath", "").rstrip("/") + "/")),
                            key=lambda vm: len(vm.get("mountPath", "")), default=None)
                v = vols.get(mount.get("name")) if mount else None
                where = "%s/%s %s: vault.%s" % (d["kind"], d["metadata"]["name"], c.get("name"), m.group(1))
                if v is None:
                    secrets.append("%s is on no volume" % where)
                elif "secret" in v:
                    continue
                elif ((v.get("emptyDir") or {}).get("medium")) != "Memory":
                    secrets.append("%s is not on a memory-backed emptyDir or a Secret" % where)
                elif not any(o is not c and str(o.get("image", "")).split("/")[-1].startswith(("vault:", "openbao:"))
                             and any(vm.get("name") == mount.get("name") for vm in o.get("volumeMounts") or [])
                             for o in spec.get("containers") or []):
                    secrets.append("%s: no Vault Agent container shares its volume" % where)

    check("kubernetes: every container runs as non-root, cannot escalate, drops all capabilities", nonroot)
    check("kubernetes: every container has a read-only root file system", rofs)
    check("kubernetes: every container sets cpu and memory requests and limits", res)
    check("kubernetes: every long-running container has readiness and liveness probes", probes)
    check("kubernetes: images pinned to a version", pinned)
    check("kubernetes: no host namespaces or hostPath volumes", hostns)
    check("kubernetes: secrets only from Secrets or Vault Agent", secrets)
    check("kubernetes: runs the images of docker/Dockerfile.postgres and docker/Dockerfile.app",
          [n for n in ("/postgres:", "/app:") if not any(n in i for i in images)])

    # Egress: a default deny, and each workload's pods selected by an egress
    # policy whose every rule names destinations and ports.
    problems = []
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    if not any((p.get("spec") or {}).get("podSelector") in ({}, None) and
               "Egress" in ((p.get("spec") or {}).get("policyTypes") or []) and
               not (p.get("spec") or {}).get("egress") for p in policies):
        problems.append("no default-deny egress policy (podSelector {}, policyTypes Egress, no rules)")
    for d in workloads:
        labels = pod_labels(d)
        mine = [p for p in policies
                if "Egress" in ((p.get("spec") or {}).get("policyTypes") or [])
                and ((p.get("spec") or {}).get("podSelector") or {}).get("matchLabels")
                and all(labels.get(k) == v for k, v in
                        p["spec"]["podSelector"]["matchLabels"].items())]
        if not mine:
            problems.append("%s/%s: no egress policy selects its pods" % (d["kind"], d["metadata"]["name"]))
        for p in mine:
            for i, rule in enumerate(p["spec"].get("egress") or []):
                if not rule.get("to") or not rule.get("ports"):
                    problems.append("NetworkPolicy/%s egress rule %d allows any %s" % (
                        p["metadata"]["name"], i + 1, "destination" if not rule.get("to") else "port"))
                for peer in rule.get("to") or []:
                    if "ipBlock" in peer and peer["ipBlock"].get("cidr") in ("0.0.0.0/0", "::/0"):
                        problems.append("NetworkPolicy/%s egress to %s" % (p["metadata"]["name"], peer["ipBlock"]["cidr"]))
    check("kubernetes: egress limited by NetworkPolicies (default deny; named destinations and ports)", problems)


# ------------------------------------------------------------- workflows ----

def make_targets():
    """Every target make knows in the top-level Makefile, PGXS's included."""
    out = subprocess.run(["make", "-pRrq", "-f", "Makefile", ":"], capture_output=True, text=True).stdout
    targets = set()
    in_files = False
    for line in out.splitlines():
        if line.startswith("# Files"):
            in_files = True
        if line.startswith("# Not a target:"):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\-/]*):(?!=)", line)
        if m and in_files:
            targets.add(m.group(1))
    return targets


def make_invocations(run):
    """The targets of each `make ...` in a run: script."""
    found = []
    for line in run.splitlines():
        for m in re.finditer(r"(?:^\s*|[;&|]\s*|\b(?:then|do|else)\s+)make\s+([^;&|#\n]*)", line):
            try:
                words = shlex.split(m.group(1))
            except ValueError:
                words = m.group(1).split()
            skip = False
            for w in words:
                w = w.strip("'\"")
                if skip:
                    skip = False
                    continue
                if w in ("-C", "-f", "-j", "-o", "-W", "-I"):
                    skip = True
                    continue
                if w.startswith("-") or "=" in w:
                    continue
                found.append(w)
    return found


def matrix_versions():
    """The PostgreSQL versions of test/ci/matrix.sh's VERSIONS_ALL."""
    try:
        with open("test/ci/matrix.sh", encoding="utf-8") as fh:
            m = re.search(r"(?m)^VERSIONS_ALL=\(([0-9 ]+)\)", fh.read())
    except OSError:
        return set()
    return set(m.group(1).split()) if m else set()


def group_workflows():
    yaml = load_yaml()
    if yaml is None:
        emit("skip", "workflow checks", "python3-yaml is not installed (apt-get install python3-yaml)")
        return
    files = sorted(glob.glob(".github/workflows/*.yml") + glob.glob(".github/workflows/*.yaml"))
    check(".github/workflows: has workflows", [] if files else ["no workflow files"])
    targets = make_targets()
    check("Makefile: make -p lists its targets", [] if "test" in targets and "install" in targets
          else ["could not read the targets from make -p"])
    jobs_all = {}
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as e:
            emit("fail", "%s parses as YAML" % f, str(e))
            continue
        emit("ok", "%s parses as YAML" % f)
        jobs = doc.get("jobs") or {}
        jobs_all.update({(f, k): v for k, v in jobs.items()})
        # PyYAML reads the key "on" as True.
        if not (doc.get("on") or doc.get(True)):
            emit("fail", "%s: has triggers" % f, "no on:")
        perms = doc.get("permissions")
        check("%s: read-only default permissions" % f,
              [] if perms == {"contents": "read"} or perms == "read-all" else ["permissions: %r" % (perms,)])
        used, unknown, uses, no_timeout = [], [], [], []
        for jname, job in jobs.items():
            if "timeout-minutes" not in job:
                no_timeout.append(jname)
            for step in job.get("steps") or []:
                if "run" in step:
                    for t in make_invocations(step["run"]):
                        used.append(t)
                        if t not in targets:
                            unknown.append("%s: make %s" % (jname, t))
                if "uses" in step:
                    ref = step["uses"].split("@", 1)
                    if len(ref) != 2 or ref[1] in ("main", "master", "latest") or not re.match(r"^(v\d|[0-9a-f]{40}$)", ref[1]):
                        uses.append("%s: %s" % (jname, step["uses"]))
        check("%s: every make target it runs exists (%s)" % (f, " ".join(sorted(set(used))) or "none"), unknown)
        check("%s: every job has timeout-minutes" % f, no_timeout)
        check("%s: actions pinned to a release" % f, uses)

    matrix_pg = set()
    vault_service = False
    for (f, jname), job in jobs_all.items():
        m = ((job.get("strategy") or {}).get("matrix") or {}).get("pg")
        if m:
            matrix_pg |= {str(x) for x in m}
        env = job.get("env") or {}
        images = [str(svc.get("image", "")) for svc in (job.get("services") or {}).values()]
        images += re.findall(r"hashicorp/vault:\S+", json.dumps(job.get("steps") or []))
        if any(i.startswith("hashicorp/vault:1.15") for i in images):
            vault_service = vault_service or ("VAULT_ADDR" in env and "VAULT_TOKEN" in env)
    proven = matrix_versions()
    check("workflows: the pg matrix is what make test-matrix proves (%s)" % " ".join(sorted(proven, key=int)),
          [] if proven and matrix_pg == proven else ["matrix pg: %s" % sorted(matrix_pg, key=int)])
    runs_matrix = [jname for (f, jname), job in jobs_all.items()
                   if ((job.get("strategy") or {}).get("matrix") or {}).get("pg")
                   and re.search(r'make test-matrix PG_VERSIONS=\\?"?\$\{\{ *matrix\.pg *\}\}',
                                 json.dumps(job.get("steps") or []))]
    check("workflows: the pg matrix runs make test-matrix PG_VERSIONS=\"${{ matrix.pg }}\"",
          [] if runs_matrix else ["no job with a pg matrix runs it"])
    check("workflows: a job runs make test against a HashiCorp Vault 1.15 container (VAULT_ADDR, VAULT_TOKEN set)",
          [] if vault_service else ["no such job"])
    steps_text = json.dumps([j for j in jobs_all.values()])
    for target in ("lint", "security-scan", "test-coverage", "test-sanitize", "test-valgrind",
                   "images", "image-scan", "static-checks"):
        check("workflows: a job runs make %s" % target,
              [] if re.search(r"make %s\b" % re.escape(target), steps_text) else ["none does"])
    dep = ".github/dependabot.yml"
    if os.path.exists(dep):
        try:
            with open(dep, encoding="utf-8") as fh:
                yaml.safe_load(fh)
            emit("ok", "%s parses as YAML" % dep)
        except yaml.YAMLError as e:
            emit("fail", "%s parses as YAML" % dep, str(e))


# ------------------------------------------------------------------ meta ----

def group_meta():
    with open("pg_vault.control", encoding="utf-8") as f:
        m = re.search(r"(?m)^default_version\s*=\s*'([^']+)'", f.read())
    version = m.group(1) if m else None
    check("pg_vault.control: has a default_version", [] if version else ["none found"])
    try:
        with open("META.json", encoding="utf-8") as f:
            meta = json.load(f)
        emit("ok", "META.json is valid JSON")
    except (OSError, ValueError) as e:
        emit("fail", "META.json is valid JSON", str(e))
        return
    missing = [k for k in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec")
               if k not in meta]
    spec = (meta.get("meta-spec") or {}).get("version")
    if spec != "1.0.0":
        missing.append("meta-spec version %r, not 1.0.0" % spec)
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(meta.get("version", ""))):
        missing.append("version %r is not semantic (x.y.z)" % meta.get("version"))
    check("META.json: the PGXN spec's required keys", missing)
    problems = []
    if meta.get("version") != version:
        problems.append("version %r, control %r" % (meta.get("version"), version))
    for ext, p in (meta.get("provides") or {}).items():
        if p.get("version") != version:
            problems.append("provides.%s.version %r" % (ext, p.get("version")))
        if p.get("file") and not os.path.exists(p["file"]):
            problems.append("provides.%s.file %s does not exist" % (ext, p["file"]))
    if "pg_vault" not in (meta.get("provides") or {}):
        problems.append("provides has no pg_vault")
    check("META.json: versions equal pg_vault.control's default_version (%s)" % version, problems)
    check("META.json: release_status is stable, testing or unstable",
          [] if meta.get("release_status") in ("stable", "testing", "unstable")
          else ["release_status %r" % meta.get("release_status")])
    # PGXN's "postgresql" names the PostgreSQL Licence: LICENSE must be it.
    try:
        with open("LICENSE", encoding="utf-8") as f:
            lic = " ".join(f.read().split())
        lic_problems = [] if meta.get("license") == "postgresql" and \
            "Permission to use, copy, modify, and distribute this software and its documentation " \
            "for any purpose, without fee, and without a written agreement is hereby granted" in lic \
            else ["META.json says %r; LICENSE is not the PostgreSQL Licence" % meta.get("license")]
    except OSError:
        lic_problems = ["LICENSE is missing"]
    check("LICENSE: the licence META.json names", lic_problems)
    check("sql/: the install script of the default version exists",
          [] if os.path.exists("sql/pg_vault--%s.sql" % version) else ["sql/pg_vault--%s.sql missing" % version])
    try:
        with open("CHANGELOG.md", encoding="utf-8") as f:
            cl = f.read()
        check("CHANGELOG.md: has an entry for %s" % version,
              [] if re.search(r"(?m)^#+ .*\b%s\b" % re.escape(str(version)), cl) else ["no heading names it"])
    except OSError:
        emit("fail", "CHANGELOG.md exists", "missing")


def main():
    groups = {"docker": group_docker, "compose": group_compose,
              "workflows": group_workflows, "meta": group_meta,
              "kubernetes": group_kubernetes}
    args = sys.argv[1:]
    if args[:1] == ["--root"]:
        # Another tree: test/static_checks.sh shows the rules failing on
        # files written to break them.
        os.chdir(args[1])
        args = args[2:]
    for g in args or list(groups):
        if g not in groups:
            emit("fail", "static_checks.py: group %s" % g, "unknown group")
            continue
        try:
            groups[g]()
        except Exception as e:  # a broken check is a failed check, not a crash
            emit("fail", "static_checks.py: group %s ran" % g, "%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
