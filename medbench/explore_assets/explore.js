// medbench explorer: draws the pages of a site written by `medbench explore` from the data
// files the page loads before this one (window.MB_INDEX, MB_TASK, MB_DETAIL). No network.
(function () {
  "use strict";

  const main = document.getElementById("main");

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (typeof x !== "number") return String(x);
    if (digits === 0) return Math.round(x).toLocaleString("en");
    if (Math.abs(x) >= 1e6) return x.toExponential(2);
    return String(+x.toFixed(digits === undefined ? 3 : digits));
  }

  function table(head, rows, attrs) {
    return el("table", attrs || {},
      el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
  }

  const PLOT_CONFIG = { responsive: true, displaylogo: false };

  function settingLabel(s) {
    return `${s.device} · ${s.runtime} · ${s.threads === 0 ? "all cores" : s.threads + " thread(s)"}`;
  }

  // -- front page ------------------------------------------------------------------------------
  function indexPage() {
    const I = window.MB_INDEX;
    main.append(el("h1", {}, "medbench explorer"),
      el("p", {}, `Generated ${I.generated} from tables of schema ${I.schema}. ` +
        "Validation metrics are means over seeds; choose architectures on them and read " +
        "test metrics only for the chosen one."));
    main.append(el("h2", {}, "Tasks"), table(
      ["task", "metric", "architectures", "best by validation (val / test, seeds)",
        "first latency setting", "within 4 ms there"],
      I.tasks.map((t) => [
        el("a", { href: `task-${t.slug}.html` }, t.task), t.metric, fmt(t.architectures, 0),
        t.best ? el("span", {}, el("code", {}, t.best.arch_id),
          ` (${t.best.space}, ${t.best.method}): ${fmt(t.best.val)} / ${fmt(t.best.test)}, ` +
          `${t.best.n_seeds}`) : "–",
        t.setting ? settingLabel(t.setting) : "not measured",
        t.within_4ms === null ? "–" : fmt(t.within_4ms, 0)]),
      { id: "tasks" }));
    main.append(el("h2", {}, "Rows per table"), table(["table", "rows"],
      Object.entries(I.tables).map(([t, n]) => [t, fmt(n, 0)])));
    document.body.dataset.ready = "1";
  }

  // -- a task ------------------------------------------------------------------------------------
  function taskPage() {
    const T = window.MB_TASK;
    const C = Object.fromEntries(T.columns.map((c, i) => [c, i]));
    const hidden = new Set(T.hidden_spaces);
    const methods = [...new Set(T.rows.map((r) => r[C.method]))].sort();
    // as `medbench query`: trained results alone where there are some beside estimates
    const estimates = methods.includes("standalone") && methods.length > 1;
    const state = {
      spaces: new Set(T.spaces.filter((s) => !hidden.has(s))),
      method: estimates ? "standalone" : "all", setting: 0,
      x: T.settings.length ? "latency" : "params", maxLatency: NaN, maxParams: NaN,
      sort: "val", desc: true,
    };
    const X = {
      latency: ["latency (ms)", (r) => hw(r, 0)],
      energy: ["energy per batch (mJ)", (r) => hw(r, 1)],
      params: ["parameters", (r) => r[C.params]],
      macs: ["MACs per forward pass", (r) => r[C.macs]],
    };
    function hw(r, k) {
      const m = r[C.hw][state.setting];
      return m ? m[k] : null;
    }

    main.append(el("h1", {}, T.task),
      el("p", {}, `${T.rows.length} rows (architecture × training method); y: mean validation ` +
        `${T.metric} over seeds. Click a point or a row for the architecture's page.`));
    if (T.hidden_spaces.length) {
      main.append(el("p", { class: "note" }, "Unticked by default: " +
        T.hidden_spaces.map((s) => `${s} (superseded by ${T.superseded[s]})`).join(", ") + "."));
    }
    if (estimates) {
      main.append(el("p", { class: "note" }, "Shown by default: standalone-trained results; " +
        "the weight-sharing estimates (" + methods.filter((m) => m !== "standalone").join(", ") +
        ") under method."));
    }
    const controls = el("form", { id: "filters", onsubmit: (e) => e.preventDefault() });
    controls.append(el("fieldset", {}, el("legend", {}, "space"),
      T.spaces.map((s) => el("label", {},
        el("input", {
          type: "checkbox", name: "space", value: s, ...(state.spaces.has(s) ? { checked: "" } : {}),
          onchange: (e) => { e.target.checked ? state.spaces.add(s) : state.spaces.delete(s); render(); },
        }), s))));
    const select = (id, label, options, value, on) => el("label", {}, label + " ",
      el("select", { id, onchange: (e) => { on(e.target.value); render(); } },
        options.map(([v, text]) => el("option", { value: v, ...(String(v) === String(value) ? { selected: "" } : {}) }, text))));
    controls.append(
      select("method", "method", [["all", "all"], ...methods.map((m) => [m, m])], state.method,
        (v) => { state.method = v; }),
      select("setting", "device", T.settings.length ? T.settings.map((s, i) =>
        [i, `${settingLabel(s)} (${s.n})`]) : [[0, "no hardware rows"]], 0,
        (v) => { state.setting = Number(v); }),
      select("x-axis", "x axis", Object.entries(X).map(([k, v]) => [k, v[0]]), state.x,
        (v) => { state.x = v; }),
      el("label", {}, "max latency (ms) ", el("input", {
        id: "max-latency", type: "number", min: "0", step: "any",
        oninput: (e) => { state.maxLatency = parseFloat(e.target.value); render(); },
      })),
      el("label", {}, "max parameters ", el("input", {
        id: "max-params", type: "number", min: "0", step: "any",
        oninput: (e) => { state.maxParams = parseFloat(e.target.value); render(); },
      })));
    main.append(controls);
    const plot = el("div", { id: "plot", class: "plot" });
    const count = el("p", { id: "count" });
    const tbody = el("tbody", { id: "rows" });
    const cols = [
      ["space", (r) => r[C.space]], ["arch_id", (r) => r[C.arch_id]],
      ["method", (r) => r[C.method]], ["seeds", (r) => r[C.n_seeds]],
      ["val", (r) => r[C.val]], ["± std", (r) => r[C.val_std]], ["test", (r) => r[C.test]],
      ["params", (r) => r[C.params]], ["macs", (r) => r[C.macs]],
      ["latency_ms", (r) => hw(r, 0)], ["energy_mj", (r) => hw(r, 1)],
    ];
    const head = el("tr", {}, cols.map(([name]) => el("th", {
      "data-col": name, title: "sort",
      onclick: () => {
        state.desc = state.sort === name ? !state.desc : ["val", "test", "seeds"].includes(name);
        state.sort = name; render();
      },
    }, name)));
    main.append(plot, count, el("table", { id: "results", class: "sortable" },
      el("thead", {}, head), tbody));

    function filtered() {
      return T.rows.map((r, i) => [r, i]).filter(([r]) => {
        if (!state.spaces.has(r[C.space])) return false;
        if (state.method !== "all" && r[C.method] !== state.method) return false;
        if (!Number.isNaN(state.maxLatency)) {
          const lat = hw(r, 0);
          if (lat === null || lat > state.maxLatency) return false;
        }
        if (!Number.isNaN(state.maxParams) && !(r[C.params] <= state.maxParams)) return false;
        return true;
      });
    }

    function front(points) {  // lowest x for each better y: not dominated
      const sorted = points.filter((p) => p.x !== null && p.y !== null)
        .sort((a, b) => a.x - b.x || b.y - a.y);
      const out = [];
      let best = -Infinity;
      for (const p of sorted) if (p.y > best) { out.push(p); best = p.y; }
      return out;
    }

    let plotted = false;
    function render() {
      const rows = filtered();
      const [xTitle, xOf] = X[state.x];
      const points = rows.map(([r, i]) => ({ x: xOf(r), y: r[C.val], r, i }));
      const traces = [];
      for (const space of T.spaces) {
        const mine = points.filter((p) => p.r[C.space] === space && p.x !== null && p.y !== null);
        if (!mine.length) continue;
        traces.push({
          type: "scatter", mode: "markers", name: space, x: mine.map((p) => p.x),
          y: mine.map((p) => p.y), customdata: mine.map((p) => p.i),
          text: mine.map((p) => `${p.r[C.arch_id]} (${p.r[C.method]}, ${p.r[C.n_seeds]} seeds)`),
          hovertemplate: "%{text}<br>x %{x}<br>val %{y:.4f}<extra></extra>",
          marker: { size: 7, opacity: 0.75 },
        });
      }
      const pf = front(points);
      if (pf.length) {
        traces.push({
          type: "scatter", mode: "lines+markers", name: "Pareto front", x: pf.map((p) => p.x),
          y: pf.map((p) => p.y), customdata: pf.map((p) => p.i), line: { shape: "hv", color: "#222" },
          marker: { size: 9, symbol: "diamond-open", color: "#222" },
          text: pf.map((p) => p.r[C.arch_id]), hovertemplate: "%{text}<extra>front</extra>",
        });
      }
      const layout = {
        margin: { t: 30, r: 20, b: 50, l: 60 }, height: 460,
        xaxis: { title: { text: xTitle }, type: "log" },
        yaxis: { title: { text: `mean validation ${T.metric}` } },
        legend: { orientation: "h", y: -0.2 },
        annotations: traces.length ? [] : [{ text: "nothing left: widen the filters", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
      };
      window.Plotly.react(plot, traces, layout, PLOT_CONFIG);
      if (!plotted) {
        plot.on("plotly_click", (ev) => {
          const p = ev.points && ev.points[0];
          if (p && p.customdata !== undefined) location.href = `arch-${T.slug}.html#${p.customdata}`;
        });
        plotted = true;
      }
      const [, key] = cols.find(([name]) => name === state.sort) || cols[4];
      rows.sort(([a], [b]) => {
        const va = key(a), vb = key(b);
        if (va === vb) return 0;
        if (va === null || va === undefined) return 1;
        if (vb === null || vb === undefined) return -1;
        return (va < vb ? -1 : 1) * (state.desc ? -1 : 1);
      });
      const shown = rows.slice(0, 500);
      count.textContent = `${rows.length} of ${T.rows.length} rows` +
        (rows.length > shown.length ? `; the first ${shown.length} are listed` : "") +
        (T.settings.length ? `; latency and energy on ${settingLabel(T.settings[state.setting])}` : "");
      tbody.replaceChildren(...shown.map(([r, i]) => el("tr", {},
        cols.map(([name, f]) => el("td", {}, name === "arch_id"
          ? el("a", { href: `arch-${T.slug}.html#${i}` }, el("code", {}, f(r)))
          : fmt(f(r), ["seeds", "params", "macs"].includes(name) ? 0 : 4))))));
      for (const th of head.children) {
        th.className = th.dataset.col === state.sort ? (state.desc ? "desc" : "asc") : "";
      }
      document.body.dataset.ready = "1";
    }
    render();
  }

  // -- one architecture ------------------------------------------------------------------------
  function archPage() {
    const T = window.MB_TASK, D = window.MB_DETAIL;
    const C = Object.fromEntries(T.columns.map((c, i) => [c, i]));
    const i = Number.parseInt(location.hash.slice(1), 10);
    window.addEventListener("hashchange", () => location.reload());
    const r = T.rows[i], d = D.details[i];
    if (!r || !d) {
      main.append(el("p", {}, "No such architecture here: ",
        el("a", { href: `task-${T.slug}.html` }, `back to ${T.task}`), "."));
      document.body.dataset.ready = "1";
      return;
    }
    document.title = `${r[C.arch_id]} · ${T.task}`;
    main.append(el("h1", {}, el("code", {}, r[C.arch_id])),
      el("p", {}, el("a", { href: `task-${T.slug}.html` }, T.task), ` · ${r[C.space]} · ${r[C.method]}`),
      table(["seeds", `val ${T.metric} (mean ± std)`, `test ${T.metric}`, "parameters", "MACs"],
        [[r[C.n_seeds], `${fmt(r[C.val], 4)} ± ${fmt(r[C.val_std], 4)}`, fmt(r[C.test], 4),
          fmt(r[C.params], 0), fmt(r[C.macs], 0)]], { id: "summary" }));
    if (d.curves && d.curves.length) {
      const div = el("div", { id: "curves", class: "plot" });
      main.append(el("h2", {}, "Learning curves"), div);
      const traces = [];
      for (const [seed, epochs, val, loss] of d.curves) {
        traces.push({ type: "scatter", mode: "lines", name: `val ${T.metric}, seed ${seed}`, x: epochs, y: val });
        traces.push({ type: "scatter", mode: "lines", name: `train loss, seed ${seed}`, x: epochs, y: loss, yaxis: "y2", line: { dash: "dot" } });
      }
      window.Plotly.newPlot(div, traces, {
        margin: { t: 20, r: 60, b: 50, l: 60 }, height: 420, xaxis: { title: { text: "epoch" } },
        legend: { orientation: "h", y: -0.25 },
        yaxis: { title: { text: `val ${T.metric}` } },
        yaxis2: { title: { text: "train loss" }, overlaying: "y", side: "right" },
      }, PLOT_CONFIG);
    }
    const seeds = d.seeds || [];
    const perClass = seeds.filter((s) => s[3] && s[3].length);
    if (perClass.length && D.class_names.length) {
      const div = el("div", { id: "per-class", class: "plot" });
      main.append(el("h2", {}, `Validation ${T.metric} per class`), div);
      window.Plotly.newPlot(div, perClass.map(([seed, , , pc]) => ({
        type: "bar", name: `seed ${seed}`, x: D.class_names.slice(0, pc.length), y: pc,
      })), { margin: { t: 20, r: 20, b: 40, l: 60 }, height: 300, barmode: "group", yaxis: { range: [0, 1] } }, PLOT_CONFIG);
    }
    main.append(el("h2", {}, "Seeds"), table(["seed", `val ${T.metric}`, `test ${T.metric}`, "val per class"],
      seeds.map(([seed, val, test, pc]) => [seed, fmt(val, 4), fmt(test, 4), (pc || []).map((x) => fmt(x, 3)).join(" / ") || "–"])));
    const proxies = Object.entries(d.proxies || {});
    main.append(el("h2", {}, "Zero-cost proxies (untrained network, mean over seeds)"), proxies.length
      ? table(["proxy", "score", "seeds"], proxies.map(([p, [score, n]]) => [p, fmt(score, 6), n]))
      : el("p", {}, "None computed for this architecture."));
    main.append(el("h2", {}, "Hardware (batch 1)"), d.hardware.length ? table(
      ["device", "runtime", "threads", "latency ms (p10–p90)", "latency", "energy mJ", "energy", "power W"],
      d.hardware.map(([dev, rt, th, lat, p10, p90, lm, en, em, pw]) => [dev, rt, th === 0 ? "all" : th,
        `${fmt(lat, 3)} (${fmt(p10, 3)}–${fmt(p90, 3)})`, lm || "–", fmt(en, 3), em || "–", fmt(pw, 3)]),
      { id: "hardware" }) : el("p", {}, "Not measured."));
    if (d.config) main.append(el("h2", {}, "Configuration"), el("pre", {}, d.config));
    document.body.dataset.ready = "1";
  }

  const pages = { index: indexPage, task: taskPage, arch: archPage };
  pages[document.body.dataset.page]();
})();
