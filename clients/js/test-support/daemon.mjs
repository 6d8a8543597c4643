// A real tickcastd for the Node tests (target/debug, or TICKCASTD), and the
// `tickcast pub` command (or TICKCAST) to publish into it. Not a test file:
// the tests import it (outside test/, so node --test does not run it).
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { writeFileSync, mkdtempSync, accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");

export function binary(env, name) {
  const path = process.env[env] ?? join(ROOT, "target/debug", name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} not found: build it with \`cargo build --bin ${name}\` (scripts/test does), or set ${env}`);
  }
  return path;
}

/** Starts tickcastd on `port` (0: any) with `token` as a publisher token and
 * `config` appended to its file; resolves once it listens. */
export async function startDaemon({ port = 0, token, config = "" }) {
  const dir = mkdtempSync(join(tmpdir(), "tickcast-js-"));
  const cfg = join(dir, "d.toml");
  writeFileSync(cfg, `[auth]\npublisher_tokens = ["${token}"]\n${config}`);
  const proc = spawn(binary("TICKCASTD", "tickcastd"), ["--listen", `127.0.0.1:${port}`, "--config", cfg], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = createInterface({ input: proc.stderr });
  const bound = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("tickcastd did not start")), 10000);
    lines.on("line", (l) => {
      const m = l.match(/ listening on 127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
  });
  return {
    port: bound,
    ws: `ws://127.0.0.1:${bound}/ws`,
    publishUrl: `ws://127.0.0.1:${bound}/publish`,
    /** One update (or, with extra ["--clear"], a clear) by `tickcast pub`. */
    publish(topic, fields = {}, extra = []) {
      execFileSync(binary("TICKCAST", "tickcast"), ["pub", `ws://127.0.0.1:${bound}/publish`, "--token", token, ...extra,
        topic, ...Object.entries(fields).map(([k, v]) => `${k}=${v}`)]);
    },
    stop(signal = "SIGTERM") {
      return new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.on("exit", resolve);
        proc.kill(signal);
      });
    },
  };
}
