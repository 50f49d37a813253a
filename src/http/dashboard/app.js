// The affectd dashboard's page code: the sessions list, one live session, a recorded
// session's review. Charts are uPlot (from npm, built into the binary); the bars of AU
// estimates and expression distributions are plain HTML, read by screen readers.
// What the server sends is described in src/http/dashboard.rs, src/http/feed.rs and
// src/formats/timeline.rs. Everything shown is the server's: the page computes nothing but
// layout (and the mean over faces nowhere: each face is its own series).
"use strict";

(function () {
  const body = document.body;
  const app = document.getElementById("app");
  const PAGE = body.dataset.page;
  const SESSION = body.dataset.session;
  const LIVE_WINDOW_S = 120; // seconds of a live session on its timelines
  const KEEP_S = 600; // seconds kept in memory on a live page

  // Okabe-Ito: distinguishable with every common colour-vision deficiency.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"];
  const BANDS = ["delta", "theta", "alpha", "beta", "gamma"];

  // Exposed for the browser test and for people poking at the page.
  const affectd = (window.affectd = { charts: {}, state: {}, errors: [] });

  // ---------- theme ----------
  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
    const button = document.getElementById("theme");
    if (button) button.textContent = theme === "dark" ? "Light theme" : "Dark theme";
  }
  const stored = localStorage.getItem("affectd-theme");
  const prefersDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  applyTheme(stored || (prefersDark ? "dark" : "light"));
  const themeButton = document.getElementById("theme");
  if (themeButton) {
    themeButton.addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem("affectd-theme", next);
      applyTheme(next);
      for (const chart of Object.values(affectd.charts)) chart.redraw(false, false);
    });
  }
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // ---------- small helpers ----------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const fmt = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
  }
  function showError(message) {
    affectd.errors.push(message);
    let box = document.getElementById("error");
    if (!box) {
      box = el("p", { id: "error", class: "error", role: "alert" });
      app.prepend(box);
    }
    box.textContent = message;
  }
  function clearError() {
    const box = document.getElementById("error");
    if (box) box.remove();
  }
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }
  function setMessage(text) {
    const message = document.getElementById("message");
    if (message) message.textContent = text;
  }

  // ---------- charts ----------
  // A uPlot time chart: x is the client clock in seconds, every axis labelled with its unit.
  function timeChart(id, container, title, yLabel, series, options = {}) {
    const width = Math.max(320, container.clientWidth || 600);
    const opts = {
      title,
      width,
      height: options.height || 200,
      cursor: { sync: { key: "affectd" }, drag: { x: true, y: false } },
      scales: { x: { time: false }, y: options.yRange ? { range: options.yRange } : { auto: true } },
      axes: [
        { label: "time, client clock (s)", stroke: () => css("--text"), grid: { stroke: () => css("--grid") } },
        { label: yLabel, stroke: () => css("--text"), grid: { stroke: () => css("--grid") }, size: 60 },
      ],
      series: [{ label: "t (s)", value: (u, v) => fmt(v, 2) }].concat(
        series.map((s, i) => ({
          label: s.label,
          stroke: s.color || PALETTE[i % PALETTE.length],
          width: s.width || 1.5,
          spanGaps: s.spanGaps !== false,
          points: s.points ? { show: true, size: 7, fill: s.color || PALETTE[i % PALETTE.length] } : { show: false },
          paths: s.points ? () => null : undefined,
          value: (u, v) => fmt(v, s.digits === undefined ? 2 : s.digits),
        })),
      ),
      legend: { live: true },
      hooks: { draw: [(u) => drawMarkers(u, options.markers)], setSelect: options.onSelect ? [options.onSelect] : [] },
    };
    const data = [[]].concat(series.map(() => []));
    const chart = new uPlot(opts, data, container);
    chart.affectdKey = id;
    affectd.charts[id] = chart;
    return chart;
  }

  // Markers as labelled vertical lines, expression episodes as shaded spans (a uPlot draw
  // hook: the library's own way to add annotations).
  function drawMarkers(u, markers) {
    if (!markers) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    for (const episode of markers.episodes || []) {
      const end = episode.offset === null || episode.offset === undefined ? xmax : episode.offset;
      if (end < xmin || episode.onset > xmax) continue;
      const x0 = u.valToPos(Math.max(episode.onset, xmin), "x", true);
      const x1 = u.valToPos(Math.min(end, xmax), "x", true);
      ctx.fillStyle = css("--episode");
      ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
    }
    let lastLabelX = -Infinity;
    for (const marker of markers.list || []) {
      if (marker.t < xmin || marker.t > xmax) continue;
      const x = Math.round(u.valToPos(marker.t, "x", true));
      ctx.strokeStyle = css("--marker");
      ctx.lineWidth = Math.max(1, devicePixelRatio);
      ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      if (x - lastLabelX > 60 * devicePixelRatio) {
        ctx.setLineDash([]);
        ctx.fillStyle = css("--text");
        ctx.fillText(marker.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
        lastLabelX = x;
      }
    }
    ctx.restore();
    void left;
    void width;
  }

  // Columns aligned on one sorted x (uPlot's data layout); `points` are [x, seriesIndex, y].
  function aligned(points, seriesCount) {
    points.sort((a, b) => a[0] - b[0]);
    const data = [[]];
    for (let i = 0; i < seriesCount; i++) data.push([]);
    for (const [x, s, y] of points) {
      const last = data[0].length - 1;
      if (last >= 0 && data[0][last] === x) {
        data[s + 1][last] = y;
        continue;
      }
      data[0].push(x);
      for (let i = 0; i < seriesCount; i++) data[i + 1].push(i === s ? y : null);
    }
    return data;
  }

  // ---------- the timelines shared by live and review ----------
  // Keeps a session's timeline items and draws them.
  class Timelines {
    constructor(container, options) {
      this.options = options;
      this.items = { face: [], fused: [], eeg: [], eda: [], cardiac: [], respiration: [] };
      this.markers = { list: [], episodes: [] };
      this.group = null;
      const row = (title) => {
        const section = el("section", { class: "chart", "aria-label": title });
        container.append(section);
        return section;
      };
      const faceSeries = [];
      for (let face = 1; face <= 3; face++) {
        faceSeries.push({ label: `face ${face} valence`, color: PALETTE[(face * 2) % 8], width: 1 });
        faceSeries.push({ label: `face ${face} arousal`, color: PALETTE[(face * 2 + 1) % 8], width: 1 });
      }
      this.va = timeChart("valence_arousal", row("Valence and arousal"), "Valence and arousal (fused and per face)",
        "valence [-1,1] · arousal [0,1]",
        [{ label: "fused valence", color: PALETTE[0], width: 2.5 }, { label: "fused arousal", color: PALETTE[1], width: 2.5 }].concat(faceSeries),
        { yRange: [-1, 1], markers: this.markers, height: 240, onSelect: options.onSelect });
      const eegSection = row("EEG band powers");
      this.groupSelect = el("select", { id: "eeg-group", "aria-label": "Channel group" });
      this.groupSelect.addEventListener("change", () => {
        this.group = this.groupSelect.value;
        this.draw();
      });
      eegSection.append(el("label", {}, "EEG channel group ", this.groupSelect));
      this.eeg = timeChart("band_power", eegSection, "EEG relative band power (usable channels of the group)",
        "relative power (fraction of 1-45 Hz)", BANDS.map((b) => ({ label: b })), { yRange: [0, 1], markers: this.markers, onSelect: options.onSelect });
      this.eegTable = el("table", { class: "bands", "aria-label": "Latest band power per channel group" });
      eegSection.append(this.eegTable);
      this.eda = timeChart("eda", row("EDA"), "EDA: tonic level and skin conductance responses", "µS",
        [{ label: "tonic (µS)" }, { label: "SCR peak, amplitude (µS)", points: true, color: PALETTE[5] }],
        { markers: this.markers, onSelect: options.onSelect });
      this.heart = timeChart("heart_rate", row("Heart rate"), "Heart rate and beats", "beats per minute",
        [{ label: "heart rate (bpm)", color: PALETTE[5], digits: 1 }, { label: "beat", points: true, color: PALETTE[7], digits: 1 }],
        { markers: this.markers, onSelect: options.onSelect });
      this.charts = [this.va, this.eeg, this.eda, this.heart];
      window.addEventListener("resize", () => {
        for (const chart of this.charts) chart.setSize({ width: Math.max(320, chart.root.parentNode.clientWidth), height: chart.height });
      });
    }

    add(item) {
      if (item.type === "marker") this.markers.list.push(item);
      else if (item.type === "expression_event") this.episode(item);
      else if (this.items[item.type]) this.items[item.type].push(item);
    }

    episode(item) {
      const key = `${item.face_id}@${item.onset}`;
      const found = this.markers.episodes.find((e) => e.key === key);
      const episode = { key, onset: item.onset, offset: item.offset ?? null, face_id: item.face_id };
      if (found) Object.assign(found, episode);
      else this.markers.episodes.push(episode);
    }

    clear() {
      for (const key of Object.keys(this.items)) this.items[key] = [];
      this.markers.list.length = 0;
      this.markers.episodes.length = 0;
    }

    trim(before) {
      const time = (i) => (i.t !== undefined ? i.t : i.end);
      for (const key of Object.keys(this.items)) this.items[key] = this.items[key].filter((i) => time(i) >= before);
      this.markers.list = this.markers.list.filter((m) => m.t + (m.duration_s || 0) >= before);
      this.markers.episodes = this.markers.episodes.filter((e) => (e.offset ?? Infinity) >= before);
    }

    draw(range) {
      affectd.state.markers = this.markers.list;
      const va = [];
      for (const f of this.items.fused) {
        if (f.valence !== null) va.push([f.end, 0, f.valence]);
        if (f.arousal !== null) va.push([f.end, 1, f.arousal]);
      }
      for (const item of this.items.face) {
        for (const face of item.faces) {
          if (face.face_id < 1 || face.face_id > 3) continue;
          const s = 2 + (face.face_id - 1) * 2;
          va.push([item.t, s, face.valence]);
          va.push([item.t, s + 1, face.arousal]);
        }
      }
      this.set(this.va, aligned(va, 8), range);

      const groups = new Set();
      for (const w of this.items.eeg) for (const g of Object.keys(w.bands || {})) groups.add(g);
      const sorted = [...groups].sort();
      if (sorted.join() !== [...this.groupSelect.options].map((o) => o.value).join()) {
        this.groupSelect.replaceChildren(...sorted.map((g) => el("option", { value: g, text: g })));
        if (!sorted.includes(this.group)) this.group = sorted[0] || null;
        if (this.group) this.groupSelect.value = this.group;
      }
      const bands = [];
      for (const w of this.items.eeg) {
        const group = (w.bands || {})[this.group];
        if (!group) continue;
        BANDS.forEach((b, i) => {
          if (group[b] !== undefined) bands.push([w.end, i, group[b]]);
        });
      }
      this.set(this.eeg, aligned(bands, BANDS.length), range);
      const latest = [...this.items.eeg].reverse().find((w) => Object.keys(w.bands || {}).length);
      if (latest) {
        const head = el("tr", {}, el("th", { scope: "col", text: "group" }), BANDS.map((b) => el("th", { scope: "col", text: b })));
        const rows = Object.entries(latest.bands || {}).map(([g, values]) =>
          el("tr", {}, el("th", { scope: "row", text: g }), BANDS.map((b) => el("td", { text: fmt(values[b], 3) }))));
        this.eegTable.replaceChildren(el("caption", { text: `Latest window (${fmt(latest.start, 1)}-${fmt(latest.end, 1)} s), relative power` }), head, ...rows);
      }

      const eda = [];
      for (const w of this.items.eda) {
        eda.push([w.end, 0, w.tonic_us]);
        for (const r of w.scr || []) eda.push([r.peak_time, 1, r.amplitude_us]);
      }
      this.set(this.eda, aligned(eda, 2), range);

      const heart = [];
      for (const w of this.items.cardiac) {
        if (w.heart_rate_bpm !== null && w.heart_rate_bpm !== undefined) heart.push([w.end, 0, w.heart_rate_bpm]);
        for (const beat of w.beats || []) heart.push([beat, 1, w.heart_rate_bpm ?? 60]);
      }
      this.set(this.heart, aligned(heart, 2), range);
    }

    set(chart, data, range) {
      chart.setData(data, !range);
      if (range) chart.setScale("x", { min: range[0], max: range[1] });
    }
  }

  // ---------- faces ----------
  function facePanel(container, faces) {
    container.replaceChildren();
    if (!faces.length) {
      container.append(el("p", { class: "muted", text: "No face in this frame." }));
      return;
    }
    for (const face of faces) {
      const card = el("article", { class: "face", "aria-label": `Face ${face.face_id}` });
      card.append(el("h3", { text: `Face ${face.face_id}` }));
      const corrected = face.action_units_corrected && face.action_units_corrected.values;
      const raw = face.action_units || {};
      const aus = Object.keys(raw).filter((k) => k.endsWith("_r")).sort();
      if (aus.length) {
        const list = el("div", { class: "bars", role: "list", "aria-label": "Action unit intensity, 0 to 5" });
        list.append(el("p", { class: "axis", text: corrected ? "AU intensity above the face's own neutral, 0-5" : "AU intensity, 0-5" }));
        for (const key of aus) {
          const value = corrected && corrected[key] !== undefined ? corrected[key] : raw[key];
          const present = value >= 1;
          list.append(el("div", { class: "bar" + (present ? " present" : ""), role: "listitem" },
            el("span", { class: "name", text: key.replace("_r", "") }),
            el("span", { class: "track" }, el("span", { class: "fill", style: `width:${Math.min(100, (value / 5) * 100)}%` })),
            el("span", { class: "value", text: fmt(value, 2) + (present ? " ●" : "") })));
        }
        card.append(list);
      }
      if (face.expression) {
        const e = face.expression;
        const list = el("div", { class: "bars", role: "list", "aria-label": "Expression probability" });
        list.append(el("p", { class: "axis", text: `Expression (combined), probability 0-1 · valence ${fmt(e.valence)} · arousal ${fmt(e.arousal)}` }));
        for (const [label, p] of Object.entries(e.combined || {}).sort((a, b) => b[1] - a[1])) {
          list.append(el("div", { class: "bar expression", role: "listitem" },
            el("span", { class: "name", text: label }),
            el("span", { class: "track" }, el("span", { class: "fill", style: `width:${Math.min(100, p * 100)}%` })),
            el("span", { class: "value", text: fmt(p, 2) })));
        }
        card.append(list);
      }
      container.append(card);
    }
  }

  // ---------- quality map ----------
  function qualityMap(container, streams) {
    container.replaceChildren();
    for (const stream of streams) {
      if (!stream.quality || !stream.quality.length) continue;
      const section = el("div", { class: "quality", "aria-label": `Channel quality of ${stream.stream_id}` });
      section.append(el("h4", { text: `${stream.stream_id} (${stream.kind}): ${stream.usable_channels} of ${stream.channels} channels usable` }));
      const grid = el("div", { class: "chips", role: "list" });
      for (const q of stream.quality) {
        const problems = [];
        if (q.flat) problems.push("flat");
        if (q.clipped_fraction > 0.01) problems.push(`clipped ${fmt(q.clipped_fraction * 100, 0)}%`);
        if (q.line_noise_ratio > 0.5) problems.push(`mains ${fmt(q.line_noise_ratio, 1)}`);
        if (q.artifact_fraction > 0.05) problems.push(`artefacts ${fmt(q.artifact_fraction * 100, 0)}%`);
        if (q.non_finite_samples) problems.push(`${q.non_finite_samples} NaN`);
        const text = `${q.channel} ${q.usable ? "✓" : "✗"}`;
        grid.append(el("span", { class: "chip " + (q.usable ? "ok" : "bad"), role: "listitem", title: problems.join(", ") || "usable" , text }));
      }
      section.append(grid);
      container.append(section);
    }
  }

  // ---------- sessions page ----------
  function listKeys(table) {
    table.addEventListener("keydown", (event) => {
      const rows = [...table.querySelectorAll("tbody tr[tabindex]")];
      const index = rows.indexOf(document.activeElement);
      if (index < 0) return;
      let next = null;
      if (event.key === "ArrowDown" || event.key === "j") next = rows[Math.min(rows.length - 1, index + 1)];
      else if (event.key === "ArrowUp" || event.key === "k") next = rows[Math.max(0, index - 1)];
      else if (event.key === "Home") next = rows[0];
      else if (event.key === "End") next = rows[rows.length - 1];
      else if (event.key === "Enter" || event.key === " ") {
        window.location.href = rows[index].dataset.href;
        event.preventDefault();
        return;
      }
      if (next) {
        next.focus();
        event.preventDefault();
      }
    });
  }

  function sessionsPage() {
    setMessage("Use Tab to reach a list, the arrow keys (or j and k) to move, and Enter to open.");
    const live = el("table", { id: "live-sessions", class: "list", "aria-label": "Live sessions" });
    const recorded = el("table", { id: "recorded-sessions", class: "list", "aria-label": "Recorded sessions" });
    app.append(el("h2", { text: "Live" }), live, el("h2", { text: "Recorded" }), recorded);
    listKeys(live);
    listKeys(recorded);
    const focusKey = () => (document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.href : null);
    function fill(table, head, rows) {
      const focused = focusKey();
      const tbody = el("tbody", {}, rows);
      table.replaceChildren(el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))), tbody);
      if (!rows.length) tbody.append(el("tr", {}, el("td", { colspan: head.length, class: "muted", text: "None." })));
      if (focused) {
        const again = table.querySelector(`tr[data-href="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
    }
    function row(href, cells) {
      const tr = el("tr", { tabindex: 0, "data-href": href, onclick: () => (window.location.href = href) }, cells.map((c) => el("td", {}, c)));
      return tr;
    }
    async function refresh() {
      try {
        const data = await getJSON("/api/sessions");
        clearError();
        fill(live, ["Participant", "Session", "Duration", "Frames analysed / skipped / received", "Acknowledged client_seq", "Streams"],
          data.live.map((s) => row(`/sessions/${encodeURIComponent(s.session_id)}`, [
            s.participant || "–", el("a", { href: `/sessions/${encodeURIComponent(s.session_id)}`, tabindex: -1, text: s.session_id }),
            duration(s.duration_s), `${s.frames_analysed} / ${s.frames_skipped} / ${s.frames_received}`,
            s.acked_client_seq ?? "–",
            el("span", {}, s.streams.map((h) => el("span", { class: "health " + (h.warnings || (h.channels && h.usable_channels < h.channels) ? "warn" : "ok"),
              title: h.last_warning || "", text: `${h.stream_id} (${h.kind}): ${h.windows} windows, ${h.usable_channels}/${h.channels} usable, ${h.warnings} warnings` }))),
          ])));
        fill(recorded, ["Participant", "Session", "Started", "Duration", "State"],
          data.recorded.map((r) => row(`/recordings/${encodeURIComponent(r.session_id)}`, [
            r.participant || "–", el("a", { href: `/recordings/${encodeURIComponent(r.session_id)}`, tabindex: -1, text: r.session_id }),
            new Date(r.started_at * 1000).toLocaleString(), r.ended_at ? duration(r.ended_at - r.started_at) : "live",
            r.state,
          ])));
        if (data.recordings_unavailable) showError(`Recordings are unavailable: ${data.recordings_unavailable}`);
      } catch (e) {
        showError(`Cannot list the sessions: ${e.message}`);
      }
    }
    refresh();
    setInterval(refresh, 1000);
  }

  // ---------- explanation ----------
  function explainPanel(container, sessionId) {
    const button = el("button", { id: "explain", type: "button", text: "Explain this moment" });
    const tokens = el("pre", { id: "explain-tokens", class: "tokens", "aria-live": "polite" });
    const result = el("div", { id: "judgement", "aria-live": "polite" });
    container.append(button, tokens, result);
    button.addEventListener("click", async () => {
      button.disabled = true;
      tokens.textContent = "";
      result.replaceChildren(el("p", { class: "muted", text: "Waiting for the model…" }));
      try {
        const response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}/explain`, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
        });
        if (!response.ok) {
          const data = await response.json().catch(() => ({ error: response.statusText }));
          throw new Error(data.error || response.statusText);
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let split;
          while ((split = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, split);
            buffer = buffer.slice(split + 2);
            let name = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
            }
            if (!data) continue;
            const payload = JSON.parse(data);
            if (name === "token") tokens.textContent += payload.text;
            else if (name === "result") judgement(result, payload);
            else if (name === "error") throw new Error(payload.error);
          }
        }
      } catch (e) {
        result.replaceChildren(el("p", { class: "error", role: "alert", text: `The explanation failed: ${e.message}` }));
      } finally {
        button.disabled = false;
      }
    });
  }

  function judgement(container, r) {
    container.replaceChildren();
    if (!r.parsed) {
      container.append(el("p", { class: "error", text: `The model's answer could not be read as a judgement: ${r.parse_error}` }));
    }
    for (const j of r.judgements || []) {
      const card = el("article", { class: "judgement", "data-label": j.label });
      card.append(el("h3", { text: `Face ${j.face_id}: ${j.label}` }),
        el("p", { text: `confidence ${fmt(j.confidence)} · valence ${fmt(j.valence)} · arousal ${fmt(j.arousal)}` }),
        el("p", { class: "rationale", text: j.rationale }));
      if (j.grounding !== null && j.grounding !== undefined) card.append(el("p", { text: `grounding: ${fmt(j.grounding)} of the cited evidence agrees with the measurements` }));
      if (j.citations && j.citations.length) {
        const list = el("ul", { class: "citations", "aria-label": "Evidence cited, as checked" });
        for (const c of j.citations) {
          const text = typeof c === "string" ? c
            : `${c.key} ${c.direction}${c.value !== null && c.value !== undefined ? ` (measured ${fmt(c.value)})` : ""}: ${c.verdict}${c.note ? ` (${c.note})` : ""}`;
          list.append(el("li", { class: c.verdict === "supported" ? "supported" : "unsupported", text }));
        }
        card.append(list);
      }
      container.append(card);
    }
    container.append(el("p", { class: "muted", text: `${r.backend} · ${r.model} · ${r.timings.generated_tokens} tokens in ${fmt(r.timings.total_ms / 1000, 1)} s${r.constrained ? " · constrained" : ""}` }));
  }

  // ---------- one live session ----------
  function livePage() {
    setMessage("");
    const status = el("p", { id: "status", class: "status", "aria-live": "polite" });
    const image = el("img", { id: "frame", alt: "The latest analysed frame with the faces' numbers, landmarks and AU tags drawn on it" });
    const faces = el("div", { id: "faces", class: "faces" });
    const quality = el("div", { id: "quality" });
    const explain = el("section", { class: "explain", "aria-label": "Explanation" }, el("h2", { text: "Explanation" }));
    const charts = el("div", { class: "charts" });
    app.append(status,
      el("div", { class: "live-grid" },
        el("section", { class: "frame" }, el("h2", { text: "Marked frame" }), image, el("p", { id: "frame-time", class: "muted" })),
        el("section", {}, el("h2", { text: "Faces" }), faces),
        explain),
      el("h2", { text: "Timelines (last 2 minutes)" }), charts,
      el("section", {}, el("h2", { text: "Signal quality" }), quality));
    explainPanel(explain, SESSION);
    const timelines = new Timelines(charts, {});
    affectd.state.frames = 0;
    affectd.state.imagesLoaded = 0;
    let pending = null, loading = false, latest = -Infinity, earliest = Infinity;
    function loadFrame() {
      if (loading || pending === null) return;
      loading = true;
      const t = pending;
      pending = null;
      image.src = `/api/sessions/${encodeURIComponent(SESSION)}/frame.jpg?t=${t}`;
      document.getElementById("frame-time").textContent = `frame at ${fmt(t, 3)} s (client clock)`;
    }
    image.addEventListener("load", () => { loading = false; affectd.state.imagesLoaded++; loadFrame(); });
    image.addEventListener("error", () => { loading = false; setTimeout(loadFrame, 200); });

    const feed = new EventSource(`/api/sessions/${encodeURIComponent(SESSION)}/feed`);
    feed.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      affectd.state.status = s;
      status.textContent = `${s.participant || "(no participant)"} · ${duration(Date.now() / 1000 - s.started_at)} · frames analysed ${s.frames_analysed}, skipped ${s.frames_skipped}, received ${s.frames_received} · acknowledged client_seq ${s.acked_client_seq ?? "–"} · ${s.recording ? "recorded" : "not recorded"}`;
      qualityMap(quality, s.streams);
    });
    feed.addEventListener("frame", (e) => {
      const f = JSON.parse(e.data);
      affectd.state.frames++;
      pending = f.t;
      loadFrame();
      facePanel(faces, f.faces);
    });
    let redraw = false;
    feed.addEventListener("items", (e) => {
      const batch = JSON.parse(e.data);
      if (batch.missed) showError(`This page fell behind and missed ${batch.missed} timeline points.`);
      for (const item of batch.items) {
        timelines.add(item);
        const t = item.t !== undefined ? item.t : item.end;
        if (t > latest) latest = t;
        if (t < earliest) earliest = t;
      }
      redraw = true;
    });
    feed.addEventListener("ended", () => {
      feed.close();
      status.textContent += " · ended";
      status.append(" ", el("a", { href: `/recordings/${encodeURIComponent(SESSION)}`, text: "review the recording" }));
    });
    feed.onerror = () => showError("The live feed was interrupted; reconnecting…");
    feed.onopen = () => clearError();
    // Charts are redrawn at most 4 times a second, whatever the feed's rate.
    setInterval(() => {
      if (!redraw || latest === -Infinity) return;
      redraw = false;
      timelines.trim(latest - KEEP_S);
      timelines.draw([Math.max(earliest, latest - LIVE_WINDOW_S), latest + 0.5]);
    }, 250);
  }

  // ---------- a recorded session's review ----------
  function reviewPage() {
    setMessage("Drag across a chart to zoom; Reset shows the whole recording. Click a chart, or move the slider, to see the frame at that time.");
    const id = encodeURIComponent(SESSION);
    const controls = el("div", { class: "controls" },
      el("button", { id: "pan-left", type: "button", text: "◀ Earlier" }),
      el("button", { id: "pan-right", type: "button", text: "Later ▶" }),
      el("button", { id: "reset", type: "button", text: "Reset zoom" }),
      el("a", { class: "button", href: `/api/recordings/${id}/export.xdf`, download: `${SESSION}.xdf`, text: "Download XDF" }),
      el("a", { class: "button", href: `/api/recordings/${id}/export.zip`, download: `${SESSION}.zip`, text: "Download CSV (zip)" }));
    const range = el("p", { id: "range", class: "muted" });
    const slider = el("input", { id: "scrub", type: "range", min: 0, max: 1, step: "any", value: 0, "aria-label": "Time in the recording, client clock (s)" });
    const image = el("img", { id: "frame", alt: "The recorded frame at the chosen time with its marks" });
    const faces = el("div", { id: "faces", class: "faces" });
    const charts = el("div", { class: "charts" });
    app.append(controls, range,
      el("div", { class: "live-grid" },
        el("section", { class: "frame" }, el("h2", { text: "Frame" }), el("label", { class: "scrub" }, "Time ", slider), image, el("p", { id: "frame-time", class: "muted" })),
        el("section", {}, el("h2", { text: "Faces" }), faces)),
      el("h2", { text: "Timelines" }), charts);
    let full = null, shown = null, zoomTimer = null;
    const timelines = new Timelines(charts, {
      onSelect: (u) => {
        if (u.select.width < 3) return;
        const min = u.posToVal(u.select.left, "x"), max = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0 }, false);
        clearTimeout(zoomTimer);
        zoomTimer = setTimeout(() => load(min, max), 50);
      },
    });
    async function load(from, to) {
      const query = from === undefined ? "" : `?from=${from}&to=${to}`;
      try {
        const started = performance.now();
        const o = await getJSON(`/api/recordings/${id}/overview${query}`);
        affectd.state.overviewMs = performance.now() - started;
        affectd.state.overview = { series: o.series.map((s) => s.length), from: o.from, to: o.to };
        clearError();
        if (!full) full = [o.start ?? o.from, o.end ?? o.to];
        shown = [o.from, o.to];
        timelines.clear();
        for (const series of o.series) for (const item of series) timelines.add(item);
        for (const m of o.markers) timelines.add(m);
        for (const e of o.events) timelines.add(e);
        timelines.draw([o.from, o.to === o.from ? o.from + 1 : o.to]);
        range.textContent = `Showing ${fmt(o.from, 1)}-${fmt(o.to, 1)} s of ${fmt(full[0], 1)}-${fmt(full[1], 1)} s (client clock), at most ${o.points} points per series${o.truncated ? "; some markers or episodes are left out, zoom in" : ""}.`;
        slider.min = full[0];
        slider.max = full[1];
        affectd.state.loaded = (affectd.state.loaded || 0) + 1;
      } catch (e) {
        showError(`Cannot read the recording: ${e.message}`);
      }
    }
    let momentTimer = null;
    function scrub(t) {
      slider.value = t;
      clearTimeout(momentTimer);
      momentTimer = setTimeout(async () => {
        try {
          const m = await getJSON(`/api/recordings/${id}/moment?t=${t}`);
          image.src = m.image;
          document.getElementById("frame-time").textContent = `frame at ${fmt(m.t, 3)} s (client clock), the last analysed at or before ${fmt(t, 3)} s`;
          facePanel(faces, m.faces);
          affectd.state.moment = m.t;
        } catch (e) {
          document.getElementById("frame-time").textContent = e.message;
        }
      }, 120);
    }
    slider.addEventListener("input", () => scrub(Number(slider.value)));
    for (const chart of timelines.charts) {
      chart.over.addEventListener("click", () => {
        if (chart.cursor.left >= 0) scrub(chart.posToVal(chart.cursor.left, "x"));
      });
    }
    document.getElementById("reset").addEventListener("click", () => load());
    const pan = (direction) => {
      if (!shown || !full) return;
      const width = shown[1] - shown[0];
      let from = shown[0] + (direction * width) / 2;
      from = Math.max(full[0], Math.min(full[1] - width, from));
      load(from, from + width);
    };
    document.getElementById("pan-left").addEventListener("click", () => pan(-1));
    document.getElementById("pan-right").addEventListener("click", () => pan(1));
    load().then(() => full && scrub(full[0] + (full[1] - full[0]) / 2));
  }

  // ---------- login ----------
  function loginPage() {
    const form = el("form", { method: "post", action: "/login", class: "login" },
      el("label", {}, "Token ", el("input", { type: "password", name: "token", autocomplete: "current-password", required: true })),
      el("button", { type: "submit", text: "Sign in" }));
    app.append(form);
  }

  if (typeof uPlot === "undefined" && PAGE !== "error" && PAGE !== "login") {
    showError("The chart library did not load (see /assets/uPlot.iife.min.js): this affectd was built without its dashboard assets.");
    return;
  }
  try {
    if (PAGE === "sessions") sessionsPage();
    else if (PAGE === "live") livePage();
    else if (PAGE === "review") reviewPage();
    else if (PAGE === "login") loginPage();
  } catch (e) {
    showError(`The page failed: ${e.message}`);
  }
})();
