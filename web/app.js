// Trainyard's dashboard: one page, hash routes, the public HTTP API with the project's key.
// No build step; uPlot draws the charts. Everything shown comes from the API with the key the
// user signed in with, so it never holds another project's data.
"use strict";

const KEY_STORAGE = "trainyard-api-key";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
let leaving = []; // what the current page must stop (streams, timers) when the route changes

// ---- building blocks ----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "onclick" || name === "onsubmit" || name === "onchange") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function status(state) {
  return el("span", { class: `status ${state}` }, state);
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) =>
      cell instanceof Node ? el("td", {}, cell)
        : el("td", { class: typeof cell === "number" ? "num" : null }, fmt(cell)))))));
}

function link(href, text) {
  return el("a", { href }, text);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// ---- the API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${apiKey()}`, ...(options.headers || {}) },
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) {
    signOut("The API key was refused: sign in again.");
    throw new ApiError(401, body);
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header). Calls
// onEvent(type, data) for each event; resolves when the stream ends; rejects if it cannot open.
async function streamEvents(path, onEvent, signal) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${apiKey()}`, Accept: "text/event-stream" },
    signal,
  });
  if (!response.ok || !response.body) throw new ApiError(response.status, null);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      let parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch { parsed = data.join("\n"); }
      onEvent(type, parsed);
    }
  }
}

// ---- charts -------------------------------------------------------------------------------

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];

// A line chart of named series over a shared x; `container.dataset.points` counts the x values
// drawn (the browser tests read it).
function lineChart(container, xLabel, names, width = 760, height = 280) {
  container.classList.add("chart");
  const series = [{ label: xLabel }, ...names.map((name, i) => ({
    label: name, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true,
  }))];
  const data = [[], ...names.map(() => [])];
  const plot = new uPlot({ width, height, series, scales: { x: { time: false } } }, data, container);
  container.dataset.points = "0";
  return {
    set(xs, columns) {
      data[0] = xs;
      names.forEach((name, i) => { data[i + 1] = columns[name] || xs.map(() => null); });
      plot.setData(data);
      container.dataset.points = String(xs.length);
    },
  };
}

function scatterChart(container, xLabel, yLabel, points) {
  container.classList.add("chart");
  const sorted = [...points].sort((a, b) => a[0] - b[0]);
  new uPlot({
    width: 520, height: 300, scales: { x: { time: false } },
    axes: [{ label: xLabel }, { label: yLabel }],
    series: [{ label: xLabel }, {
      label: yLabel, stroke: COLOURS[0], paths: () => null, points: { show: true, size: 8 },
    }],
  }, [sorted.map((p) => p[0]), sorted.map((p) => p[1])], container);
  container.dataset.points = String(sorted.length);
}

// ---- pages --------------------------------------------------------------------------------

function signInPage(message) {
  nav.hidden = true;
  const input = el("input", { type: "password", name: "key", placeholder: "ty_...", autocomplete: "off" });
  const note = el("p", { class: message ? "error" : "muted" }, message || "Sign in with a project's API key.");
  const form = el("form", {
    class: "sign-in",
    onsubmit: async (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, input.value.trim());
      try {
        await api("/v1/datasets?limit=1");
        nav.hidden = false;
        if (!location.hash || location.hash === "#/sign-in") location.hash = "#/jobs";
        else route();
      } catch (error) {
        sessionStorage.removeItem(KEY_STORAGE);
        if (error.status !== 401) note.textContent = error.message;
      }
    },
  }, el("h1", {}, "Trainyard"), note, input, el("button", { type: "submit" }, "Sign in"));
  main.replaceChildren(form);
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  signInPage(message);
}

async function datasetsPage() {
  const page = await api("/v1/datasets?limit=100");
  main.replaceChildren(el("h1", {}, "Datasets"), table(
    ["Name", "Kind", "Rows", "Columns", "Uploaded"],
    page.items.map((d) => [link(`#/datasets/${d.id}`, d.name), d.kind, d.rows,
      d.columns.length, when(d.created_at)])));
}

