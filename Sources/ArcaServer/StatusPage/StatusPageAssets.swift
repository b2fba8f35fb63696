/// The status page's three files. They are served as they are written here:
/// the script reads the API and builds the page with `textContent` (never
/// markup from data), and the page has no inline script or style, so the
/// Content-Security-Policy can forbid both.
enum StatusPageAssets {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Arca</title>
        <link rel="stylesheet" href="/ui/app.css">
        <script src="/ui/app.js" defer></script>
        </head>
        <body>
        <header>
          <h1>Arca</h1>
          <span id="who"></span>
          <button id="refresh" type="button" hidden>Refresh</button>
          <button id="sign-out" type="button" hidden>Sign out</button>
        </header>
        <main>
          <section id="sign-in">
            <h2>Sign in</h2>
            <p>Paste an API token (<code>arca token --subject NAME --role viewer|operator|admin</code>). It stays in this tab only and is sent to this server only.</p>
            <form id="sign-in-form">
              <label for="token">Token</label>
              <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
              <button id="sign-in-button" type="submit">Sign in</button>
            </form>
            <p id="sign-in-error" class="error" role="alert" hidden></p>
          </section>
          <section id="dashboard" hidden>
            <p id="message" role="status"></p>
            <div class="cards">
              <article id="health-card"><h2>Health</h2><p id="health"></p><ul id="problems"></ul></article>
              <article><h2>Last backup</h2><p id="last-backup"></p><h3>Last failure</h3><p id="last-failure"></p></article>
              <article><h2>Next runs</h2><dl id="next-runs"></dl></article>
              <article><h2>Storage</h2><ul id="storage"></ul></article>
              <article id="stream-card" hidden><h2>Continuous protection</h2><ul id="streams"></ul></article>
            </div>
            <div class="actions">
              <button id="backup-now" type="button" hidden>Back up now</button>
            </div>
            <section id="restore-panel" class="panel" hidden>
              <h2>Restore <span id="restore-id"></span></h2>
              <p>This replaces the contents of the server's database with the backup. Type the backup's id to confirm.</p>
              <label for="restore-confirm">Backup id</label>
              <input id="restore-confirm" type="text" autocomplete="off" spellcheck="false">
              <button id="restore-go" type="button" disabled>Restore</button>
              <button id="restore-cancel" type="button">Cancel</button>
            </section>
            <h2>Backups</h2>
            <table id="backups">
              <thead><tr><th>Backup</th><th>Time</th><th>Size</th><th>Where</th><th>Integrity</th><th>Encrypted</th><th>Kind</th><th></th></tr></thead>
              <tbody></tbody>
            </table>
            <h2>Sizes and durations</h2>
            <div id="chart-box"><svg id="chart" role="img" aria-label="Backup sizes and durations over time"></svg></div>
            <p class="legend"><span class="key size"></span> size <span class="key duration"></span> duration</p>
          </section>
        </main>
        </body>
        </html>
        """#

    static let style = #"""
        :root { color-scheme: light dark; --accent: #2f6f8f; --bad: #b3261e; --good: #2e7d32; --muted: #6b7280; }
        body { font-family: system-ui, sans-serif; margin: 0; line-height: 1.4; }
        header { display: flex; gap: 1rem; align-items: center; padding: 0.6rem 1.5rem; background: var(--accent); color: #fff; }
        header h1 { font-size: 1.3rem; margin: 0; flex: 1; }
        main { padding: 1rem 1.5rem; max-width: 72rem; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: 1rem; }
        article, .panel { border: 1px solid #ccc; border-radius: 6px; padding: 0.2rem 1rem 0.8rem; }
        article h2, .panel h2 { font-size: 1.05rem; } article h3 { font-size: 0.95rem; margin-bottom: 0.2rem; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; font-variant-numeric: tabular-nums; }
        td.number { text-align: right; }
        .ok { color: var(--good); } .bad, .error { color: var(--bad); } .muted { color: var(--muted); }
        button { font: inherit; padding: 0.3rem 0.8rem; cursor: pointer; }
        .actions { margin: 1rem 0; }
        form { display: flex; gap: 0.5rem; align-items: center; flex-wrap: wrap; }
        input { font: inherit; padding: 0.3rem; min-width: 20rem; }
        #chart-box { overflow-x: auto; } #chart { width: 100%; height: 220px; }
        #chart .size { fill: var(--accent); } #chart .duration { stroke: #e07b00; fill: none; stroke-width: 2; }
        #chart .point { fill: #e07b00; } #chart text { font-size: 10px; fill: currentColor; } #chart .axis { stroke: #999; }
        .legend .key { display: inline-block; width: 0.8rem; height: 0.8rem; margin: 0 0.3rem 0 1rem; vertical-align: middle; }
        .legend .size { background: var(--accent); } .legend .duration { background: #e07b00; }
        """#

    static let script = #"""
        "use strict";
        (() => {
          const TOKEN_KEY = "arca.token";
          const ROLES = ["viewer", "operator", "admin"];
          const $ = (id) => document.getElementById(id);
          let token = sessionStorage.getItem(TOKEN_KEY);
          let role = "viewer";
          let timer = null;

          // The token's claims, for the buttons only: the server checks the role of every request.
          function claims(value) {
            try {
              let part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
              while (part.length % 4) part += "=";
              return JSON.parse(atob(part));
            } catch (error) {
              return null;
            }
          }
          const allowed = (needed) => ROLES.indexOf(role) >= ROLES.indexOf(needed);

          async function api(path, options = {}) {
            const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
            if (options.body !== undefined) headers["Content-Type"] = "application/json";
            const response = await fetch(path, {
              method: options.method || "GET", headers, body: options.body, cache: "no-store",
              credentials: "omit", referrerPolicy: "no-referrer",
            });
            let body = null;
            try { body = await response.json(); } catch (error) { body = null; }
            if (response.status === 401) {
              signOut("The token was refused (" + ((body && body.error) || "unauthorized") + "). Paste a valid one.");
              throw new Error("unauthorized");
            }
            if (!response.ok) throw new Error((body && body.error) || "HTTP " + response.status);
            return body;
          }

          function node(tag, text, className) {
            const element = document.createElement(tag);
            if (text !== undefined && text !== null) element.textContent = String(text);
            if (className) element.className = className;
            return element;
          }
          function clear(element) { while (element.firstChild) element.removeChild(element.firstChild); }
          function bytes(count) {
            if (count === undefined || count === null) return "?";
            const units = ["B", "KB", "MB", "GB", "TB"];
            let value = count, unit = 0;
            while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
            return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
          }
          function when(text) { return text ? new Date(text).toLocaleString() : "never"; }
          function seconds(value) { return value === undefined || value === null ? "" : value.toFixed(1) + " s"; }
          function say(text, bad) {
            const message = $("message");
            message.textContent = text || "";
            message.className = bad ? "error" : "";
          }

          function showSignIn(error) {
            $("sign-in").hidden = false;
            $("dashboard").hidden = true;
            $("sign-out").hidden = true;
            $("refresh").hidden = true;
            $("who").textContent = "";
            const shown = $("sign-in-error");
            shown.hidden = !error;
            shown.textContent = error || "";
          }

          function signOut(error) {
            sessionStorage.removeItem(TOKEN_KEY);
            token = null;
            if (timer) { clearInterval(timer); timer = null; }
            showSignIn(error);
          }

          async function signIn(value) {
            token = value.trim();
            const found = claims(token);
            if (!found || !found.role) { signOut("That is not an Arca API token."); return; }
            sessionStorage.setItem(TOKEN_KEY, token);
            role = ROLES.includes(found.role) ? found.role : "viewer";
            try {
              await load();
            } catch (error) {
              return;
            }
            $("who").textContent = (found.sub || "") + " (" + role + ")";
            $("sign-in").hidden = true;
            $("dashboard").hidden = false;
            $("sign-out").hidden = false;
            $("refresh").hidden = false;
            $("backup-now").hidden = !allowed("operator");
            if (!timer) timer = setInterval(() => { load().catch(() => {}); }, 30000);
          }

          async function load() {
            const [status, list] = await Promise.all([api("/api/status"), api("/api/backup")]);
            render(status, list.backups || []);
          }

          function render(status, backups) {
            const health = $("health");
            health.textContent = status.healthy ? "Healthy" : "Needs attention";
            health.className = status.healthy ? "ok" : "bad";
            const problems = $("problems");
            clear(problems);
            for (const problem of status.problems || []) problems.appendChild(node("li", problem, "bad"));

            const last = status.lastBackup;
            $("last-backup").textContent = last
              ? last.id + ", " + when(last.time) + ", " + bytes(last.bytes) + ", " + last.integrity
              : "none yet";
            const failure = status.lastFailure;
            $("last-failure").textContent = failure ? when(failure.time) + " " + failure.action + ": " + (failure.error || "") : "none";

            const runs = $("next-runs");
            clear(runs);
            const scheduler = status.scheduler || {};
            for (const [label, value] of [["Backup", scheduler.nextBackup], ["Cleanup", scheduler.nextCleanup], ["Drill", scheduler.nextDrill]]) {
              if (label === "Drill" && !scheduler.drillSchedule) continue;
              runs.appendChild(node("dt", label));
              runs.appendChild(node("dd", when(value)));
            }
            runs.appendChild(node("dt", "Scheduler"));
            runs.appendChild(node("dd", scheduler.running ? "running" : "not running"));

            const storage = $("storage");
            clear(storage);
            for (const place of status.storage || []) {
              storage.appendChild(node("li", place.place + ": " + place.backups + " backups, " + bytes(place.bytes)
                + (place.freeBytes !== undefined ? ", " + bytes(place.freeBytes) + " free" : "")
                + (place.otherSources !== undefined ? "; " + place.otherSources + " of other databases" : "")));
            }

            const streams = status.streams || [];
            $("stream-card").hidden = streams.length === 0;
            const list = $("streams");
            clear(list);
            for (const stream of streams) {
              const lag = stream.lagSeconds !== undefined ? seconds(stream.lagSeconds) + " behind" : "lag unknown";
              list.appendChild(node("li", "Slot " + stream.slot + ": " + lag
                + (stream.lagBytes !== undefined ? ", " + bytes(stream.lagBytes) + " of WAL not yet in a segment" : "")
                + (stream.retainedWALBytes !== undefined ? ", " + bytes(stream.retainedWALBytes) + " of WAL retained" : "")));
              list.appendChild(node("li", "Restorable from " + when(stream.oldestRestorable) + " to " + when(stream.newestRestorable)));
            }

            const body = document.querySelector("#backups tbody");
            clear(body);
            for (const backup of backups) {
              const row = document.createElement("tr");
              row.dataset.id = backup.id;
              row.appendChild(node("td", backup.id));
              row.appendChild(node("td", when(backup.timestamp)));
              row.appendChild(node("td", bytes(backup.bytes), "number"));
              row.appendChild(node("td", backup.location));
              row.appendChild(node("td", backup.integrity, backup.integrity === "failed" ? "bad" : backup.integrity === "verified" ? "ok" : ""));
              row.appendChild(node("td", backup.encrypted === undefined ? "?" : backup.encrypted ? "yes" : "no"));
              row.appendChild(node("td", backup.base ? "incremental" : "full"));
              const actions = node("td");
              if (allowed("operator") && backup.location === "local") {
                const verify = node("button", "Verify");
                verify.type = "button";
                verify.addEventListener("click", () => verifyBackup(backup.id));
                actions.appendChild(verify);
              }
              if (allowed("admin")) {
                const restore = node("button", "Restore");
                restore.type = "button";
                restore.addEventListener("click", () => askRestore(backup.id));
                actions.appendChild(restore);
              }
              row.appendChild(actions);
              body.appendChild(row);
            }
            chart(backups);
          }

          // Sizes as bars, durations as a line, oldest on the left.
          function chart(backups) {
            const svg = $("chart");
            clear(svg);
            const points = backups.filter((b) => b.timestamp).slice().reverse();
            const width = Math.max(320, points.length * 28 + 60), height = 220, left = 40, bottom = 200, top = 20;
            svg.setAttribute("viewBox", "0 0 " + width + " " + height);
            const ns = "http://www.w3.org/2000/svg";
            const make = (tag, attributes) => {
              const element = document.createElementNS(ns, tag);
              for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
              svg.appendChild(element);
              return element;
            };
            make("line", { x1: left, y1: bottom, x2: width - 10, y2: bottom, class: "axis" });
            if (points.length === 0) return;
            const maxSize = Math.max(...points.map((b) => b.bytes || 0), 1);
            const maxTime = Math.max(...points.map((b) => b.durationSeconds || 0), 0.001);
            const step = (width - left - 20) / points.length;
            let path = "";
            points.forEach((backup, index) => {
              const x = left + index * step + step * 0.15;
              const h = ((backup.bytes || 0) / maxSize) * (bottom - top);
              const bar = make("rect", { x, y: bottom - h, width: step * 0.7, height: h, class: "size" });
              const title = document.createElementNS(ns, "title");
              title.textContent = backup.id + ": " + bytes(backup.bytes) + (backup.durationSeconds !== undefined ? ", " + seconds(backup.durationSeconds) : "");
              bar.appendChild(title);
              if (backup.durationSeconds !== undefined) {
                const cx = x + step * 0.35, cy = bottom - (backup.durationSeconds / maxTime) * (bottom - top);
                path += (path ? " L " : "M ") + cx + " " + cy;
                make("circle", { cx, cy, r: 3, class: "point" });
              }
            });
            if (path) make("path", { d: path, class: "duration" });
            make("text", { x: 2, y: top, class: "label" }).textContent = bytes(maxSize);
            make("text", { x: width - 60, y: top, class: "label" }).textContent = seconds(maxTime);
          }

          async function waitForBackup(id) {
            for (let attempt = 0; attempt < 600; attempt++) {
              const job = await api("/api/backup/" + encodeURIComponent(id));
              if (job.status === "completed") return job;
              if (job.status === "failed") throw new Error(job.error || "the backup failed");
              await new Promise((resolve) => setTimeout(resolve, 1000));
            }
            throw new Error("the backup is still running");
          }

          async function backupNow() {
            const button = $("backup-now");
            button.disabled = true;
            say("Starting a backup…");
            try {
              const started = await api("/api/backup?wait=false", { method: "POST" });
              say("Backup " + started.backupId + " running…");
              await waitForBackup(started.backupId);
              say("Backup " + started.backupId + " complete.");
              await load();
            } catch (error) {
              if (error.message !== "unauthorized") say("The backup failed: " + error.message, true);
            } finally {
              button.disabled = false;
            }
          }

          async function verifyBackup(id) {
            say("Verifying " + id + "…");
            try {
              const result = await api("/api/backup/" + encodeURIComponent(id) + "/verify", { method: "POST" });
              say(id + (result.success ? " is intact." : " failed verification."), !result.success);
              await load();
            } catch (error) {
              if (error.message !== "unauthorized") say("Verification failed: " + error.message, true);
            }
          }

          function askRestore(id) {
            $("restore-panel").hidden = false;
            $("restore-id").textContent = id;
            $("restore-confirm").value = "";
            $("restore-go").disabled = true;
            $("restore-panel").dataset.id = id;
            $("restore-confirm").focus();
          }

          async function restore() {
            const id = $("restore-panel").dataset.id;
            if ($("restore-confirm").value !== id) return;
            $("restore-panel").hidden = true;
            say("Restoring " + id + "…");
            try {
              await api("/api/backup/restore", { method: "POST", body: JSON.stringify({ backupId: id, confirmRestore: true }) });
              say("Restored " + id + ".");
            } catch (error) {
              if (error.message !== "unauthorized") say("The restore failed: " + error.message, true);
            }
          }

          document.addEventListener("DOMContentLoaded", () => {
            $("sign-in-form").addEventListener("submit", (event) => {
              event.preventDefault();
              const field = $("token");
              const value = field.value;
              field.value = "";
              signIn(value);
            });
            $("sign-out").addEventListener("click", () => signOut());
            $("refresh").addEventListener("click", () => { load().catch((error) => say(error.message, true)); });
            $("backup-now").addEventListener("click", backupNow);
            $("restore-confirm").addEventListener("input", () => {
              $("restore-go").disabled = $("restore-confirm").value !== $("restore-panel").dataset.id;
            });
            $("restore-go").addEventListener("click", restore);
            $("restore-cancel").addEventListener("click", () => { $("restore-panel").hidden = true; });
            if (token) signIn(token); else showSignIn();
          });
        })();
        """#
}
