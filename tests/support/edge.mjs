// Serves the built worker (build/index.js from scripts/build) with Miniflare
// on its own socket, for tests and benchmarks. Started by start_edge_miniflare
// in scripts/lib.sh; configured through the environment:
//
//   EDGE_HOST=127.0.0.1 EDGE_PORT=8787   listening address (Miniflare's socket)
//   EDGE_HTTPS=1 EDGE_TLS_KEY EDGE_TLS_CERT   serve HTTPS with that key/cert
//   EDGE_VAR_NAMES="A B ..."             environment variables passed as worker vars
//   R2_PRELOAD_DIR=DIR                   put DIR's files into the R2 bucket
//                                        REGISTRY_BUCKET (key = relative path)
//   EDGE_SCRIPT=build/index.js           worker entry (ES module)
//   EDGE_NAME=edge EDGE_STATE_DIR=.stack writes STATE_DIR/NAME.workerd-pid
//   EDGE_LOG_LEVEL=warn                  none|error|warn|info|debug|verbose
//   EDGE_COMPAT_DATE / EDGE_COMPAT_FLAGS default to wrangler.toml's values
//
// Prints "ready URL" once serving (after the R2 preload); on SIGTERM/SIGINT
// prints the workerd peak RSS and exits.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Log, LogLevel, Miniflare } from "miniflare";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const env = process.env;
const name = env.EDGE_NAME || "edge";
const host = env.EDGE_HOST || "127.0.0.1";
const port = Number(env.EDGE_PORT || 8787);
const https = env.EDGE_HTTPS === "1";
const script = path.resolve(root, env.EDGE_SCRIPT || "build/index.js");
const stateDir = path.resolve(root, env.EDGE_STATE_DIR || ".stack");

function fail(msg) {
  console.error(`edge: error: ${msg}`);
  process.exit(1);
}

// Compatibility date and flags: env, else wrangler.toml, else a fixed date.
function compat() {
  let date = env.EDGE_COMPAT_DATE;
  let flags = env.EDGE_COMPAT_FLAGS ? env.EDGE_COMPAT_FLAGS.split(/[\s,]+/).filter(Boolean) : undefined;
  const toml = path.join(root, "wrangler.toml");
  if (fs.existsSync(toml)) {
    const text = fs.readFileSync(toml, "utf8");
    date ??= text.match(/^\s*compatibility_date\s*=\s*"([^"]+)"/m)?.[1];
    const list = text.match(/^\s*compatibility_flags\s*=\s*\[([^\]]*)\]/m)?.[1];
    flags ??= list ? [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]) : undefined;
  }
  return { date: date || "2025-09-01", flags: flags || [] };
}

// Regular files under dir, as paths relative to it with "/" separators.
function listFiles(dir, prefix = "") {
  const out = [];
  for (const entry of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

// The workerd child of this process (Miniflare spawns it).
function findWorkerdPid() {
  for (const task of fs.readdirSync(`/proc/${process.pid}/task`)) {
    const children = fs.readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8");
    for (const pid of children.split(/\s+/).filter(Boolean)) {
      try {
        if (fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd") return Number(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return undefined;
}

function peakRssKb(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmHWM:\s+(\d+)/m)?.[1];
  } catch {
    return undefined;
  }
}

if (!fs.existsSync(script)) fail(`no worker at ${script}: run scripts/build`);
const bindings = {};
for (const key of (env.EDGE_VAR_NAMES || "").split(/\s+/).filter(Boolean)) {
  if (env[key] !== undefined) bindings[key] = env[key];
}
const { date, flags } = compat();
const level = (env.EDGE_LOG_LEVEL || "warn").toUpperCase();
if (!(level in LogLevel)) fail(`unknown EDGE_LOG_LEVEL ${env.EDGE_LOG_LEVEL}`);

const mf = new Miniflare({
  name: "registry-edge",
  modules: true,
  scriptPath: script,
  modulesRoot: path.dirname(script),
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: date,
  compatibilityFlags: flags,
  bindings,
  r2Buckets: ["REGISTRY_BUCKET"],
  kvNamespaces: ["REGISTRY_KV"],
  // Jobs off the request's path (index updates, webhooks, mirror fills), as wrangler.toml
  // declares them; EDGE_QUEUE=0 leaves them out (an edge that keeps no indexes and walks).
  ...(env.EDGE_QUEUE === "0" ? {} : {
    queueProducers: {
      REGISTRY_QUEUE: { queueName: "registry-edge-jobs" },
      REGISTRY_DLQ: { queueName: "registry-edge-dlq" },
    },
    queueConsumers: {
      "registry-edge-jobs": {
        maxBatchSize: 1,
        maxBatchTimeout: 1,
        maxRetries: 3,
        deadLetterQueue: "registry-edge-dlq",
      },
    },
  }),
  host,
  port,
  https,
  ...(https ? { httpsKeyPath: env.EDGE_TLS_KEY, httpsCertPath: env.EDGE_TLS_CERT } : {}),
  cf: false, // no download of the Request.cf template
  log: new Log(LogLevel[level]),
});

let workerdPid;
async function shutdown(signal) {
  if (workerdPid) console.log(`edge: ${name} workerd peak RSS ${peakRssKb(workerdPid)} kB`);
  try {
    await mf.dispose();
  } finally {
    process.exit(signal === "SIGTERM" ? 0 : 130);
  }
}
process.once("SIGTERM", () => shutdown("SIGTERM"));
process.once("SIGINT", () => shutdown("SIGINT"));

const started = Date.now();
const url = await mf.ready;
workerdPid = findWorkerdPid();
if (workerdPid) {
  fs.mkdirSync(stateDir, { recursive: true });
  fs.writeFileSync(path.join(stateDir, `${name}.workerd-pid`), `${workerdPid}\n`);
}

if (env.R2_PRELOAD_DIR) {
  const dir = path.resolve(env.R2_PRELOAD_DIR);
  const bucket = await mf.getR2Bucket("REGISTRY_BUCKET");
  const files = listFiles(dir);
  let bytes = 0;
  let next = 0;
  // A few puts in flight: each is a round trip to workerd.
  async function putWorker() {
    while (next < files.length) {
      const key = files[next++];
      const data = fs.readFileSync(path.join(dir, key));
      await bucket.put(key, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      bytes += data.byteLength;
    }
  }
  await Promise.all(Array.from({ length: Math.min(8, files.length) }, putWorker));
  console.log(`edge: preloaded ${files.length} objects (${bytes} bytes) from ${dir} into R2 REGISTRY_BUCKET`);
}

console.log(
  `edge: ${name} serving ${path.relative(root, script)} (compat ${date}${flags.length ? ` ${flags.join(",")}` : ""}, ` +
    `STORAGE_BACKEND=${bindings.STORAGE_BACKEND ?? "-"}, workerd pid ${workerdPid ?? "?"}) in ${Date.now() - started} ms`,
);
console.log(`ready ${url.href.replace(/\/$/, "")}`);