function histogram(stats) {
  const counts = stats?.histogram?.counts || [];
  const peak = Math.max(1, ...counts);
  return el("div", { class: "hist", title: `${fmt(stats.min)} .. ${fmt(stats.max)}` },
    counts.map((c) => el("div", { style: `height:${(100 * c) / peak}%` })));
}

async function datasetPage(id) {
  const dataset = await api(`/v1/datasets/${id}`);
  main.replaceChildren(el("h1", {}, `Dataset ${dataset.name}`),
    el("p", { class: "muted" }, `${dataset.rows} rows, ${dataset.kind}, ${dataset.source_format}`));
  if (dataset.kind !== "table") {
    main.append(el("pre", {}, JSON.stringify(dataset.arrays, null, 2)));
    return;
  }
  const profile = await api(`/v1/datasets/${id}/profile`);
  main.append(
    el("h2", {}, "Warnings"),
    profile.warnings.length ? profile.warnings.map((w) => el("div", { class: "warning" },
      `${w.column ?? ""} ${w.code}: ${w.message}`)) : el("p", { class: "muted" }, "None."),
    el("h2", {}, "Columns"),
    table(["Column", "Type", "Missing", "Unique", "Distribution", "Mean", "Std"],
      profile.columns.map((c) => [c.name, c.type, c.missing, c.unique,
        c.numeric ? histogram(c.numeric) : (c.top_values || []).slice(0, 5)
          .map((v) => `${v.value} (${v.count})`).join(", "),
        c.numeric?.mean ?? "", c.numeric?.std ?? ""])));
}

async function jobsPage() {
  const page = await api("/v1/jobs?limit=100");
  main.replaceChildren(el("h1", {}, "Jobs"), table(
    ["Job", "Status", "Epoch", "Study", "Metrics", "Submitted", "Compare"],
    page.items.map((j) => [link(`#/jobs/${j.id}`, j.id), status(j.status),
      j.progress ? `${j.progress.epoch}/${j.progress.epochs}` : "",
      j.study_id ? link(`#/studies/${j.study_id}`, `trial ${j.trial_number}`) : "",
      j.metrics ? Object.entries(j.metrics).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") : "",
      when(j.created_at), el("input", { type: "checkbox", value: j.id, class: "compare-pick" })])),
  el("button", {
    type: "button",
    onclick: () => {
      const ids = [...document.querySelectorAll(".compare-pick:checked")].map((c) => c.value);
      location.hash = `#/compare?ids=${ids.join(",")}`;
    },
  }, "Compare the checked jobs"));
}

// The report's permutation importance: the ten features whose shuffling costs the most.
function importanceOf(importance) {
  if (!importance?.importances?.length) return [];
  const top = importance.importances.slice(0, 10);
  return [el("h2", {}, "Feature importance"),
    table(["Feature", `Drop in ${importance.metric}`, "±"], top.map((f) => [f.feature, f.mean, f.std])),
    el("p", { class: "muted" },
      `shuffling each feature ${importance.repeats} times over ${importance.rows} test rows` +
      (importance.importances.length > 10 ? `; ${importance.importances.length - 10} more in the job's report` : ""))];
}

// {epoch: [...], name: [...]} from GET /v1/jobs/{id}/metrics, per-layer readings left out.
function curvesOf(metrics) {
  const curves = { epoch: [] };
  for (const row of metrics.epochs) {
    const index = curves.epoch.length;
    curves.epoch.push(row.epoch);
    for (const [name, value] of Object.entries(row.values)) {
      if (name.includes("/")) continue;
      (curves[name] ||= [])[index] = value;
    }
  }
  for (const name of Object.keys(curves)) {
    for (let i = 0; i < curves.epoch.length; i++) if (curves[name][i] === undefined) curves[name][i] = null;
  }
  return curves;
}

function confusionMatrix(cm) {
  return el("table", { class: "cm" },
    el("tr", {}, el("th", {}, "true \\ predicted"), cm.labels.map((l) => el("th", {}, fmt(l)))),
    cm.matrix.map((row, i) => el("tr", {}, el("th", {}, fmt(cm.labels[i])),
      row.map((n) => el("td", {}, n)))));
}

