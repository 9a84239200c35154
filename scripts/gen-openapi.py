#!/usr/bin/env python3
"""Writes crates/andon-server/src/openapi.json: the API's OpenAPI document.

The document is data, not code: edit this generator, run it, commit both.
A test in andon-server checks every route the server serves is documented.
"""
import json, pathlib

err = {"$ref": "#/components/responses/Error"}
def op(summary, tag, ok, ok_schema=None, body=None, params=(), auth=True, extra=None, ok_ct="application/json"):
    o = {"summary": summary, "tags": [tag], "responses": {}}
    content = {ok_ct: {"schema": ok_schema or {"type": "object"}}}
    o["responses"][str(ok)] = {"description": "success", **({"content": content} if ok != 204 else {})}
    for code in (["400", "401", "403", "404", "409", "413", "429"] if auth else ["400", "401", "404", "409"]):
        o["responses"][code] = err
    if body:
        o["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        o["parameters"] = list(params)
    if not auth:
        o["security"] = []
    if extra:
        o.update(extra)
    return o

def path_param(name, schema=None):
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}
def query(name, schema):
    return {"name": name, "in": "query", "required": False, "schema": schema}

P = path_param
ref = lambda n: {"$ref": f"#/components/schemas/{n}"}
arr = lambda s: {"type": "array", "items": s}
run_id = P("id", {"type": "integer", "minimum": 0, "format": "int64"})

