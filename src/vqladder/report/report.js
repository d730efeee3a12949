// The report page: draws everything from the JSON blob in <script id=data>. Charts: vega-embed (inlined).

const D = JSON.parse(document.getElementById("data").textContent);
const app = document.getElementById("app");

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
function section(title, id) { const s = el("section", {id}); s.append(el("h2", {}, title)); app.append(s); return s; }
function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en") : v.toPrecision(4);
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
function kvTable(obj, keys) {
  const t = el("table", {});
  for (const k of keys || Object.keys(obj)) if (obj[k] !== undefined && typeof obj[k] !== "object")
    t.append(el("tr", {}, el("th", {}, k), el("td", {}, fmt(obj[k]))));
  return t;
}
function chart(parent, spec) {
  const div = el("div", {class: "card"});
  parent.append(div);
  spec.$schema = "https://vega.github.io/schema/vega-lite/v5.json";
  vegaEmbed(div, spec, {actions: false, renderer: "svg"}).catch(e => console.error("chart:", e));
}
function show(tok) { return tok.replace(/\n/g, "⏎").replace(/\t/g, "⇥"); }

function header() {
  app.append(el("h1", {}, `vqladder · ${D.kind} · ${D.title}`), el("div", {class: "muted small"}, D.path));
  if (D.note) app.append(el("p", {class: "muted"}, D.note));
}

// -- a compressor run ------------------------------------------------------------------------------------------
function runPage() {
  const s = section("Summary", "summary");
  if (D.rate) s.append(el("p", {}, `${D.rate.in_len} tokens → ${D.rate.out_len} codes` +
      (D.rate.depth > 1 ? ` × ${D.rate.depth} residual stages` : "") +
      ` · codebook ${fmt(D.rate.codebook_size)} · ${D.rate.bits_per_token.toFixed(3)} bits/token · checkpoint ${D.checkpoint}`));
  if (Object.keys(D.results || {}).length) {
    s.append(el("h4", {}, "Held-out results"));
    s.append(kvTable(D.results, Object.keys(D.results).filter(k => !["rank_fingerprints"].includes(k))));
  }
  const cfg = el("details", {}, el("summary", {}, "config.yaml"), el("pre", {}, JSON.stringify(D.config, null, 2)));
  s.append(cfg);
  curves();
  if (D.recon) reconstructions();
  if (D.explorer) explorer();
}

function curves() {
  const rows = (D.metrics || []);
  if (!rows.length) return;
  const s = section("Training curves", "curves");
  const box = el("div", {class: "charts"});
  s.append(box);
  const keys = ["train_loss", "train_acc", "val_acc", "train_usage", "tok_per_s", "mfu", "lr"];
  for (const k of keys) {
    const pts = rows.filter(r => typeof r[k] === "number").map(r => ({step: r.step, value: r[k]}));
    if (!pts.length) continue;
    chart(box, {title: k, width: 330, height: 150, data: {values: pts},
      mark: {type: pts.length > 1 ? "line" : "point", point: pts.length < 30},
      encoding: {x: {field: "step", type: "quantitative"}, y: {field: "value", type: "quantitative", title: k,
        scale: {zero: false}}, tooltip: [{field: "step"}, {field: "value", format: ".4g"}]}});
  }
}

function tokSpans(ids, other, seg, cls) {
  const line = el("span", {class: "line"});
  ids.forEach((t, i) => {
    const wrong = other && other[i] !== t;
    const c = "tok" + (wrong ? " wrong" : "") + ((i + 1) % seg === 0 ? " seg" : "") + (cls ? " " + cls(i) : "");
    line.append(el("span", {class: c, "data-pos": i, title: `position ${i}, token ${t}`}, show(D.tokens[t] ?? "?")));
  });
  return line;
}

