#!/usr/bin/env python3
"""Authorization matrix: every operation of the served OpenAPI document x every
kind of caller, each answer checked against the role the operation needs.

Run by scripts/authz-matrix.sh against a server it started; stdlib only.

The rule, derived from the document so new endpoints are covered without
editing this file:
- operations whose `security` is `[]` need no token: /healthz, /metrics,
  /api/v1/openapi.json answer 2xx to anyone; webhooks are authenticated by a
  forge signature, so an unsigned one is 401 whoever calls;
- the minimum role is the one named in the summary, `(admin)`,
  `(deployer; ...)`, `(developer)`, `(viewer)`; otherwise GET (and the
  OFREP evaluation POSTs, which are reads) needs viewer and any other method
  developer;
- no token or a bad token: 401; a role below the minimum: 403; a deployer
  token scoped to `staging` acting on `production`: 403; otherwise anything
  but 401, 403 and 5xx (a 404/409/422 for a plausible id still proves the
  auth check passed).
Too-low callers also send deliberately invalid input (bad ids, bodies that
fail validation): they must still get 401/403, i.e. auth comes before input
validation. Every 4xx/5xx must carry the JSON error body of the contract.

Unauthenticated probes come from distinct loopback source addresses
(127.0.N.M), so the failed-auth rate limit (tested separately at the end)
does not turn the matrix into a wall of 429s.

The last line is exactly `authz checked: C wrong: W`.
"""

import argparse
import http.client
import json
import re
import sys

ROLES = ["viewer", "developer", "deployer", "admin"]
RANK = {r: i for i, r in enumerate(ROLES)}
PUBLIC_OK = ("/healthz", "/metrics", "/api/v1/openapi.json")
PROJECT = "shop"
ENV = "production"  # the scoped token is scoped to OTHER_ENV
OTHER_ENV = "staging"
FLAG = "authz-flag"
SEGMENT = "authz-segment"
REASON = "authz matrix"
MIB = 1024 * 1024


