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
  "/api/v1/projects/{project}/environments": {"get": op("Environments with their stable version, traffic split and instances: those of andon.yaml, then those made on demand (`on_demand: true`, shaped as OnDemandEnvironment)", "releases", 200, arr(ref("Environment")), params=[P("project")])},
  "/api/v1/projects/{project}/environments/{env}": {
    "get": op("One environment made on demand (review app): ref, run, status (waiting, deploying, ready, failed), host, url, expiry", "environments", 200, ref("OnDemandEnvironment"), params=[P("project"), P("env")]),
    "put": op("Make an environment on demand from a ref (deployer): finds or starts the ref's run, deploys its artifact when it passes, routed by the template's host; again moves it to the new ref (200)", "environments", 201, ref("OnDemandEnvironment"), body=ref("EnvironmentUp"), params=[P("project"), P("env", {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"})]),
    "delete": op("Tear an environment made on demand down (deployer): routes removed, instances drained and stopped, environment_down recorded", "environments", 200, {"type": "object", "properties": {"name": {"type": "string"}, "down": {"type": "boolean"}, "reason": {"type": "string"}}}, params=[P("project"), P("env")]),
  },
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
  "/api/v1/cluster": {"get": op("This server's place among servers sharing one PostgreSQL store: whether it leads, and where the leader serves", "meta", 200, {"type": "object", "properties": {
      "shared_store": {"type": "boolean"}, "leader": {"type": "boolean"}, "api": {"type": "string"},
      "leader_api": {"type": ["string", "null"]}, "instance": {"type": "string"}, "last_seq": {"type": "integer", "minimum": 0}}})},
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
  "DeployRequest": {"type": "object", "additionalProperties": False, "properties": {"artifact": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}, "run": {"type": "integer", "minimum": 0}, "path": {"type": "string"}, "reason": {"type": "string"}, "contract_migration": {"type": "boolean"}, "override_reason": {"type": "string", "description": "deploy to production while the line is stopped; recorded as line_overridden"}}},
  "Deploy": {"type": "object", "properties": {"id": {"type": "integer"}, "project": {"type": "string"}, "environment": {"type": "string"}, "version": {"type": "string"}, "strategy": {"type": "string"}, "phase": {}, "run_id": {"type": "integer"}, "commit": {"type": "string"}, "requested_at_ms": {"type": "integer"}, "finished_at_ms": {"type": "integer"}, "verdicts": {"type": "array"}, "reason": {"type": "string"}}},
  "Environment": {"type": "object", "properties": {"name": {"type": "string"}, "after": {"type": ["string", "null"]}, "strategy": {"type": "string"}, "stable": {"type": ["string", "null"]}, "current_deploy": {"type": ["integer", "null"]}, "weights": {"type": "object"}, "instances": {"type": "array"}, "good_versions": {"type": "array"}}},
  "EnvironmentUp": {"type": "object", "required": ["from"], "additionalProperties": False, "properties": {"from": {"type": "string", "description": "branch, tag or commit"}, "template": {"type": "string", "description": "the environments: entry whose host has {name} (default: the only one)"}, "ttl": {"type": "string", "description": "e.g. 2h (default: the template's ttl)"}}},
  "OnDemandEnvironment": {"type": "object", "properties": {"name": {"type": "string"}, "on_demand": {"type": "boolean"}, "template": {"type": "string"}, "ref": {"type": "string"}, "commit": {"type": "string"}, "run_id": {"type": ["integer", "null"]}, "host": {"type": ["string", "null"]}, "url": {"type": ["string", "null"]}, "ttl_ms": {"type": ["integer", "null"]}, "up_at_ms": {"type": "integer"}, "expires_at_ms": {"type": ["integer", "null"]}, "deploy_id": {"type": ["integer", "null"]}, "status": {"type": "string", "enum": ["waiting", "deploying", "ready", "failed"]}, "stable": {"type": ["string", "null"]}, "current_deploy": {"type": ["integer", "null"]}, "weights": {"type": "object"}, "instances": {"type": "array"}}},
  "CreateToken": {"type": "object", "required": ["name", "role"], "additionalProperties": False, "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}, "role": {"type": "string", "enum": ["viewer", "developer", "deployer", "admin"]}, "environment": {"type": "string"}}},
  "Token": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"}, "environment": {"type": ["string", "null"]}, "created_at_ms": {"type": "integer"}, "revoked": {"type": "boolean"}}},
  "TokenCreated": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"}, "environment": {"type": ["string", "null"]}, "token": {"type": "string"}}},
}

# --- feature flags (crates/andon-server/src/api/flags.rs, api/ofrep.rs) ---
flag_key = P("key", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"})
reason_body = lambda props, required: {"type": "object", "required": required + ["reason"], "additionalProperties": False,
    "properties": {**props, "reason": {"type": "string", "minLength": 1, "description": "why; kept in the audit log"}}}
changed = ref("FlagsChanged")
paths.update({
  "/api/v1/flags": {"get": op("Flags with their per-environment state (viewer)", "flags", 200, ref("FlagList"))},
  "/api/v1/flags/{key}": {
    "get": op("A flag, its schedule and its audit history (viewer)", "flags", 200, ref("FlagDetail"), params=[flag_key]),
    "put": op("Create or replace a flag (developer); validated, 400 names the field", "flags", 200, changed,
              body=reason_body({"flag": ref("Flag")}, ["flag"]), params=[flag_key]),
    "delete": op("Delete a flag (developer); `reason` in the body or `?reason=`; 409 if others need it", "flags", 200, changed,
                 params=[flag_key, query("reason", {"type": "string"})]),
  },
  "/api/v1/flags/{key}/kill": {"post": op("Kill switch: off in one environment, or all (developer)", "flags", 200, changed,
      body=reason_body({"environment": {"type": "string"}}, []), params=[flag_key])},
  "/api/v1/flags/{key}/rollout": {"post": op("Set an environment's rollout percentage (developer)", "flags", 200, changed,
      body=reason_body({"environment": {"type": "string"}, "percentage": {"type": "number", "minimum": 0, "maximum": 100}}, ["environment", "percentage"]), params=[flag_key])},
  "/api/v1/flags/{key}/schedule": {"post": op("Schedule a rollout change; applied by the server's scheduler (developer)", "flags", 201, changed,
      body=reason_body({"at": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "description": "unix ms"}]},
                        "environment": {"type": "string"}, "percentage": {"type": "number", "minimum": 0, "maximum": 100}}, ["at", "environment", "percentage"]),
      params=[flag_key])},
  "/api/v1/flags/{key}/ramp": {"post": op("Start (or restart, with a new plan) or stop a guarded rollout of one environment (developer)", "flags", 200,
      {"allOf": [changed, {"type": "object", "properties": {"message": {"type": "string"}, "ramp": ref("Ramp")}}]},
      body=reason_body({"environment": {"type": "string"}, "stop": {"type": "boolean"}, "ramp": ref("Ramp")}, ["environment"]), params=[flag_key])},
  "/api/v1/flags/segments/{name}": {
    "put": op("Create or replace a segment (developer)", "flags", 200, changed, body=reason_body({"segment": ref("Segment")}, ["segment"]), params=[P("name")]),
    "delete": op("Delete a segment (developer); 409 if rules use it", "flags", 200, changed, params=[P("name"), query("reason", {"type": "string"})]),
  },
  "/api/v1/flags/stale": {"get": op("Temporary flags serving one variant everywhere, unchanged for `days` (viewer)", "flags", 200,
      {"type": "object", "properties": {"days": {"type": "integer"}, "flags": arr({"type": "object", "properties": {
          "key": {"type": "string"}, "variant": {"type": "string"}, "value": {}, "unchanged_days": {"type": "integer"},
          "last_evaluated_ms": {"type": "object", "additionalProperties": {"type": "integer"}}}})}},
      params=[query("days", {"type": "integer", "minimum": 0, "default": 30})])},
  "/api/v1/flags/snapshot": {"get": op("The flag set for in-process SDKs, restricted to the token's environment (or `?environment=`); ETag, 304", "flags", 200,
      ref("FlagSet"), params=[query("environment", {"type": "string"})])},
  "/api/v1/flags/apply": {"post": op("Flags as code: the document becomes the flags; the diff is returned, applied unless dry_run (developer)", "flags", 200,
      {"allOf": [changed, {"type": "object", "properties": {"dry_run": {"type": "boolean"}, "applied": {"type": "boolean"}}}]},
      body={"type": "object", "required": ["document"], "additionalProperties": False, "properties": {
          "document": ref("FlagSet"), "dry_run": {"type": "boolean"}, "reason": {"type": "string", "description": "required unless dry_run"}}})},
  "/api/v1/flags/import/unleash": {"post": op("Import an Unleash features document into one environment (developer)", "flags", 200,
      {"allOf": [changed, {"type": "object", "properties": {"imported": arr({"type": "string"})}}]},
      body={"type": "object", "required": ["document", "environment"], "additionalProperties": False, "properties": {
          "document": {"description": "Unleash /api/client/features JSON, or a string of it"}, "environment": {"type": "string"},
          "dry_run": {"type": "boolean"}, "reason": {"type": "string"}}})},
  "/api/v1/flags/exposures": {"post": op("SDK report: evaluations, errors and outcomes per flag and variant; one flag_exposures event (viewer; SDKs report with their read tokens)", "flags", 202,
      body={"type": "object", "required": ["environment", "counts"], "additionalProperties": False, "properties": {
          "environment": {"type": "string"},
          "counts": {"type": "object", "maxProperties": 1000, "additionalProperties": {"type": "object", "maxProperties": 100, "additionalProperties": {
              "type": "object", "properties": {"evaluations": {"type": "integer"}, "errors": {"type": "integer"}, "outcomes": {"type": "integer"}}}}}}})},
})

ofrep_note = ("OpenFeature Remote Evaluation Protocol, as its openapi.yaml (0.3.0) specifies. Auth: `Authorization: Bearer` or `X-API-Key`, any token. "
              "Environment: the token's scope, else context attribute `environment`, else `production`. Reasons OFREP lacks are mapped "
              "(DEFAULT -> UNKNOWN, PREREQUISITE_FAILED -> DISABLED) with the exact one in metadata.andonReason.")
ofrep_item = {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}, "value": {}, "reason": {"type": "string"},
    "variant": {"type": "string"}, "metadata": {"type": "object"}, "errorCode": {"type": "string"}, "errorDetails": {"type": "string"}}}