function reconstructions() {
  const s = section("Reconstructions (held-out chunks)", "recon");
  const seg = D.explorer ? D.explorer.segment : 1e9;
  s.append(el("p", {class: "muted small"}, "Original above, the decoder's argmax below; wrong tokens in red. " +
    "Blue bars: the token span each code covers."));
  D.recon.forEach((r, k) => {
    const acc = r.orig.filter((t, i) => t === r.pred[i]).length / r.orig.length;
    const row = el("div", {class: "row recon-row", "data-chunk": r.chunk, id: `recon-${k}`},
      el("div", {class: "small muted"}, `val chunk ${r.chunk} · token accuracy ${acc.toFixed(3)}`),
      el("div", {}, el("span", {class: "label"}, "original"), tokSpans(r.orig, null, seg)),
      el("div", {class: "pred"}, el("span", {class: "label"}, "decoded"), tokSpans(r.pred, r.orig, seg)));
    s.append(row);
  });
}

function explorer() {
  const E = D.explorer, byId = new Map(E.codes.map(c => [c.id, c]));
  const s = section("Code explorer", "codes");
  s.append(el("p", {class: "small muted"}, `${E.codes.length.toLocaleString("en")} of ${E.codebook_size.toLocaleString("en")} codes ` +
    `used over ${E.positions.toLocaleString("en")} held-out code positions (${E.chunks} chunks)` +
    (E.depth > 1 ? `; first of ${E.depth} residual stages` : "") +
    `. Each code covers ${E.segment} tokens; search a code id (e.g. #12) or a phrase.`));
  const usage = E.codes.map((c, i) => ({rank: i + 1, count: c.count, id: c.id}));
  const box = el("div", {class: "charts"});
  s.append(box);
  chart(box, {title: "held-out usage by rank", width: 520, height: 140, data: {values: usage}, mark: {type: "line", point: false},
    encoding: {x: {field: "rank", type: "quantitative"}, y: {field: "count", type: "quantitative", scale: {type: "log"}},
      tooltip: [{field: "id", title: "code"}, {field: "count"}]}});
  const search = el("input", {type: "search", id: "explorer-search", placeholder: "code id (#12) or text…"});
  const list = el("div", {id: "code-list"}), detail = el("div", {id: "code-detail"});
  s.append(search, el("div", {id: "explorer"}, list, detail));
  function renderList(codes, hits) {
    const t = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "code"), el("th", {}, "uses"),
      el("th", {}, hits ? "matching spans" : "most frequent span"))));
    const body = el("tbody", {});
    for (const c of codes.slice(0, 300)) body.append(el("tr", {class: "code-row", "data-code": c.id, onclick: () => pick(c.id)},
      el("td", {}, "#" + c.id), el("td", {}, c.count), el("td", {class: "line"}, hits ? hits.get(c.id) : show(c.spans[0][0]))));
    t.append(body);
    list.replaceChildren(el("div", {class: "small muted", id: "code-list-count"}, `${codes.length} codes`), t);
  }
  function pick(id) {
    const c = byId.get(id);
    if (!c) { detail.replaceChildren(el("p", {}, `code #${id} is not used on the held-out chunks`)); return; }
    const spans = el("table", {}, el("tr", {}, el("th", {}, "span"), el("th", {}, "count")),
      c.spans.map(([sp, k]) => el("tr", {}, el("td", {class: "line"}, show(sp)), el("td", {}, k))));
    detail.replaceChildren(el("h4", {id: "detail-title"}, `code #${c.id}`),
      el("div", {}, `${c.count} uses (${(100 * c.count / E.positions).toFixed(2)}% of positions)`), spans,
      el("div", {}, "nearest codes: ", c.near.map(n => el("span", {class: "pill", onclick: () => pick(n)}, "#" + n))));
  }
  search.addEventListener("input", () => {
    const q = search.value.trim();
    if (!q) return renderList(E.codes);
    const m = q.match(/^#?(\d+)$/);
    if (m) { const c = byId.get(+m[1]); renderList(c ? [c] : []); if (c) pick(c.id); return; }
    const ql = q.toLowerCase(), hits = new Map(), found = [];
    for (const c of E.codes) {
      const sp = c.spans.filter(([t]) => t.toLowerCase().includes(ql));
      if (sp.length) { hits.set(c.id, sp.map(([t, k]) => `${show(t)} ×${k}`).join("  ·  ")); found.push([sp.reduce((a, [, k]) => a + k, 0), c]); }
    }
    found.sort((a, b) => b[0] - a[0]);
    renderList(found.map(f => f[1]), hits);
  });
  renderList(E.codes);
  if (E.codes.length) pick(E.codes[0].id);
}

