// The event log, followed live. The backlog is read page by page from
// /api/v1/events, then /api/v1/events/stream?after=SEQ carries on from the
// last sequence number, reconnecting with back-off. Only small indexes are
// kept (commit messages, traffic history, the cord, the latest events), so
// memory follows the number of commits and deploys, not of events.

import { get, ApiError } from "./api.js";
import { readSse } from "./sse.js";
import { shortSha, shortDigest, firstLine, label } from "./format.js";

const PAGE = 5000;
/** Backlog bound: past this the oldest history is not indexed. */
const MAX_PAGES = 100;
const RECENT = 80;
const PER_DEPLOY = 400;

const listeners = new Set();
const statusListeners = new Set();

export const hub = {
  lastSeq: 0,
  ready: false,
  state: "off",
  /** commit sha → {project, branch, message, author, committed_at_ms, seen_at_ms} */
  commits: new Map(),
  /** deploy id → [{at, weights}] from traffic_shifted */
  traffic: new Map(),
  /** deploy id → events about it, oldest first (bounded) */
  deployLog: new Map(),
  /** project → {stopped, run_id, commit, at} from line_stopped / line_released */
  lines: new Map(),
  /** run id → project */
  runProject: new Map(),
  /** environment → project, learned from deploy events */
  envProject: new Map(),
  /** the newest events, newest last */
  recent: [],
};

/** Calls fn(envelope) for every new event (and {type: "__backlog"} once the backlog is in). */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn) {
  statusListeners.add(fn);
  fn(hub.state);
  return () => statusListeners.delete(fn);
}

function setState(s) {
  hub.state = s;
  for (const fn of statusListeners) fn(s);
}

function pushBounded(map, key, value, max) {
  let list = map.get(key);
  if (!list) {
    list = [];
    map.set(key, list);
  }
  list.push(value);
  if (list.length > max) list.splice(0, list.length - max);
}

function index(e) {
  switch (e.type) {
    case "commit_seen":
      hub.commits.set(e.commit, {
        project: e.project,
        branch: e.branch,
        message: e.message || "",
        author: e.author || "",
        committed_at_ms: e.committed_at_ms,
        seen_at_ms: e.at_ms,
      });
      break;
    case "run_queued":
      hub.runProject.set(e.run_id, e.project);
      break;
    case "traffic_shifted":
      pushBounded(hub.traffic, e.deploy_id, { at: e.at_ms, weights: e.weights || {} }, PER_DEPLOY);
      break;
    case "line_stopped":
      hub.lines.set(e.project, { stopped: true, run_id: e.run_id, commit: e.commit, at: e.at_ms, actor: e.actor });
      break;
    case "line_released":
      hub.lines.set(e.project, { stopped: false, run_id: e.run_id, at: e.at_ms });
      break;
    default:
      break;
  }
  if (e.deploy_id !== undefined && e.deploy_id !== null) {
    pushBounded(hub.deployLog, e.deploy_id, e, PER_DEPLOY);
  }
  if (e.project && e.environment) hub.envProject.set(e.environment, e.project);
  hub.recent.push(e);
  if (hub.recent.length > RECENT) hub.recent.splice(0, hub.recent.length - RECENT);
}

function take(e) {
  if (!e || typeof e.seq !== "number" || e.seq <= hub.lastSeq) return false;
  hub.lastSeq = e.seq;
  index(e);
  return true;
}

function emit(e) {
  for (const fn of listeners) {
    try {
      fn(e);
    } catch (err) {
      // A page's handler failing must not stop the stream for the others.
      setTimeout(() => { throw err; });
    }
  }
}

let controller = null;

/** Reads the backlog, then follows the stream until stop(). */
export async function start() {
  stop();
  controller = new AbortController();
  const { signal } = controller;
  setState("connecting");
  try {
    for (let page = 0; page < MAX_PAGES && !signal.aborted; page++) {
      const batch = await get(`/api/v1/events?after=${hub.lastSeq}&limit=${PAGE}`, { signal });
      for (const e of batch) take(e);
      if (batch.length < PAGE) break;
    }
  } catch (e) {
    if (signal.aborted) return;
    if (e instanceof ApiError && e.status === 401) return;
    // Fall through: the stream below retries with back-off.
  }
  hub.ready = true;
  emit({ type: "__backlog" });
  follow(signal);
}