class Client:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self._src = 0

    def next_source(self):
        """A fresh loopback source address for each unauthenticated probe."""
        self._src += 1
        n = self._src
        return "127.0.%d.%d" % (1 + (n // 250) % 250, 1 + n % 250)

    def send(self, method, path, token=None, body=None, source=None, headers=None, raw=None, limit=64 * 1024):
        """Returns (status, content_type, body_bytes); reads at most 64 KiB
        (event streams stay open, so they are not read to the end)."""
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=15,
            source_address=(source, 0) if source else None)
        h = {"Accept": "application/json"}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            ctype = resp.getheader("Content-Type") or ""
            if "text/event-stream" in ctype:
                payload = b""
            else:
                payload = resp.read() if limit is None else resp.read(limit)
            return resp.status, ctype, payload
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            return 0, "", str(e).encode()
        finally:
            conn.close()


def resolve(doc, schema):
    while isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = doc["components"]["schemas"][name]
    return schema or {}


def sample(doc, schema, depth=0):
    """A minimal valid-looking value for a JSON schema."""
    schema = resolve(doc, schema)
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return sample(doc, schema["oneOf"][0], depth + 1)
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        out = {}
        for k in schema.get("required", []):
            out[k] = sample(doc, schema.get("properties", {}).get(k, {}), depth + 1)
        return out
    if t == "array":
        return []
    if t == "integer":
        return max(1, schema.get("minimum", 1))
    if t == "number":
        return 1
    if t == "boolean":
        return False
    if t == "string":
        if schema.get("format") == "date-time":
            return "2099-01-01T00:00:00Z"
        return "x"
    return {}


def min_role(method, path, op):
    m = re.search(r"\((admin|deployer|developer|viewer)[;)]", op.get("summary", ""))
    if m:
        return m.group(1)
    if method == "GET" or path.startswith("/ofrep/v1/evaluate"):
        return "viewer"
    return "developer"


class Matrix:
    def __init__(self, client, doc, tokens, ids):
        self.c, self.doc, self.tokens, self.ids = client, doc, tokens, ids
        self.checked = 0
        self.results = None
        self.wrong = []
        self.notes = []

    def check(self, ok, what):
        self.checked += 1
        if self.results:
            self.results.write(json.dumps({"ok": bool(ok), "what": what}) + "\n")
        if not ok:
            self.wrong.append(what)
            print("WRONG " + what, flush=True)

    def error_body_ok(self, status, ctype, payload):
        if status < 400:
            return True
        if not ctype.startswith("application/json"):
            return False
        try:
            e = json.loads(payload)["error"]
            return isinstance(e["code"], str) and isinstance(e["message"], str)
        except (ValueError, KeyError, TypeError):
            return False

    def fill(self, path, op, invalid=False):
        params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "path"}
        def value(name):
            schema = params.get(name, {}).get("schema", {})
            if invalid and schema.get("type") == "integer":
                return "not-a-number"
            if invalid and schema.get("pattern"):
                return "%%20bad"
            if name == "project":
                return PROJECT
            if name == "env":
                return ENV
            if name == "action":
                return schema.get("enum", ["promote"])[0]
            if name == "forge":
                return "github"
            if name == "id":
                if "/runs/" in path:
                    return str(self.ids.get("run", 1))
                if schema.get("type") == "integer":
                    return "999999"
                return "tok_000000000000"  # never a real token: revoking is harmless
            if name == "digest":
                return "sha256:" + "0" * 64
            if name == "job":
                return self.ids.get("job", "unit")
            if name == "key":
                return FLAG
            if name == "name":
                return "AUTHZ_SECRET" if "/secrets/" in path else SEGMENT
            return sample(self.doc, schema) if schema else "x"
        url = re.sub(r"\{(\w+)\}", lambda m: str(value(m.group(1))), path)
        query = []
        for p in op.get("parameters", []):
            if p.get("in") != "query":
                continue
            if p["name"] == "reason":
                query.append("reason=" + REASON.replace(" ", "+"))
            elif p.get("required"):
                query.append("%s=%s" % (p["name"], sample(self.doc, p.get("schema", {}))))
        return url + ("?" + "&".join(query) if query else "")

    def body(self, method, path, op):
        rb = op.get("requestBody")
        if not rb:
            return None
        schema = rb.get("content", {}).get("application/json", {}).get("schema", {})
        b = sample(self.doc, schema)
        # Plausible bodies where the minimal one would only prove validation.
        if path == "/api/v1/projects" and method == "POST":
            b = {"name": PROJECT, "repo": self.ids["repo"], "poll": "0s"}  # exists: 409 when allowed
        elif path == "/api/v1/tokens" and method == "POST":
            b = {"name": "authz-made", "role": "viewer"}
        elif path.endswith("/runs") and method == "POST":
            b = {}
        elif path.endswith("/deploys") and method == "POST":
            b = {"run": self.ids.get("run", 1), "path": "dist/app"}
        elif path.startswith("/ofrep/"):
            b = {"context": {"targetingKey": "u1"}}
        elif path == "/api/v1/flags/{key}" and method == "PUT":
            b = {"flag": {"environments": {ENV: {"enabled": False}}}, "reason": REASON}
        elif path == "/api/v1/flags/apply":
            b = {"document": {"flags": {FLAG: {"environments": {ENV: {"enabled": False}}}}},
                 "dry_run": True, "reason": REASON}
        elif path == "/api/v1/flags/segments/{name}" and method == "PUT":
            b = {"segment": {"conditions": []}, "reason": REASON}
        if isinstance(b, dict):
            props = resolve(self.doc, schema).get("properties", {})
            # Name the environment the scoped token may NOT touch.
            if "environment" in props:
                b["environment"] = ENV
            if "reason" in props:
                b["reason"] = REASON
        return b

    def run(self):
        for path, ops in sorted(self.doc["paths"].items()):
            for method, op in sorted(ops.items()):
                if method not in ("get", "post", "put", "delete", "patch"):
                    continue
                self.operation(method.upper(), path, op)

    def operation(self, method, path, op):
        public = op.get("security") == []
        url = self.fill(path, op)
        body = self.body(method, path, op)
        label = "%s %s" % (method, path)
        if public and path in PUBLIC_OK:
            for who, tok in [("none", None), ("bad", "andon_bad")] + [(r, self.tokens[r]) for r in ROLES]:
                st, ct, pl = self.c.send(method, url, tok, body,
                                         source=self.c.next_source() if tok in (None, "andon_bad") else None)
                self.check(200 <= st < 300, "%s as %s: %d, want 2xx (public)" % (label, who, st))
            return
        if public:  # webhooks: signatures, not tokens
            for who, tok in [("none", None), ("bad", "andon_bad"), ("admin", self.tokens["admin"])]:
                st, ct, pl = self.c.send(method, url, tok, {"ref": "refs/heads/main"},
                                         source=self.c.next_source())
                self.check(st == 401, "%s unsigned as %s: %d, want 401 (%s)" % (label, who, st, pl[:120]))
                self.check(self.error_body_ok(st, ct, pl), "%s: %d without a JSON error body" % (label, st))
            return
        need = min_role(method, path, op)
        # The scoped token and the viewer go first: an allowed DELETE by a
        # later caller must not hide what they could have done.
        callers = [("none", None, "unauth"), ("bad", "andon_" + "0" * 64, "unauth")]
        callers += [("deployer@" + OTHER_ENV, self.tokens["scoped"], "scoped")]
        callers += [(r, self.tokens[r], r) for r in ROLES]
        for who, tok, kind in callers:
            if kind == "unauth":
                want = "401"
            elif kind == "scoped":
                # Bound to an environment: one in the path, one named in the
                # body, or any change to flags (whose environments include
                # ENV); the probe always names ENV, which is not its scope.
                # A scope limits what a token may change; reads stay
                # viewer-wide (GET /environments lists them all anyway).
                env_bound = (("{env}" in path and method != "GET")
                             or (isinstance(body, dict) and body.get("environment") == ENV)
                             or (path.startswith("/api/v1/flags") and method != "GET"
                                 and not path.startswith("/api/v1/flags/exposures")))
                allowed = RANK["deployer"] >= RANK[need] and not env_bound
                want = "allow" if allowed else "403"
            else:
                want = "allow" if RANK[kind] >= RANK[need] else "403"
            src = self.c.next_source() if kind == "unauth" else None
            st, ct, pl = self.c.send(method, url, tok, body, source=src)
            self.judge(label, who, want, need, st, ct, pl)
            # Invalid input must not be looked at before the caller is —
            # where the refusal can be decided without the input: no token,
            # a role too low, or a scope that the path alone contradicts (a
            # scope named only in the body needs the body parsed first).
            decidable = (kind == "unauth"
                         or (kind in RANK and RANK[kind] < RANK[need])
                         or (kind == "scoped" and (RANK["deployer"] < RANK[need]
                                                     or ("{env}" in path and method != "GET"))))
            if want != "allow" and decidable:
                bad_url = self.fill(path, op, invalid=True)
                bad_body = {"authz_unknown_field": True} if body is not None else None
                src = self.c.next_source() if kind == "unauth" else None
                st, ct, pl = self.c.send(method, bad_url, tok, bad_body, source=src)
                self.judge(label + " (invalid input)", who, want, need, st, ct, pl)

    def judge(self, label, who, want, need, st, ct, pl):
        detail = pl[:160].decode("utf-8", "replace").replace("\n", " ")
        if want == "allow":
            ok = st not in (0, 401, 403) and st < 500
            self.check(ok, "%s as %s (needs %s): %d, want allowed: %s" % (label, who, need, st, detail))
        else:
            self.check(st == int(want), "%s as %s (needs %s): %d, want %s: %s" % (label, who, need, st, want, detail))
        self.check(self.error_body_ok(st, ct, pl),
                   "%s as %s: %d without the JSON error body (%s)" % (label, who, st, ct))

    def rate_limit(self):
        """~20 failed authentications from one address, then 429 for it only."""
        src = "127.0.250.250"
        statuses = [self.c.send("GET", "/api/v1/projects", "andon_wrong", source=src)[0] for _ in range(25)]
        first_429 = statuses.index(429) + 1 if 429 in statuses else None
        self.check(first_429 is not None and 15 <= first_429 <= 25,
                   "rate limit: failures from one address answered %s (first 429 at try %s)" % (statuses, first_429))
        st, ct, pl = self.c.send("GET", "/api/v1/projects", "andon_wrong", source=src)
        self.check(st == 429 and self.error_body_ok(st, ct, pl), "rate limit: 26th failure %d, want 429 with a JSON body" % st)
        st = self.c.send("GET", "/api/v1/projects", self.tokens["viewer"], source="127.0.249.249")[0]
        self.check(st == 200, "rate limit: another address with a good token got %d, want 200" % st)
        st = self.c.send("GET", "/api/v1/projects", self.tokens["viewer"], source=src)[0]
        self.notes.append("a valid token from the limited address gets %d during the window" % st)

    def body_limit(self):
        """Request bodies over 1 MiB: 413 with a JSON body, authenticated or not."""
        big = b'{"value": "' + b"a" * MIB + b'"}'
        for who, tok in [("admin", self.tokens["admin"]), ("none", None)]:
            st, ct, pl = self.c.send("PUT", "/api/v1/projects/%s/secrets/BIG" % PROJECT, tok, raw=big,
                                     source=self.c.next_source())
            if tok is None:
                # 0: the server answered 401 and closed before taking the
                # whole body, which is fine (it read none of it).
                self.check(st == 0 or (st in (401, 413) and self.error_body_ok(st, ct, pl)),
                           "body limit as none: %d, want 401 or 413 with a JSON body" % st)
            else:
                self.check(st == 413 and self.error_body_ok(st, ct, pl),
                           "body limit as admin: %d, want 413 with a JSON body (%s)" % (st, pl[:100]))
        st, ct, pl = self.c.send("POST", "/api/v1/webhooks/github?project=%s" % PROJECT, None, raw=b"[" + b" " * (2 * MIB) + b"]",
                                 source=self.c.next_source())
        self.check(st == 413 and self.error_body_ok(st, ct, pl), "body limit on webhooks: %d, want 413" % st)
        just_under = b'{"value": "' + b"a" * (MIB - 64) + b'"}'
        st, ct, pl = self.c.send("PUT", "/api/v1/projects/%s/secrets/BIG" % PROJECT, self.tokens["admin"], raw=just_under)
        self.check(st != 413 and st < 500, "a body just under 1 MiB: %d, want accepted" % st)