// -- a sweep ---------------------------------------------------------------------------------------------------
function sweepPage() {
  const R = D.references || {}, cells = D.cells || [];
  const s = section("Rate–distortion", "rd");
  if (!cells.length) { s.append(el("p", {}, "no finished cells yet")); return; }
  const pts = cells.map(c => ({...c, model: c.arch === "local" ? "local reference" : "compressor"}));
  const layers = [{mark: {type: "point", filled: true, size: 70},
    encoding: {x: {field: "bits_per_token", type: "quantitative", title: "bits per token"},
      y: {field: "acc", type: "quantitative", title: "held-out token accuracy"},
      color: {field: "codebook_size", type: "nominal", title: "codebook"},
      shape: {field: "model", type: "nominal"},
      tooltip: ["cell", "out_len", "codebook_size", "depth", "arch", {field: "acc", format: ".3f"},
        {field: "bits_per_token", format: ".3f"}, {field: "usage", format: ".3f"}]}}];
  if (typeof R.lm_bits === "number") layers.push({data: {values: [{x: R.lm_bits}]}, mark: {type: "rule", strokeDash: [5, 4]},
    encoding: {x: {field: "x", type: "quantitative"}, tooltip: [{field: "x", title: "LM bound (bits/token)", format: ".3f"}]}});
  if (typeof R.trivial_acc === "number") layers.push({data: {values: [{y: R.trivial_acc}]}, mark: {type: "rule", color: "gray", strokeDash: [2, 3]},
    encoding: {y: {field: "y", type: "quantitative"}, tooltip: [{field: "y", title: "most frequent token", format: ".3f"}]}});
  const box = el("div", {class: "charts"});
  s.append(box);
  chart(box, {width: 560, height: 340, data: {values: pts}, layer: layers});
  const ours = pts.filter(p => p.arch !== "local" && p.depth === 1);
  if (ours.length) chart(box, {title: "accuracy: codes per chunk × codebook", width: 260, height: 260, data: {values: ours},
    mark: "rect", encoding: {x: {field: "codebook_size", type: "ordinal"}, y: {field: "out_len", type: "ordinal", sort: "descending"},
      color: {field: "acc", type: "quantitative"}, tooltip: ["cell", {field: "acc", format: ".3f"}, {field: "bits_per_token", format: ".2f"}]}});
  const gist = pts.filter(p => typeof p.gist_semantic === "number");
  if (gist.length) chart(box, {title: "gist: MiniLM similarity of reconstruction to original", width: 560, height: 260,
    data: {values: gist}, mark: {type: "point", filled: true, size: 60},
    encoding: {x: {field: "bits_per_token", type: "quantitative", scale: {type: "log", base: 2}, title: "bits per token"},
      y: {field: "gist_semantic", type: "quantitative", title: "MiniLM similarity"},
      color: {field: "out_len", type: "nominal", title: "codes/chunk"}, shape: {field: "model", type: "nominal"},
      tooltip: ["cell", {field: "gist_semantic", format: ".3f"}, {field: "gist_semantic_random", format: ".3f"},
        {field: "gist_retrieval_top1", format: ".2f"}]}});
  if (Object.keys(R).length) { const r = section("References", "refs"); r.append(kvTable(R)); }
  markdownSections();
}

function markdownSections() {
  for (const m of D.markdown || []) {
    const s = section(m.name, "md-" + m.name.replace(/\W/g, "-"));
    const div = el("div", {});
    div.innerHTML = m.html;  // escaped on the Python side
    s.append(div);
  }
}