ofrep_req = {"type": "object", "required": ["context"], "properties": {"context": {"type": "object", "additionalProperties": True,
    "properties": {"targetingKey": {"type": "string"}, "environment": {"type": "string"}}}}}
def ofrep_op(summary, ok_schema, extra_responses):
    r = {"200": {"description": "evaluated", "content": {"application/json": {"schema": ok_schema}}},
         "400": {"description": "PARSE_ERROR, INVALID_CONTEXT, TARGETING_KEY_MISSING or GENERAL", "content": {"application/json": {"schema": ofrep_item}}},
         "401": {"description": "missing or invalid token"}, "403": {"description": "token scoped to another environment"},
         "429": {"description": "too many failed authentications"}}
    r.update(extra_responses)
    return {"summary": summary, "description": ofrep_note, "tags": ["ofrep"], "security": [{"bearer": []}, {"apiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ofrep_req}}}, "responses": r}
paths.update({
  "/ofrep/v1/evaluate/flags/{key}": {"post": {**ofrep_op("OFREP: evaluate one flag", ofrep_item,
      {"404": {"description": "FLAG_NOT_FOUND", "content": {"application/json": {"schema": ofrep_item}}}}), "parameters": [P("key")]}},
  "/ofrep/v1/evaluate/flags": {"post": {**ofrep_op("OFREP: evaluate every flag (ETag; If-None-Match answers 304)",
      {"type": "object", "required": ["flags"], "properties": {"flags": arr(ofrep_item), "eventStreams": arr({"type": "object"}), "metadata": {"type": "object"}}},
      {"304": {"description": "not modified"}}),
      "parameters": [{"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
                     query("flagConfigEtag", {"type": "string"}), query("flagConfigLastModified", {"type": "string"})]}},
  "/ofrep/v1/events": {"get": {"summary": "Flag change notifications (SSE, OFREP ADR-0008): `event: message`, `id: VERSION`, data `{type: refetchEvaluation, etag, lastModified}`; resumes from Last-Event-ID",
      "tags": ["ofrep"], "security": [{"bearer": []}, {"apiKey": []}],
      "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "401": {"description": "missing or invalid token"}}}},
})

schemas.update({
  "Flag": {"type": "object", "description": "andon-flags' model (crates/andon-flags/src/model.rs)", "additionalProperties": False, "properties": {
      "key": {"type": "string"}, "kind": {"type": "string", "enum": ["bool", "string", "number", "json"]}, "variants": {"type": "object"},
      "description": {"type": "string"}, "owner": {"type": "string"}, "tags": arr({"type": "string"}), "temporary": {"type": "boolean"},
      "environments": {"type": "object", "additionalProperties": {"type": "object", "properties": {
          "enabled": {"type": "boolean"}, "default_variant": {"type": "string"}, "off_variant": {"type": "string"},
          "prerequisites": arr({"type": "object"}), "rules": arr({"type": "object"}), "ramp": ref("Ramp")}}}}},
  "Ramp": {"type": "object", "description": "a guarded rollout (docs/flags-guarded.md)", "additionalProperties": False, "required": ["steps", "every"], "properties": {
      "steps": arr({"type": "number", "exclusiveMinimum": 0, "maximum": 100}), "every": {"type": "string", "description": "500ms, 30s, 10m, 2h, 1d"},
      "min_outcomes": {"type": "integer", "minimum": 1, "default": 100}, "alpha": {"type": "number", "default": 0.01},
      "variant": {"type": "string"}, "control": {"type": "string"}, "project": {"type": "string"},
      "state": {"type": "object", "description": "progress, written by the server", "properties": {
          "status": {"type": "string", "enum": ["running", "completed", "rolled_back", "stopped"]}, "step": {"type": "integer"},
          "started_ms": {"type": "integer"}, "step_started_ms": {"type": "integer"}, "before": {"type": "number"}, "detail": {"type": "string"}}}}},
  "Segment": {"type": "object", "additionalProperties": False, "properties": {"description": {"type": "string"}, "conditions": arr({"type": "object"})}},
  "FlagSet": {"type": "object", "additionalProperties": False, "properties": {
      "flags": {"type": "object", "additionalProperties": ref("Flag")}, "segments": {"type": "object", "additionalProperties": ref("Segment")},
      "schedule": arr({"type": "object", "required": ["at", "flag", "env", "set_rollout_percent"], "properties": {
          "at": {"type": "integer"}, "flag": {"type": "string"}, "env": {"type": "string"}, "set_rollout_percent": {"type": "number"}}})}},
  "FlagsChanged": {"type": "object", "properties": {"version": {"type": "integer", "description": "sequence number of the last flag event"},
      "changes": arr({"type": "string", "description": "diff line, e.g. `~ flag checkout env production: enabled true -> false`"})},
      "additionalProperties": True},
  "FlagList": {"type": "object", "properties": {"version": {"type": "integer"}, "segments": arr({"type": "string"}), "flags": arr({"type": "object", "properties": {
      "key": {"type": "string"}, "kind": {"type": "string"}, "temporary": {"type": "boolean"}, "scheduled": {"type": "integer"},
      "last_changed_ms": {"type": ["integer", "null"]},
      "environments": {"type": "object", "additionalProperties": {"type": "object", "properties": {
          "enabled": {"type": "boolean"}, "rules": {"type": "integer"}, "rollout": {"type": ["number", "null"]}, "default_variant": {"type": ["string", "null"]}}}}}})}},
  "FlagDetail": {"type": "object", "properties": {"key": {"type": "string"}, "flag": ref("Flag"), "version": {"type": "integer"},
      "schedule": arr({"type": "object", "properties": {"at": {"type": "integer"}, "env": {"type": "string"}, "percentage": {"type": "number"},
          "reason": {"type": "string"}, "by": {"type": "string"}}}),
      "history": arr({"type": "object", "properties": {"seq": {"type": "integer"}, "at_ms": {"type": "integer"}, "actor": {"type": "string"},
          "reason": {"type": "string"}, "action": {"type": "string", "enum": ["created", "changed", "deleted"]}, "changes": arr({"type": "string"})}}),
      "last_evaluated_ms": {"type": "object", "additionalProperties": {"type": "integer"}},
      "guard": {"type": "object", "description": "the guard's latest verdict per environment with a running ramp", "additionalProperties": {"type": "string"}}}},
})

# --- flow: the cord, DORA metrics, incidents, board, notifications (crates/andon-server/src/api/flow.rs) ---
num_or_null = {"type": ["number", "null"]}
inc_id = P("id", {"type": "integer", "minimum": 0})
paths.update({
  "/api/v1/projects/{project}/gate": {"get": op("Is trunk green? 200 `{status: green}`, or 423 `{status: stopped, since_ms, run_id, commit, fixer, error}` while the line is stopped (viewer)", "flow", 200,
      {"type": "object", "properties": {"status": {"type": "string", "enum": ["green", "stopped"]}, "since_ms": {"type": "integer"}, "run_id": {"type": "integer"}, "commit": {"type": "string"}, "fixer": {"type": ["string", "null"]}}},
      params=[P("project")], extra={"x-also": {"423": "the line is stopped (same body, status stopped)"}})},
  "/api/v1/projects/{project}/metrics": {"get": op("DORA keys, bands and gear of one environment over a period (viewer); default env: the production environment, default period: the last 30 days", "flow", 200, ref("Metrics"),
      params=[P("project"), query("env", {"type": "string"}), query("since", {"type": "string", "description": "RFC 3339 or YYYY-MM-DD"}), query("until", {"type": "string", "description": "RFC 3339 or YYYY-MM-DD"})])},
  "/api/v1/projects/{project}/incidents": {"get": op("Incidents of a project, newest first (viewer)", "incidents", 200, arr(ref("Incident")), params=[P("project")])},
  "/api/v1/incidents/{id}": {"get": op("One incident with its timeline and postmortem (viewer)", "incidents", 200, ref("Incident"), params=[inc_id])},
  "/api/v1/incidents/{id}/postmortem": {"put": op("Write the blameless postmortem (developer)", "incidents", 200, ref("Incident"),
      body={"type": "object", "additionalProperties": False, "properties": {"went_right": {"type": "string"}, "went_wrong": {"type": "string"}, "action_items": arr({"type": "string"})}}, params=[inc_id])},
  "/api/v1/incidents/{id}/resolve": {"post": op("Resolve an incident (deployer)", "incidents", 200, ref("Incident"),
      body={"type": "object", "additionalProperties": False, "properties": {"note": {"type": "string"}}}, params=[inc_id])},
  "/api/v1/projects/{project}/board": {"get": op("The board: columns with cards and WIP limits, card lead/cycle time, cumulative flow over 30 days (viewer)", "board", 200, {"type": "object"}, params=[P("project")])},
  "/api/v1/projects/{project}/cards": {"post": op("Create a card, in the first column unless `column` (developer)", "board", 201, {"type": "object"},
      body={"type": "object", "required": ["title"], "additionalProperties": False, "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 500}, "column": {"type": "string"}}}, params=[P("project")])},
  "/api/v1/projects/{project}/cards/{id}/move": {"post": op("Move a card (developer); a full column answers 409 unless an admin gives override_reason", "board", 200, {"type": "object"},
      body={"type": "object", "required": ["to"], "additionalProperties": False, "properties": {"to": {"type": "string"}, "override_reason": {"type": "string"}}}, params=[P("project"), inc_id])},
  "/api/v1/projects/{project}/notifications": {"get": op("Notification delivery attempts, newest first (viewer)", "flow", 200, arr({"type": "object"}), params=[P("project")])},
})
schemas.update({
  "Metrics": {"type": "object", "required": ["deployment_frequency_per_day", "lead_time_median_s", "change_failure_rate", "time_to_restore_median_s", "bands", "gear"], "properties": {
      "deployment_frequency_per_day": num_or_null, "lead_time_median_s": num_or_null, "lead_time_p90_s": num_or_null, "change_failure_rate": num_or_null,
      "time_to_restore_median_s": num_or_null, "time_to_green_median_s": num_or_null, "bands": {"type": "object", "additionalProperties": {"type": "string"}},
      "gear": {"type": ["object", "null"]}, "project": {"type": "string"}, "environment": {"type": "string"}, "since_ms": {"type": "integer"}, "until_ms": {"type": "integer"}}},
  "Incident": {"type": "object", "properties": {"id": {"type": "integer"}, "project": {"type": "string"}, "environment": {"type": "string"}, "deploy_id": {"type": ["integer", "null"]},
      "title": {"type": "string"}, "opened_at_ms": {"type": "integer"}, "resolved_at_ms": {"type": ["integer", "null"]}, "timeline": arr({"type": "object"}), "postmortem": {"type": ["object", "null"]}}},
})

# --- remote agents (crates/andon-server/src/api/agents.rs); agent tokens need the developer role ---
lease_p = P("lease", {"type": "string", "pattern": "^lease_[0-9a-f]{24}$"})
digest_p = P("digest", {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"})
held = {"type": "object", "properties": {"held": {"type": "boolean"}}}
agent_artifact = {"type": "object", "required": ["path", "digest", "size"], "properties": {"path": {"type": "string"}, "digest": {"type": "string"}, "size": {"type": "integer"}}}
paths.update({
  "/api/v1/agents": {"get": op("Agents seen lately (name, labels, jobs held) and attempts waiting for one (viewer)", "agents", 200, {"type": "object", "properties": {
      "agents": arr({"type": "object"}), "queued": arr({"type": "object"}), "lease_ttl_ms": {"type": "integer"}}})},
  "/api/v1/agents/lease": {"post": op("Long poll for work (developer): answers at once with the oldest attempt whose `runs_on` labels the agent has all of, or 204 after `wait_ms` (at most 30 s). The answer holds the lease id, its TTL, the job, its secrets and its inputs (artifacts of the jobs it needs)", "agents", 200,
      {"type": "object", "required": ["lease", "ttl_ms", "heartbeat_ms", "run_id", "job", "attempt", "spec"], "properties": {
          "lease": {"type": "string"}, "ttl_ms": {"type": "integer"}, "heartbeat_ms": {"type": "integer"}, "run_id": {"type": "integer"}, "project": {"type": "string"},
          "commit": {"type": "string"}, "job": {"type": "string"}, "attempt": {"type": "integer"}, "spec": {"type": "object"}, "inputs": arr(agent_artifact)}},
      body={"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
          "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}, "labels": arr({"type": "string"}), "wait_ms": {"type": "integer", "minimum": 0}},
          "example": {"name": "agent-1", "labels": ["linux"], "wait_ms": 0}},
      extra={"x-also": {"204": "no work within wait_ms"}})},
  "/api/v1/agents/leases/{lease}/heartbeat": {"post": op("Renew a lease (developer); held up to a fifth of the TTL and answered 409 at once when the lease is taken back (run cancelled, expired): the agent must kill the job", "agents", 200, held, params=[lease_p])},
  "/api/v1/agents/leases/{lease}/started": {"post": op("The job's process started on the agent: records job_started (developer)", "agents", 200, held, params=[lease_p])},
  "/api/v1/agents/leases/{lease}/log": {"post": op("A batch of the job's log lines, in order (developer)", "agents", 200, held, body={"type": "object", "required": ["lines"], "additionalProperties": False, "properties": {"lines": arr({"type": "string"})}}, params=[lease_p])},
  "/api/v1/agents/leases/{lease}/finish": {"post": op("The attempt's one report (developer); 409 when the lease is no longer held (a stale lease never reports). Artifacts must be uploaded first", "agents", 200, {"type": "object", "properties": {"accepted": {"type": "boolean"}}},
      body={"type": "object", "required": ["outcome"], "additionalProperties": False, "properties": {
          "outcome": {"type": "string", "enum": ["passed", "failed", "timed_out", "cancelled"]}, "exit_code": {"type": ["integer", "null"]}, "duration_ms": {"type": "integer"},
          "tests": {"type": ["object", "null"], "properties": {"passed": {"type": "integer"}, "failed": {"type": "integer"}, "skipped": {"type": "integer"}}},
          "failed_tests": arr({"type": "string"}), "artifacts": arr(agent_artifact), "reason": {"type": ["string", "null"]}}}, params=[lease_p])},
  "/api/v1/agents/leases/{lease}/source": {"get": op("The run's commit as a tar stream (`git archive` of the server's mirror) (developer)", "agents", 200, {"type": "string", "format": "binary"}, params=[lease_p], ok_ct="application/x-tar")},
  "/api/v1/agents/artifacts/{digest}": {
    "get": op("Download an artifact blob, verified against its digest (viewer; the same as `/api/v1/artifacts/{digest}`)", "agents", 200, {"type": "string", "format": "binary"}, params=[digest_p], ok_ct="application/x-tar"),
    "head": op("200 when the server has this blob (nothing to upload), 404 otherwise (developer)", "agents", 200, params=[digest_p]),
    "put": op("Upload a blob by digest (developer); 400 unless the body hashes to it; 200 if already stored, 201 when stored", "agents", 201, {"type": "object", "properties": {"digest": {"type": "string"}, "size": {"type": "integer"}, "stored": {"type": "boolean"}}}, params=[digest_p],
              extra={"requestBody": {"required": True, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}}),
  },
})

doc = {
  "openapi": "3.1.0",
  "info": {"title": "Andon API", "version": "1", "description": "Continuous delivery in one binary. Every /api/v1 call needs `Authorization: Bearer TOKEN`; errors are JSON `{\"error\": {\"code\", \"message\"}}`."},
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "paths": paths,
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": ref("Error")}}}},
    "schemas": schemas,
  },
}
out = pathlib.Path(__file__).resolve().parent.parent / "crates/andon-server/src/openapi.json"
out.write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
