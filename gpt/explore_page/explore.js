// The attention explorer's page script: draws what gpt/explore.py::explore computed. It computes no gradient and
// no probability itself: every number shown is read from the data block, where the engine's backward put it.
"use strict";
(function () {
  // ------------------------------------------------------------------ the data
  function decodeF32(value) {                  // base64 little-endian float32 -> Float32Array (with .shape)
    const bin = atob(value.f32);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const array = new Float32Array(bytes.buffer);
    array.shape = value.shape;
    return array;
  }
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent, (key, value) =>
    value && typeof value === "object" && typeof value.f32 === "string" ? decodeF32(value) : value);
  const M = DATA.model, L = M.n_layer, H = M.n_head, W = DATA.tokens.length, E = DATA.earlier, COLS = E + W;
  const GRADIENTS = ["dP", "dS"];

  // A causal matrix is stored row after row, row i holding what query i sees: E + i + 1 entries
  // (the summed keys before the window first, when there are any). gpt/explore.py::packed_index writes it.
  const rowOffset = i => i * E + i * (i + 1) / 2;
  function matrix(name) {                       // {array, rows} of "P" or the selected target's "dP" / "dS"
    if (name === "P") return { array: DATA.attention, rows: W };
    const target = selectedTarget();
    return target ? { array: target[name], rows: selectedEntry().position + 1 } : null;
  }
  function value(m, layer, head, i, c) {        // null where the query cannot see the key (the mask)
    if (c > E + i) return null;
    if (i >= m.rows) return 0;                  // a query after the chosen position: no gradient reaches it
    return m.array[(layer * H + head) * rowOffset(m.rows) + rowOffset(i) + c];
  }

  const state = { layer: 0, head: 0, matrix: "P", entry: DATA.backward.length - 1, target: 0, scale: "head",
                  query: null };
  const selectedEntry = () => DATA.backward[state.entry];
  const selectedTarget = () => selectedEntry() && selectedEntry().targets[state.target];

  // ------------------------------------------------------------------ formatting and colours
  const show = s => s.replace(/\n/g, "↵").replace(/ /g, "␣").replace(/\t/g, "⇥");
  const quote = s => `'${show(s)}'`;
  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1e-3 && a < 1e5 ? v.toPrecision(6) : v.toExponential(5);
  }
  const keyLabel = c => c < E ? "…" : show(DATA.tokens[c - E]);          // column c of a matrix: a key, or the sum
  const keyName = c => c < E ? `… (the ${DATA.start} keys before the window)`
                             : `${DATA.start + c - E} ${quote(DATA.tokens[c - E])}`;
  const queryName = i => `${DATA.start + i} ${quote(DATA.tokens[i])}`;
  const MASKED = [232, 232, 232];
  function sequential(t) {                      // 0..1: white to deep blue
    t = Math.max(0, Math.min(1, t));
    return [255 - t * 247, 255 - t * 186, 255 - t * 107];
  }
  function diverging(t) {                       // -1..1: blue, white, red
    t = Math.max(-1, Math.min(1, t));
    return t >= 0 ? [255 - t * 77, 255 - t * 231, 255 - t * 212] : [255 + t * 222, 255 + t * 153, 255 + t * 83];
  }
  const css = rgb => `rgb(${rgb.map(Math.round).join(",")})`;
  function colour(name, v, scale) {
    if (v === null) return MASKED;
    return name === "P" ? sequential(v) : diverging(scale > 0 ? v / scale : 0);
  }
  function headMax(m, layer, head) {
    const size = rowOffset(m.rows), base = (layer * H + head) * size;
    let max = 0;
    for (let n = 0; n < size; n++) max = Math.max(max, Math.abs(m.array[base + n]));
    return max;
  }
  function scaleOf(name, m, layer, head) {      // the |value| that gets the full colour
    if (name === "P") return 1;
    if (state.scale === "head") return headMax(m, layer, head);
    let max = 0;
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) max = Math.max(max, headMax(m, l, h));
    return max;
  }
  function el(tag, attrs, text) {
    const node = tag.includes(":") ? document.createElementNS("http://www.w3.org/2000/svg", tag.split(":")[1])
                                   : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const svgEl = (tag, attrs, text) => el("svg:" + tag, attrs, text);

  // ------------------------------------------------------------------ the layer x head grids
  const grids = {};
  function buildGrid(container, name) {
    container.style.gridTemplateColumns = `auto repeat(${H}, auto)`;
    container.appendChild(el("span"));
    for (let h = 0; h < H; h++) container.appendChild(el("span", { class: "head-label" }, `head ${h}`));
    grids[name] = [];
    for (let l = 0; l < L; l++) {
      container.appendChild(el("span", { class: "layer-label" }, `layer ${l}`));
      for (let h = 0; h < H; h++) {
        const box = el("div");
        const canvas = el("canvas", { width: COLS, height: W, "data-layer": l, "data-head": h,
                                      title: `layer ${l}, head ${h}: click to enlarge`, class: H > 6 ? "small" : "" });
        canvas.addEventListener("click", () => selectHead(l, h, name));
        box.appendChild(canvas);
        const caption = el("div", { class: "head-max" });
        if (name !== "P") box.appendChild(caption);
        container.appendChild(box);
        grids[name].push({ canvas, caption });
      }
    }
  }
  function drawGrid(name) {
    const m = matrix(name);
    grids[name].forEach(({ canvas, caption }, n) => {
      const layer = Math.floor(n / H), head = n % H;
      canvas.classList.toggle("selected", layer === state.layer && head === state.head && name === state.matrix);
      const ctx = canvas.getContext("2d"), image = ctx.createImageData(COLS, W);
      const scale = m ? scaleOf(name, m, layer, head) : 0;
      for (let i = 0; i < W; i++) {
        for (let c = 0; c < COLS; c++) {
          const rgb = m ? colour(name, value(m, layer, head, i, c), scale) : MASKED, p = 4 * (i * COLS + c);
          image.data[p] = rgb[0]; image.data[p + 1] = rgb[1]; image.data[p + 2] = rgb[2]; image.data[p + 3] = 255;
        }
      }
      ctx.putImageData(image, 0, 0);
      if (name !== "P") caption.textContent = m ? `max ${headMax(m, layer, head).toPrecision(3)}` : "";
    });
  }
  function selectHead(layer, head, name) {
    Object.assign(state, { layer, head, matrix: name, query: null });
    redraw();
  }

  // ------------------------------------------------------------------ the enlarged head
  function drawHead() {
    const name = state.matrix, m = matrix(name), { layer, head } = state;
    const target = selectedTarget();
    document.getElementById("head-title").textContent = `layer ${layer}, head ${head}: ${name}` +
      (name === "P" ? "" : ` of the loss of ${quote(target.label)} at position ` +
                            `${DATA.start + selectedEntry().position}`);
    document.getElementById("head-formula").textContent = DATA.panels[name === "P" ? "attention" : name].formula;
    document.querySelectorAll("#matrix-tabs button").forEach(b => {
      b.classList.toggle("active", b.dataset.matrix === name);
      b.disabled = b.dataset.matrix !== "P" && !target;
    });
    const cs = Math.max(6, Math.min(22, Math.floor(420 / COLS))), left = 90, top = 90, every = Math.ceil(12 / cs);
    headLayout = { cs, top, every };
    const svg = document.getElementById("head-matrix");
    svg.replaceChildren();
    svg.setAttribute("width", left + COLS * cs + 4);
    svg.setAttribute("height", top + W * cs + 4);
    const scale = scaleOf(name, m, layer, head);
    for (let i = 0; i < W; i++) {
      for (let c = 0; c < COLS; c++) {
        const v = value(m, layer, head, i, c);
        const attrs = { x: left + c * cs, y: top + i * cs, width: cs, height: cs, fill: css(colour(name, v, scale)) };
        if (v !== null) Object.assign(attrs, { class: "cell", "data-q": i, "data-k": c });
        svg.appendChild(svgEl("rect", attrs));
      }
    }
    for (let i = 0; i < W; i += every) {
      svg.appendChild(svgEl("text", { x: left - 4, y: top + i * cs + cs / 2 + 4, "text-anchor": "end" },
                            show(DATA.tokens[i])));
    }
    for (let c = 0; c < COLS; c += every) {
      const x = left + c * cs + cs / 2 + 4, y = top - 4;
      svg.appendChild(svgEl("text", { x, y, transform: `rotate(-90 ${x} ${y})` }, keyLabel(c)));
    }
    svg.appendChild(svgEl("text", { x: left, y: 12 }, "key →"));
    svg.appendChild(svgEl("text", { x: 2, y: top - 4 }, "query ↓"));
    drawLines();
  }
  function showCell(i, c) {
    const m = matrix(state.matrix);
    const v = value(m, state.layer, state.head, i, c);
    document.getElementById("readout").textContent =
      `${state.matrix}[layer ${state.layer}, head ${state.head}] query ${queryName(i)}, key ${keyName(c)} = ${fmt(v)}`;
    if (state.query !== i) { state.query = i; drawLines(); }
  }
  // bertviz's head view: queries on the left, keys on the right, one line per pair, darker for larger |value|;
  // rows as tall as the matrix's cells, labels on every `every`-th row (every row once cells are 12px)
  let headLayout = null;
  function drawLines() {
    const name = state.matrix, m = matrix(name), { layer, head } = state, { cs, top, every } = headLayout;
    const x0 = 70, x1 = 210, y = n => top + n * cs + cs / 2;
    const svg = document.getElementById("head-lines");
    svg.replaceChildren();
    svg.setAttribute("width", x1 + 70);
    svg.setAttribute("height", top + COLS * cs + 4);
    svg.appendChild(svgEl("text", { x: x0, y: top - 8, "text-anchor": "end" }, "query"));
    svg.appendChild(svgEl("text", { x: x1, y: top - 8 }, "key"));
    const queries = state.query === null ? [...Array(W).keys()] : [state.query];
    let max = 0;
    for (const i of queries) {
      for (let c = 0; c <= E + i; c++) max = Math.max(max, Math.abs(value(m, layer, head, i, c)));
    }
    for (const i of queries) {
      for (let c = 0; c <= E + i; c++) {
        const v = value(m, layer, head, i, c);
        if (!v || max === 0) continue;
        const colourOf = name === "P" ? [40, 90, 170] : v > 0 ? [178, 24, 43] : [33, 102, 172];
        svg.appendChild(svgEl("line", { x1: x0 + 4, y1: y(E + i), x2: x1 - 4, y2: y(c), stroke: css(colourOf),
          "stroke-width": 2, "stroke-opacity": (Math.abs(v) / max).toFixed(3) }));
      }
    }
    for (let i = 0; i < W; i++) {               // a hover target per query row; a label where there is room
      svg.appendChild(svgEl("rect", { x: 0, y: top + (E + i) * cs, width: x0 + 4, height: cs, fill: "transparent",
                                      class: "query", "data-q": i }));
      if (i % every && i !== state.query) continue;
      const text = svgEl("text", { x: x0, y: y(E + i) + 4, "text-anchor": "end", class: "query", "data-q": i },
                         show(DATA.tokens[i]));
      if (i === state.query) text.classList.add("active");
      svg.appendChild(text);
    }
    for (let c = 0; c < COLS; c += every) {
      svg.appendChild(svgEl("text", { x: x1, y: y(c) + 4 }, keyLabel(c)));
    }
  }

  // ------------------------------------------------------------------ next-token guesses
  function buildGuesses() {
    const table = document.getElementById("guess-table");
    const header = el("tr");
    for (const h of ["position", "token", "real next", "p(real next)"]) header.appendChild(el("th", {}, h));
    for (let k = 0; k < DATA.top_k; k++) header.appendChild(el("th", {}, `guess ${k + 1}`));
    table.appendChild(header);
    DATA.guesses.forEach((guesses, p) => {
      const row = el("tr");
      row.appendChild(el("td", {}, String(DATA.start + p)));
      row.appendChild(el("td", { class: "mono" }, quote(DATA.tokens[p])));
      row.appendChild(el("td", { class: "mono" }, DATA.next[p] === null ? "(end of prompt)" : quote(DATA.next[p])));
      row.appendChild(el("td", {}, DATA.next_prob[p] === null ? "" : fmt(DATA.next_prob[p])));
      const entry = DATA.backward.findIndex(e => e.position === p);
      for (const [label, prob] of guesses) {
        const cell = el("td", { class: "guess mono" }, `${quote(label)} ${prob.toFixed(3)}`);
        cell.appendChild(el("span", { class: "bar", style: `width:${Math.round(prob * 60)}px` }));
        if (label === DATA.next[p]) cell.classList.add("real");
        const target = entry < 0 ? -1 : DATA.backward[entry].targets.findIndex(t => t.label === label);
        if (target >= 0) {
          cell.classList.add("clickable");
          cell.title = "make this the backward target";
          cell.addEventListener("click", () => selectTarget(entry, target));
        }
        row.appendChild(cell);
      }
      table.appendChild(row);
    });
  }

  // ------------------------------------------------------------------ backward: choice of prediction
  function selectTarget(entry, target) {
    state.entry = entry; state.target = target;
    if (state.matrix === "P") state.matrix = "dS";
    redraw();
  }
  function buildPositions() {
    const strip = document.getElementById("position-strip");
    DATA.tokens.forEach((label, p) => {
      const entry = DATA.backward.findIndex(e => e.position === p);
      const chip = el("span", {
        class: "token " + (entry >= 0 ? "explored" : "unexplored"), "data-position": DATA.start + p,
        title: `position ${DATA.start + p}` + (entry >= 0 ? ": click to backpropagate its prediction"
                                                           : ": no gradients precomputed here (see --positions)"),
      }, show(label));
      if (entry >= 0) chip.addEventListener("click", () => selectTarget(entry, 0));
      strip.appendChild(chip);
    });
  }
  function drawChoice() {
    const entry = selectedEntry(), target = selectedTarget();
    document.querySelectorAll("#position-strip .token").forEach(chip =>
      chip.classList.toggle("selected", entry && +chip.dataset.position === DATA.start + entry.position));
    const buttons = document.getElementById("target-buttons");
    buttons.replaceChildren();
    if (!entry) return;
    entry.targets.forEach((t, n) => {
      const kind = t.real ? "(real next)" : `(guess, rank ${t.rank})`;
      const b = el("button", { "data-target": n }, `${quote(t.label)} ${kind} p=${t.prob.toFixed(3)}`);
      b.classList.toggle("active", n === state.target);
      b.addEventListener("click", () => selectTarget(state.entry, n));
      buttons.appendChild(b);
    });
    const t = DATA.start + entry.position;
    document.getElementById("loss-line").textContent = `L = −log p(${quote(target.label)} | tokens 0..${t}) = ` +
      `${fmt(target.loss)}   (p = ${fmt(target.prob)}, rank ${target.rank} of ${M.vocab_size})`;
  }

  // ------------------------------------------------------------------ backward: residual stream and saliency
  function gradReadout(text) { document.getElementById("grad-readout").textContent = text; }
  const columnName = c => c < E ? `… (the ${DATA.start} positions before the window, one norm)`
                                : `position ${keyName(c)}`;
  function drawResidual() {
    const target = selectedTarget(), svg = document.getElementById("residual");
    svg.replaceChildren();
    if (!target) return;
    const cs = Math.max(8, Math.min(28, Math.floor(900 / COLS))), left = 100, rowH = 18;
    svg.setAttribute("width", left + COLS * cs + 4);
    svg.setAttribute("height", L * rowH + 60);
    let max = 0;
    for (const v of target.residual) max = Math.max(max, v);
    for (let l = L - 1, r = 0; l >= 0; l--, r++) {             // the last block on top: the gradient flows down
      svg.appendChild(svgEl("text", { x: left - 6, y: r * rowH + 13, "text-anchor": "end" }, `after block ${l}`));
      for (let c = 0; c < COLS; c++) {
        const v = target.residual[l * COLS + c];
        const rect = svgEl("rect", { x: left + c * cs, y: r * rowH, width: cs - 1, height: rowH - 1,
          fill: css(sequential(max > 0 ? v / max : 0)), class: "cell", "data-block": l, "data-column": c });
        rect.addEventListener("mouseenter",
                              () => gradReadout(`‖∂L/∂x‖ after block ${l} at ${columnName(c)} = ${fmt(v)}`));
        svg.appendChild(rect);
      }
    }
    for (let c = 0; c < COLS; c++) {
      const x = left + c * cs + cs / 2 + 4, y = L * rowH + 6;
      svg.appendChild(svgEl("text", { x, y, transform: `rotate(90 ${x - 8} ${y})` }, keyLabel(c)));
    }
  }
  function drawSaliency() {
    const target = selectedTarget(), strip = document.getElementById("saliency");
    strip.replaceChildren();
    if (!target) return;
    let max = 0;
    for (const v of target.saliency) max = Math.max(max, v);
    for (let c = 0; c < COLS; c++) {
      const v = target.saliency[c];
      const shade = css(sequential(max > 0 ? 0.85 * v / max : 0));
      const chip = el("span", { class: "token", "data-column": c, style: `background:${shade}` });
      chip.appendChild(el("span", {}, keyLabel(c)));
      chip.appendChild(el("small", {}, v.toPrecision(2)));
      chip.addEventListener("mouseenter", () => gradReadout(`‖∂L/∂e‖ at ${columnName(c)} = ${fmt(v)}`));
      strip.appendChild(chip);
    }
  }

  // ------------------------------------------------------------------ the static parts
  function fillMeta() {
    document.getElementById("model-summary").textContent =
      `${L} layers × ${H} heads, n_embd ${M.n_embd}, block_size ${M.block_size}, vocabulary ${M.vocab_size}, ` +
      `${M.n_params.toLocaleString("en")} parameters. Prompt: ${DATA.n_tokens} tokens.`;
    const notes = document.getElementById("notes");
    for (const note of DATA.notes) notes.appendChild(el("li", {}, note));
    const positions = DATA.backward.map(e => DATA.start + e.position);
    document.getElementById("precomputed").textContent = positions.length
      ? `tensorlite's backward was run for ${positions.length} of the ${W} positions shown ` +
        `(${positions.join(", ")}), once for the real next token and once for each of the model's ${DATA.top_k} ` +
        `best guesses other than it; this page computes no gradient itself, it shows those. Other positions: ` +
        `examples/explore_attention.py --positions.`
      : "No gradients were precomputed.";
    document.querySelectorAll(".panel-meta").forEach(p => {
      const panel = DATA.panels[p.dataset.panel];
      p.appendChild(el("span", { class: "formula" }, panel.formula));
      p.appendChild(document.createTextNode(" computed by"));
      for (const code of panel.code) p.appendChild(el("code", {}, code));
      p.appendChild(document.createTextNode(" · derivation:"));
      for (const n of panel.docs) p.appendChild(el("a", { href: `#doc-${n}` }, `§${DATA.doc_sections[n].title || n}`));
    });
    const docs = document.getElementById("doc-sections");
    for (const [n, section] of Object.entries(DATA.doc_sections)) {
      const article = el("article", { id: `doc-${n}` });
      article.appendChild(el("h3", {}, `§${section.title || n}`));
      article.appendChild(el("p", { class: "hint" }, `from ${DATA.doc}`));
      article.appendChild(section.text === null
        ? el("p", {}, `The document did not ship with this install; it is ${DATA.doc} in the tensorlite repository.`)
        : el("pre", {}, section.text));
      docs.appendChild(article);
    }
  }

  function redraw() {
    if (state.matrix !== "P" && !selectedTarget()) state.matrix = "P";
    drawGrid("P");
    for (const name of GRADIENTS) drawGrid(name);
    drawHead();
    drawChoice();
    drawResidual();
    drawSaliency();
  }

  fillMeta();
  buildGrid(document.getElementById("attention-grid"), "P");
  for (const name of GRADIENTS) buildGrid(document.getElementById(`${name}-grid`), name);
  buildGuesses();
  buildPositions();
  document.getElementById("head-matrix").addEventListener("mouseover", e => {
    if (e.target.classList.contains("cell")) showCell(+e.target.dataset.q, +e.target.dataset.k);
  });
  const lines = document.getElementById("head-lines");
  lines.addEventListener("mouseover", e => {
    if (e.target.classList.contains("query") && state.query !== +e.target.dataset.q) {
      state.query = +e.target.dataset.q;
      drawLines();
    }
  });
  lines.addEventListener("mouseleave", () => { state.query = null; drawLines(); });
  document.querySelectorAll("#matrix-tabs button").forEach(b => b.addEventListener("click", () => {
    state.matrix = b.dataset.matrix;
    redraw();
  }));
  document.querySelectorAll("input[name=scale]").forEach(r => r.addEventListener("change", () => {
    state.scale = r.value;
    redraw();
  }));
  redraw();
  document.body.dataset.ready = "true";
})();