function episodes() {
  const E = D.episodes, s = section("Episodes (held-out mazes)", "episodes");
  s.append(el("p", {class: "small muted"}, "Each contender's plan for the same held-out task, stepped move by move. " +
    "S start, G goal; in the move strip a bar marks where a code begins (the ladder plans in codes of several " +
    "moves, the flat planner in single moves)."));
  const pick = el("select", {id: "episode-select"});
  E.forEach((e, i) => pick.append(el("option", {value: i}, `task ${e.task} · ${e.contender} · ${e.valid && e.reached ? "reached" : "failed"}`)));
  const slider = el("input", {type: "range", id: "episode-step", min: 0, value: 0});
  const label = el("span", {id: "episode-label", class: "small"});
  const grid = el("pre", {id: "episode-maze", class: "maze"}), strip = el("div", {id: "episode-moves", class: "line"});
  s.append(el("div", {}, pick, " step ", slider, " ", label), grid, strip);
  function draw() {
    const e = E[+pick.value], k = +slider.value;
    slider.max = e.cells.length - 1;
    const rows = e.maze.map(r => r.split(""));
    e.cells.slice(1, k + 1).forEach(([r, c]) => { rows[2 * r + 1][2 * c + 1] = "*"; });
    const [ar, ac] = e.cells[Math.min(k, e.cells.length - 1)];
    rows[2 * ar + 1][2 * ac + 1] = "@";
    grid.replaceChildren(...rows.map(r => el("div", {}, r.join(""))));
    label.textContent = `move ${k} of ${e.cells.length - 1} · ${e.evaluations} model evaluations (budget ${e.budget}) · ` +
      `${e.method} + ${e.scorer}` + (e.valid ? "" : " · invalid move") + (e.reached ? " · goal reached" : "");
    const starts = new Set(e.code_starts);
    strip.replaceChildren(...e.moves.split("").map((m, i) => el("span",
      {class: "mv" + (i < k ? " done" : "") + (starts.has(i) ? " code-start" : ""), "data-i": i}, m)));
  }
  pick.addEventListener("change", () => { slider.value = 0; draw(); });
  slider.addEventListener("input", draw);
  draw();
}

function rollouts() {
  const R = D.rollouts, s = section("Rollouts (held-out clips)", "rollouts");
  const kinds = ["truth", "latent", "pixel", "copy_last"];
  s.append(el("p", {class: "small muted"}, `After ${R.context} context frames, each predictor feeds back its own ` +
    `predictions for ${R.horizon} frames: latent (codes), pixel, and copy-last; step through them.`));
  const pick = el("select", {id: "rollout-clip"});
  R.clips.forEach((c, i) => pick.append(el("option", {value: i}, `clip ${i}`)));
  const slider = el("input", {type: "range", id: "rollout-step", min: 0, max: R.horizon - 1, value: 0});
  const label = el("span", {class: "small", id: "rollout-label"});
  const row = el("div", {class: "frames", id: "rollout-frames"});
  s.append(el("div", {}, pick, " frame ", slider, " ", label), row);
  function draw() {
    const c = R.clips[+pick.value], k = +slider.value;
    label.textContent = `t = ${R.context + k + 1} (prediction step ${k + 1} of ${R.horizon})`;
    row.replaceChildren(el("figure", {}, el("img", {src: c.context[c.context.length - 1], class: "frame"}),
      el("figcaption", {}, "last context")), ...kinds.map(kd => el("figure", {"data-kind": kd},
      el("img", {src: c[kd][k], class: "frame"}), el("figcaption", {}, kd.replace("_", " ")))));
  }
  pick.addEventListener("change", draw);
  slider.addEventListener("input", draw);
  draw();
}