paths = {
  "/healthz": {"get": op("Liveness", "meta", 200, {"type": "object", "properties": {"status": {"type": "string"}}}, auth=False)},
  "/metrics": {"get": op("Prometheus metrics", "meta", 200, {"type": "string"}, auth=False, ok_ct="text/plain")},
  "/api/v1/openapi.json": {"get": op("This document", "meta", 200, auth=False)},
  "/api/v1/projects": {
    "get": op("List projects", "projects", 200, arr(ref("Project"))),
    "post": op("Watch a repository (admin)", "projects", 201, ref("ProjectCreated"), body=ref("AddProject")),
  },
  "/api/v1/projects/{project}": {
    "get": op("Show a project", "projects", 200, ref("Project"), params=[P("project")]),
    "delete": op("Stop watching a project (admin)", "projects", 204, params=[P("project")]),
  },
  "/api/v1/projects/{project}/runs": {
    "get": op("Runs of a project, newest first", "runs", 200, arr(ref("Run")), params=[P("project"), query("limit", {"type": "integer", "minimum": 0})]),
    "post": op("Trigger a run (developer)", "runs", 201, ref("RunQueued"), body={"type": "object", "properties": {"ref": {"type": "string"}}, "additionalProperties": False}, params=[P("project")]),
  },
  "/api/v1/projects/{project}/secrets": {
    "get": op("Names of a project's secrets (developer)", "secrets", 200, arr({"type": "string"}), params=[P("project")]),
  },
  "/api/v1/projects/{project}/secrets/{name}": {
    "put": op("Set a secret (admin)", "secrets", 204, body={"type": "object", "required": ["value"], "properties": {"value": {"type": "string"}}, "additionalProperties": False}, params=[P("project"), P("name")]),
    "delete": op("Delete a secret (admin)", "secrets", 204, params=[P("project"), P("name")]),
  },
  "/api/v1/projects/{project}/environments": {"get": op("Environments with their stable version, traffic split and instances", "releases", 200, arr(ref("Environment")), params=[P("project")])},
  "/api/v1/projects/{project}/environments/{env}/deploys": {"post": op("Release a version (deployer; a token scoped to another environment is refused)", "releases", 202, {"type": "object", "properties": {"deploy_id": {"type": "integer"}, "version": {"type": "string"}, "strategy": {"type": "string"}}}, body=ref("DeployRequest"), params=[P("project"), P("env")])},
  "/api/v1/projects/{project}/environments/{env}/{action}": {"post": op("promote, pause, resume, abort or rollback the environment's release (deployer)", "releases", 202, params=[P("project"), P("env"), P("action", {"type": "string", "enum": ["promote", "pause", "resume", "abort", "rollback"]})])},
  "/api/v1/projects/{project}/deploys": {"get": op("Releases of a project, newest first", "releases", 200, arr(ref("Deploy")), params=[P("project")])},
  "/api/v1/deploys/{id}": {"get": op("One release with the judge's verdicts", "releases", 200, ref("Deploy"), params=[P("id", {"type": "integer", "minimum": 0})])},
  "/api/v1/runs/{id}": {"get": op("Show a run with its jobs", "runs", 200, ref("Run"), params=[run_id])},
  "/api/v1/runs/{id}/cancel": {"post": op("Cancel a run (developer)", "runs", 202, params=[run_id])},
  "/api/v1/runs/{id}/jobs/{job}/log": {"get": op("A job's log; `follow=true` streams it as Server-Sent Events", "runs", 200, {"type": "string"}, params=[run_id, P("job"), query("follow", {"type": "boolean"})], ok_ct="text/plain")},
  "/api/v1/runs/{id}/artifacts": {"get": op("Artifacts of a run", "artifacts", 200, arr(ref("ArtifactRef")), params=[run_id])},
  "/api/v1/artifacts/{digest}": {"get": op("Download an artifact (a tar stream), verified against its digest", "artifacts", 200, {"type": "string", "format": "binary"}, params=[P("digest", {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"})], ok_ct="application/x-tar")},
  "/api/v1/events": {"get": op("Events after a sequence number", "events", 200, arr(ref("Event")), params=[query("after", {"type": "integer", "minimum": 0}), query("limit", {"type": "integer", "minimum": 0})])},
  "/api/v1/events/stream": {"get": op("Events as Server-Sent Events (resumes from Last-Event-ID)", "events", 200, {"type": "string"}, params=[query("after", {"type": "integer", "minimum": 0})], ok_ct="text/event-stream")},
  "/api/v1/tokens": {
    "get": op("List tokens (admin); never their secrets", "tokens", 200, arr(ref("Token"))),
    "post": op("Create a token (admin); its secret is shown once", "tokens", 201, ref("TokenCreated"), body=ref("CreateToken")),
  },
  "/api/v1/tokens/{id}": {"delete": op("Revoke a token (admin)", "tokens", 204, params=[P("id")])},
  "/api/v1/webhooks/{forge}": {"post": op("Push webhook from GitHub, GitLab or Gitea, authenticated by its signature", "webhooks", 202, body={"type": "object"}, params=[P("forge", {"type": "string", "enum": ["github", "gitlab", "gitea"]}), query("project", {"type": "string"})], auth=False)},
}

schemas = {
  "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
  "AddProject": {"type": "object", "required": ["name", "repo"], "additionalProperties": False, "properties": {
      "name": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"}, "repo": {"type": "string"},
      "trunk": {"type": "string"}, "poll": {"type": "string", "description": "e.g. 60s; 0s turns polling off"},
      "webhook_secret": {"type": "string"}}},
  "Project": {"type": "object", "properties": {"name": {"type": "string"}, "repo": {"type": "string"}, "trunk": {"type": "string"}, "poll_s": {"type": "integer"}, "added_at_ms": {"type": "integer"}, "heads": {"type": "object", "additionalProperties": {"type": "string"}}}},
  "ProjectCreated": {"type": "object", "properties": {"name": {"type": "string"}, "repo": {"type": "string"}, "trunk": {"type": "string"}, "poll_s": {"type": ["integer", "null"]}, "webhook_secret": {"type": "string"}, "run_id": {"type": ["integer", "null"]}}},
  "RunQueued": {"type": "object", "properties": {"id": {"type": "integer"}, "commit": {"type": "string"}, "branch": {"type": "string"}, "status": {"type": "string"}}},
  "Run": {"type": "object", "required": ["id", "project", "commit", "status"], "properties": {
      "id": {"type": "integer"}, "project": {"type": "string"}, "commit": {"type": "string"}, "branch": {"type": "string"},
      "status": {"type": "string", "enum": ["queued", "running", "passed", "failed", "cancelled", "interrupted"]},
      "queued_at_ms": {"type": "integer"}, "started_at_ms": {"type": "integer"}, "finished_at_ms": {"type": "integer"},
      "reason": {"type": "string"}, "jobs": arr(ref("Job"))}},
  "Job": {"type": "object", "properties": {"name": {"type": "string"}, "stage": {"type": "string"}, "kind": {"type": "string"}, "deps": arr({"type": "string"}),
      "status": {"type": "string"}, "attempts": {"type": "integer"}, "exit_code": {"type": "integer"}, "duration_ms": {"type": "integer"},
      "tests": {"type": "object", "properties": {"passed": {"type": "integer"}, "failed": {"type": "integer"}, "skipped": {"type": "integer"}}},
      "flaky": {"type": "boolean"}, "allow_failure": {"type": "boolean"}, "artifacts": {"type": "object", "additionalProperties": {"type": "string"}}}},
  "ArtifactRef": {"type": "object", "properties": {"job": {"type": "string"}, "path": {"type": "string"}, "digest": {"type": "string"}}},
  "Event": {"type": "object", "required": ["seq", "at_ms", "actor", "type"], "properties": {"seq": {"type": "integer"}, "at_ms": {"type": "integer"}, "actor": {"type": "string"}, "type": {"type": "string"}}, "additionalProperties": True},
  "DeployRequest": {"type": "object", "additionalProperties": False, "properties": {"artifact": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}, "run": {"type": "integer", "minimum": 0}, "path": {"type": "string"}, "reason": {"type": "string"}, "contract_migration": {"type": "boolean"}}},
  "Deploy": {"type": "object", "properties": {"id": {"type": "integer"}, "project": {"type": "string"}, "environment": {"type": "string"}, "version": {"type": "string"}, "strategy": {"type": "string"}, "phase": {}, "run_id": {"type": "integer"}, "commit": {"type": "string"}, "requested_at_ms": {"type": "integer"}, "finished_at_ms": {"type": "integer"}, "verdicts": {"type": "array"}, "reason": {"type": "string"}}},
  "Environment": {"type": "object", "properties": {"name": {"type": "string"}, "after": {"type": ["string", "null"]}, "strategy": {"type": "string"}, "stable": {"type": ["string", "null"]}, "current_deploy": {"type": ["integer", "null"]}, "weights": {"type": "object"}, "instances": {"type": "array"}, "good_versions": {"type": "array"}}},
  "CreateToken": {"type": "object", "required": ["name", "role"], "additionalProperties": False, "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}, "role": {"type": "string", "enum": ["viewer", "developer", "deployer", "admin"]}, "environment": {"type": "string"}}},
  "Token": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"}, "environment": {"type": ["string", "null"]}, "created_at_ms": {"type": "integer"}, "revoked": {"type": "boolean"}}},
  "TokenCreated": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"}, "environment": {"type": ["string", "null"]}, "token": {"type": "string"}}},
}

doc = {
  "openapi": "3.1.0",
  "info": {"title": "Andon API", "version": "1", "description": "Continuous delivery in one binary. Every /api/v1 call needs `Authorization: Bearer TOKEN`; errors are JSON `{\"error\": {\"code\", \"message\"}}`."},
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "paths": paths,
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": ref("Error")}}}},
    "schemas": schemas,
  },
}
out = pathlib.Path(__file__).resolve().parent.parent / "crates/andon-server/src/openapi.json"
out.write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