// Where the final model trained: what device and precision "auto" chose.
function computeOf(compute) {
  if (!compute) return "";
  const where = compute.device === "cuda" ? `cuda (${compute.device_name})` : "cpu";
  const ranks = compute.ranks > 1 ? `, ${compute.ranks} ranks` : "";
  return el("p", { id: "compute" }, `Trained on ${where}, ${compute.precision}${ranks}`);
}

async function jobPage(id) {
  const job = await api(`/v1/jobs/${id}`);
  const summary = el("div");
  const lossChart = el("div", { id: "loss-chart" });
  const metricChart = el("div", { id: "metric-chart" });
  const warnings = el("div", { id: "warnings" });
  const report = el("div", { id: "report" });
  main.replaceChildren(el("h1", {}, `Job ${id}`), summary,
    el("h2", {}, "Loss"), lossChart, el("h2", {}, "Validation metrics"), metricChart,
    el("h2", {}, "Health warnings"), warnings, report);
  const losses = lineChart(lossChart, "epoch", ["train_loss", "val_loss"]);
  const VALIDATION = {
    classification: ["val_accuracy"], regression: ["val_r2", "val_mae"],
    forecasting: ["val_rmse", "val_mae"], reconstruction: [],
  };
  const valNames = VALIDATION[job.spec.task] || [];
  const metricsPlot = lineChart(metricChart, "epoch", valNames);
  let curves = { epoch: [] };

  const draw = () => {
    losses.set(curves.epoch, curves);
    metricsPlot.set(curves.epoch, curves);
  };
  const show = (current) => {
    const p = current.progress;
    summary.replaceChildren(el("p", {}, status(current.status), " ",
      p ? `epoch ${p.epoch} of ${p.epochs}` : "", p?.samples_per_second ? `, ${fmt(p.samples_per_second)} samples/s` : "",
      p?.eta_seconds ? `, about ${Math.round(p.eta_seconds)} s left` : "",
      current.study_id ? el("span", {}, " (", link(`#/studies/${current.study_id}`, `study trial ${current.trial_number}`), ")") : "",
      current.model_id ? el("span", {}, " model ", el("code", {}, current.model_id)) : ""),
    current.error ? el("div", { class: "error" }, `${current.error.code}: ${current.error.message}`) : "");
    warnings.replaceChildren(...(current.warnings.length
      ? current.warnings.map((w) => el("div", { class: "warning" }, `epoch ${w.epoch} ${w.code}: ${w.message}`))
      : [el("p", { class: "muted" }, "None.")]));
    const evaluation = current.report?.evaluation;
    report.replaceChildren(...(evaluation ? [el("h2", {}, "Test report"),
      table(["Metric", "Value"], Object.entries(evaluation.metrics)),
      evaluation.confusion_matrix ? confusionMatrix(evaluation.confusion_matrix) : "",
      el("p", { class: "muted" }, `${evaluation.rows} test rows`),
      computeOf(current.report.compute),
      ...importanceOf(current.report.permutation_importance)] : []));
  };
  const refresh = async () => {
    const [current, metrics] = await Promise.all([api(`/v1/jobs/${id}`), api(`/v1/jobs/${id}/metrics`)]);
    curves = curvesOf(metrics);
    draw();
    show(current);
    return current;
  };
  const current = await refresh();
  if (current.status !== "queued" && current.status !== "running") return;

  // Live: the job's event stream; polling if it cannot be opened.
  const controller = new AbortController();
  let stopped = false;
  leaving.push(() => { stopped = true; controller.abort(); });
  const onEvent = (type, data) => {
    if (type === "progress" && typeof data.epoch === "number") {
      const values = data.metrics || data;
      if (curves.epoch.at(-1) !== data.epoch) {
        const index = curves.epoch.push(data.epoch) - 1;
        for (const [name, value] of Object.entries(values)) {
          if (typeof value !== "number" || name === "epoch" || name.includes("/")) continue;
          (curves[name] ||= new Array(index).fill(null))[index] = value;
        }
        for (const name of Object.keys(curves)) if (curves[name].length <= index) curves[name][index] = null;
        draw();
      }
    } else if (type === "status" || type === "warning" || type === "end") {
      refresh().catch(() => {});
    }
  };
  try {
    await streamEvents(`/v1/jobs/${id}/events`, onEvent, controller.signal);
    if (!stopped) await refresh();
  } catch (error) {
    if (stopped) return;
    const poll = async () => {
      if (stopped) return;
      const latest = await refresh().catch(() => null);
      if (latest && (latest.status === "queued" || latest.status === "running")) setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
  }
}

async function modelsPage() {
  const page = await api("/v1/models?limit=100");
  main.replaceChildren(el("h1", {}, "Models"), table(
    ["Name", "Latest version", "Versions", "Aliases", "Updated"],
    page.items.map((m) => [link(`#/models/${encodeURIComponent(m.name)}`, m.name), m.latest_version,
      m.versions, Object.entries(m.aliases).map(([a, v]) => `${a} → v${v}`).join(", "),
      when(m.updated_at)])));
}

async function modelPage(name) {
  const page = await api(`/v1/models/${encodeURIComponent(name)}/versions?limit=100`);
  main.replaceChildren(el("h1", {}, `Model ${name}`), table(
    ["Version", "Aliases", "Family", "Test metrics", "Job", "Registered"],
    page.items.map((v) => [v.version, v.aliases.join(", "), v.spec.family || "default",
      Object.entries(v.test_metrics).filter(([, x]) => typeof x === "number")
        .map(([k, x]) => `${k} ${fmt(x)}`).join(", "),
      link(`#/jobs/${v.job_id}`, v.job_id), when(v.created_at)])));
}

async function studiesPage() {
  const page = await api("/v1/studies?limit=100");
  main.replaceChildren(el("h1", {}, "Studies"), table(
    ["Name", "Status", "Objective", "Trials", "Best", "Created"],
    page.items.map((s) => [link(`#/studies/${s.id}`, s.name), status(s.status),
      `${s.objective.direction} ${s.objective.metric}`,
      `${s.trials.length} of ${s.max_trials}`, s.best ? s.best.value : "", when(s.created_at)])));
}

async function studyPage(id) {
  const study = await api(`/v1/studies/${id}`);
  const params = [...new Set(study.trials.flatMap((t) => Object.keys(t.params)))];
  const numeric = params.filter((p) => study.trials.some((t) => typeof t.params[p] === "number"));
  const plot = el("div", { id: "params-plot" });
  const picker = el("select", { onchange: () => drawPlot(picker.value) },
    numeric.map((p) => el("option", { value: p }, p)));
  const drawPlot = (param) => {
    plot.replaceChildren();
    const points = study.trials.filter((t) => t.value !== null && typeof t.params[param] === "number")
      .map((t) => [t.params[param], t.value]);
    if (points.length) scatterChart(plot, param, study.objective.metric, points);
    else plot.append(el("p", { class: "muted" }, "No finished trial yet."));
  };
  main.replaceChildren(el("h1", {}, `Study ${study.name}`),
    el("p", {}, status(study.status), ` ${study.objective.direction} ${study.objective.metric}, `,
      `sampler ${study.sampler}, pruner ${study.pruner}, `,
      Object.entries(study.counts).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ")),
    study.error ? el("div", { class: "error" }, study.error) : "",
    study.best ? el("p", {}, `Best: trial ${study.best.number}, ${study.objective.metric} ${fmt(study.best.value)}, model `,
      el("code", {}, study.best.model)) : "",
    study.importances ? el("div", {}, el("h2", {}, "Parameter importances"),
      table(["Parameter", "Importance"], Object.entries(study.importances))) : "",
    el("h2", {}, "Parameters against the objective"), numeric.length ? picker : "", plot,
    el("h2", {}, "Trials"),
    table(["#", "State", ...params, study.objective.metric, "Epochs", "Seconds", "Job"],
      study.trials.map((t) => [t.number, status(t.state), ...params.map((p) => t.params[p] ?? ""),
        t.value ?? "", t.epochs_run, t.duration_seconds ?? "", link(`#/jobs/${t.job_id}`, t.job_id)])),
    el("button", {
      type: "button",
      onclick: () => { location.hash = `#/compare?ids=${study.trials.slice(0, 20).map((t) => t.job_id).join(",")}`; },
    }, "Compare the trials"));
  if (numeric.length) drawPlot(numeric[0]);
  if (study.status === "running") {
    const timer = setTimeout(() => route(), 3000);
    leaving.push(() => clearTimeout(timer));
  }
}

async function comparePage(query) {
  const ids = (query.get("ids") || "").split(",").filter(Boolean);
  const input = el("input", { size: 80, value: ids.join(","), placeholder: "job_..., job_..." });
  main.replaceChildren(el("h1", {}, "Compare runs"), el("form", {
    onsubmit: (event) => { event.preventDefault(); location.hash = `#/compare?ids=${input.value.replace(/\s/g, "")}`; },
  }, input, el("button", { type: "submit" }, "Compare")));
  if (ids.length < 2) {
    main.append(el("p", { class: "muted" }, "Name two to twenty jobs, or check them in the jobs list."));
    return;
  }
  const comparison = await api(`/v1/jobs/compare?ids=${ids.join(",")}`);
  const names = [...new Set(comparison.jobs.flatMap((j) => Object.keys(j.curves)))].filter((n) => n !== "epoch");
  const metric = el("select", { onchange: () => overlay(metric.value) },
    names.map((n) => el("option", { value: n, selected: n === "val_loss" }, n)));
  const chart = el("div", { id: "compare-chart" });
  const overlay = (name) => {
    chart.replaceChildren();
    const last = Math.max(0, ...comparison.jobs.flatMap((j) => j.curves.epoch || []));
    const xs = Array.from({ length: last }, (_, i) => i + 1);
    const columns = {};
    for (const job of comparison.jobs) {
      const byEpoch = new Map((job.curves.epoch || []).map((e, i) => [e, job.curves[name]?.[i] ?? null]));
      columns[job.id] = xs.map((e) => byEpoch.get(e) ?? null);
    }
    lineChart(chart, "epoch", comparison.jobs.map((j) => j.id)).set(xs, columns);
  };
  main.append(el("h2", {}, "Curves"), metric, chart,
    el("h2", {}, "Spec differences"),
    table(["Path", ...comparison.jobs.map((j) => j.id)],
      comparison.spec_differences.map((d) => [d.path, ...d.values])),
    el("h2", {}, "Best and last epochs"),
    table(["Job", "Status", "Epochs", "Best", "Last"], comparison.jobs.map((j) => [
      link(`#/jobs/${j.id}`, j.id), status(j.status), j.epochs_run,
      j.best ? `epoch ${j.best.epoch}: ${Object.entries(j.best.values).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}` : "",
      j.last ? `epoch ${j.last.epoch}: ${Object.entries(j.last.values).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}` : ""])));
  overlay(names.includes("val_loss") ? "val_loss" : names[0]);
}

// ---- routing ------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/datasets$/, datasetsPage],
  [/^#\/datasets\/([^/?]+)$/, datasetPage],
  [/^#\/jobs$/, jobsPage],
  [/^#\/jobs\/([^/?]+)$/, jobPage],
  [/^#\/models$/, modelsPage],
  [/^#\/models\/([^/?]+)$/, (name) => modelPage(decodeURIComponent(name))],
  [/^#\/studies$/, studiesPage],
  [/^#\/studies\/([^/?]+)$/, studyPage],
];

async function route() {
  for (const stop of leaving) stop();
  leaving = [];
  if (!apiKey()) return signInPage();
  nav.hidden = false;
  const hash = location.hash || "#/jobs";
  try {
    if (hash.startsWith("#/compare")) {
      return await comparePage(new URLSearchParams(hash.split("?")[1] || ""));
    }
    for (const [pattern, page] of ROUTES) {
      const match = hash.match(pattern);
      if (match) return await page(...match.slice(1));
    }
    location.hash = "#/jobs";
  } catch (error) {
    if (error.status === 401) return;
    main.replaceChildren(el("div", { class: "error" }, error.message));
  }
}

document.getElementById("sign-out").onclick = () => signOut();
window.addEventListener("hashchange", route);
route();