def setup(c, admin, repo):
    st, ct, pl = c.send("POST", "/api/v1/projects", admin,
                        {"name": PROJECT, "repo": repo, "poll": "0s", "webhook_secret": "authz-webhook-secret"})
    if st not in (201, 409):
        sys.exit("authz: cannot add the project: %d %s" % (st, pl[:300]))
    ids = {"repo": repo}
    try:
        ids["run"] = json.loads(pl).get("run_id") or 1
    except ValueError:
        ids["run"] = 1
    tokens = {}
    for role in ROLES:
        st, ct, pl = c.send("POST", "/api/v1/tokens", admin, {"name": "authz-" + role, "role": role})
        if st != 201:
            sys.exit("authz: cannot create a %s token: %d %s" % (role, st, pl[:300]))
        tokens[role] = json.loads(pl)["token"]
    st, ct, pl = c.send("POST", "/api/v1/tokens", admin,
                        {"name": "authz-scoped", "role": "deployer", "environment": OTHER_ENV})
    if st != 201:
        sys.exit("authz: cannot create a scoped token: %d %s" % (st, pl[:300]))
    tokens["scoped"] = json.loads(pl)["token"]
    # A flag live in ENV and a segment, so changes and deletes act on
    # something real (the flag routes may not exist in older servers).
    c.send("PUT", "/api/v1/flags/" + FLAG, admin,
           {"flag": {"environments": {ENV: {"enabled": True}, OTHER_ENV: {"enabled": True}}}, "reason": REASON})
    c.send("PUT", "/api/v1/flags/segments/" + SEGMENT, admin, {"segment": {"conditions": []}, "reason": REASON})
    return tokens, ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--results", help="write every check as a JSON line here")
    args = ap.parse_args()
    c = Client("127.0.0.1", args.port)
    st, ct, pl = c.send("GET", "/api/v1/openapi.json", limit=None)
    if st != 200:
        sys.exit("authz: no OpenAPI document: %d" % st)
    doc = json.loads(pl)
    tokens, ids = setup(c, args.admin, args.repo)
    m = Matrix(c, doc, tokens, ids)
    if args.results:
        m.results = open(args.results, "w")
    ops = sum(1 for p in doc["paths"].values() for k in p if k in ("get", "post", "put", "delete", "patch"))
    print("authz: %d operations in the served document" % ops, flush=True)
    m.run()
    m.body_limit()
    m.rate_limit()
    for n in m.notes:
        print("note: " + n)
    print("authz checked: %d wrong: %d" % (m.checked, len(m.wrong)))
    sys.exit(1 if m.wrong else 0)


if __name__ == "__main__":
    main()