function ladderLevels() {
  const s = section("Reconstructions by level (held-out chunks)", "levels");
  s.append(el("p", {class: "small muted"}, "Each level's codes decoded down the ladder with the levels' own " +
    "decoders; wrong tokens in red."));
  const pick = el("select", {id: "level-select"});
  D.levels.forEach((lv, i) => pick.append(el("option", {value: i},
    `level ${lv.level}: ${lv.codes_per_chunk} codes per chunk, ${lv.bits_per_token.toFixed(3)} bits/token, acc ${lv.acc.toFixed(3)}`)));
  const box = el("div", {id: "level-rows"});
  s.append(pick, box);
  function draw() {
    const lv = D.levels[+pick.value];
    box.replaceChildren(...lv.rows.map(r => el("div", {class: "row recon-row", "data-chunk": r.chunk},
      el("div", {}, el("span", {class: "label"}, "original"), tokSpans(r.orig, null, 1e9)),
      el("div", {class: "pred"}, el("span", {class: "label"}, `level ${lv.level}`), tokSpans(r.pred, r.orig, 1e9)))));
  }
  pick.addEventListener("change", draw);
  draw();
}

function embeddings() {
  if ((D.recall_rows || []).length) {
    const s = section("Recall vs bytes per vector", "recall");
    const box = el("div", {class: "charts"});
    s.append(box);
    chart(box, {width: 560, height: 320, data: {values: D.recall_rows}, mark: {type: "line", point: true},
      encoding: {x: {field: "bytes", type: "quantitative", scale: {type: "log", base: 2}, title: "bytes per vector"},
        y: {field: "recall@10", type: "quantitative"}, color: {field: "method", type: "nominal"},
        tooltip: ["method", "bytes", {field: "recall@1", format: ".3f"}, {field: "recall@10", format: ".3f"},
          {field: "recall@100", format: ".3f"}]}});
  }
  if (!(D.concepts || []).length) return;
  const s = section("Concepts: texts that share a level-1 code", "concepts");
  const search = el("input", {type: "search", id: "concept-search", placeholder: "code id (#12) or text…"});
  const list = el("div", {id: "concept-list"});
  s.append(el("p", {class: "small muted"}, `${D.concepts.length} level-1 codes (the coarsest prefix), largest first; ` +
    "each with database texts that get it."), search, list);
  function draw() {
    const q = search.value.trim().toLowerCase(), m = q.match(/^#?(\d+)$/);
    const shown = D.concepts.filter(c => !q || (m ? c.code === +m[1] : c.texts.some(t => t.toLowerCase().includes(q))));
    list.replaceChildren(el("div", {class: "small muted", id: "concept-count"}, `${shown.length} codes`),
      ...shown.slice(0, 60).map(c => el("div", {class: "row concept", "data-code": c.code},
        el("b", {}, `code #${c.code}`), ` · ${c.size} texts`, el("ul", {}, c.texts.map(t => el("li", {}, t))))));
  }
  search.addEventListener("input", draw);
  draw();
}

function experimentPage() {
  if (D.recall_rows || D.concepts) embeddings();
  if (D.levels) ladderLevels();
  if (D.episodes) episodes();
  if (D.rollouts) rollouts();
  if (D.boundaries) {
    const s = section("Segment boundaries (held-out text)", "boundaries");
    const frame = el("iframe", {sandbox: "", id: "boundaries-frame", style: "width:100%;height:520px;border:1px solid #ddd"});
    frame.srcdoc = D.boundaries;   // its own document: the experiment wrote it, escaped
    s.append(frame);
  }
  markdownSections();
  if (Object.keys(D.results || {}).length) {
    const s = section("results.json", "results");
    s.append(el("details", {}, el("summary", {}, "the raw results"), el("pre", {}, JSON.stringify(D.results, null, 2))));
  }
  if ((D.images || []).length) {
    const s = section("Plots", "plots");
    for (const im of D.images) s.append(el("div", {}, el("div", {class: "small muted"}, im.name), el("img", {class: "plot", src: im.src, alt: im.name})));
  }
}

header();
({run: runPage, sweep: sweepPage, ladder: experimentPage, experiment: experimentPage})[D.kind]();
document.body.setAttribute("data-ready", "1");