async function follow(signal) {
  let backoff = 1000;
  while (!signal.aborted) {
    setState("connecting");
    try {
      await readSse(`/api/v1/events/stream?after=${hub.lastSeq}`, {
        signal,
        onOpen: () => {
          setState("live");
          backoff = 1000;
        },
        onMessage: (m) => {
          let e;
          try {
            e = JSON.parse(m.data);
          } catch {
            return;
          }
          if (take(e)) emit(e);
        },
      });
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        setState("off");
        return;
      }
    }
    if (signal.aborted) break;
    setState("connecting");
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15000);
  }
  setState("off");
}

export function stop() {
  if (controller) controller.abort();
  controller = null;
  setState("off");
}

/** Forgets everything (another token may see other things). */
export function reset() {
  stop();
  hub.lastSeq = 0;
  hub.ready = false;
  for (const k of ["commits", "traffic", "deployLog", "lines", "runProject", "envProject"]) hub[k].clear();
  hub.recent.length = 0;
}

/** Who committed `sha` and what it says, when the log saw it. */
export function commitInfo(sha) {
  return hub.commits.get(sha) || null;
}

/** A one-line sentence for the activity feed. */
export function describe(e) {
  const run = (id) => `run #${id}`;
  switch (e.type) {
    case "commit_seen":
      return `${e.author || "someone"} pushed ${shortSha(e.commit)} to ${e.branch}: “${firstLine(e.message, 60)}”`;
    case "run_queued":
      return `${run(e.run_id)} queued for ${shortSha(e.commit)} (${e.branch})`;
    case "run_started":
      return `${run(e.run_id)} started with ${(e.jobs || []).length} jobs`;
    case "job_started":
      return `${e.job} started in ${run(e.run_id)}`;
    case "job_finished":
      return `${e.job} ${label(e.outcome)} in ${run(e.run_id)}${e.flaky ? " (flaky)" : ""}`;
    case "job_skipped":
      return `${e.job} skipped in ${run(e.run_id)}`;
    case "run_finished":
      return `${run(e.run_id)} ${e.status}`;
    case "deploy_requested":
      return `release #${e.deploy_id} of ${shortDigest(e.version)} to ${e.environment} (${e.strategy})`;
    case "deploy_refused":
      return `release to ${e.environment} refused: ${e.reason}`;
    case "traffic_shifted":
      return `${e.environment}: traffic ${Object.entries(e.weights || {}).map(([v, w]) => `${shortDigest(v)} ${w}%`).join(", ")}`;
    case "judge_verdict":
      return `judge ${e.outcome} on ${e.environment}: ${e.sentence}`;
    case "deploy_paused":
      return `release #${e.deploy_id} paused on ${e.environment}`;
    case "deploy_resumed":
      return `release #${e.deploy_id} resumed on ${e.environment}`;
    case "deploy_finished":
      return `release #${e.deploy_id} on ${e.environment}: ${label(e.outcome)}${e.reason ? ` (${e.reason})` : ""}`;
    case "instance_started":
      return `${e.environment}: instance ${e.instance_id} started`;
    case "instance_ready":
      return `${e.environment}: instance ${e.instance_id} ready`;
    case "instance_stopped":
      return `${e.environment}: instance ${e.instance_id} stopped (${e.reason})`;
    case "line_stopped":
      return `${e.project}: line stopped by ${run(e.run_id)}`;
    case "line_released":
      return `${e.project}: line released`;
    case "incident_opened":
      return `incident #${e.incident_id} opened: ${e.title}`;
    case "incident_resolved":
      return `incident #${e.incident_id} resolved`;
    case "alert_fired":
      return `alert on ${e.environment}: ${e.sentence}`;
    case "flag_changed":
      return `flag ${e.flag} changed`;
    case "card_moved":
      return `card #${e.card_id} moved ${e.from} → ${e.to}`;
    case "project_added":
      return `project ${e.project} added`;
    default:
      return label(e.type);
  }
}
