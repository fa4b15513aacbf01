/* CLLM Explorer race player.
 *
 * The server renders a race's last frame (cllm/ui/grid.py); this script replays it in the browser, so
 * playback costs no server round trip. One clock counts forward passes and drives both panels
 * (lockstep): at pass t each panel shows the block it was working on after t passes and that block's
 * rows up to there, so the model that needs fewer passes visibly finishes first.
 * Loaded once per page through gr.HTML(head=...); each player component calls cllmPlayer.attach.
 */
(function () {
  if (window.cllmPlayer) return;

  const nums = (s) => (s ? s.split(",").map(Number) : []);
  const sum = (a, n) => a.slice(0, n).reduce((x, y) => x + y, 0);

  // One tooltip for every player on the page: the hovered (or tapped) element's data-tip, its first part
  // (a cell's “token”) shown large. Built with textContent: the text is a model's output.
  let tip = null;
  function showTip(el) {
    if (!tip) { tip = document.createElement("div"); tip.className = "cr-tip"; tip.setAttribute("role", "tooltip"); document.body.appendChild(tip); }
    const parts = el.dataset.tip.split(" · ");
    tip.replaceChildren();
    const end = parts[0].startsWith("“") ? parts[0].lastIndexOf("” ") : -1; // a cell's “token” id N
    if (end > 0) {
      const c = document.createElement("code");
      c.textContent = parts[0].slice(1, end);
      tip.appendChild(c);
      parts[0] = parts[0].slice(end + 2);
    }
    parts.forEach((p) => { const d = document.createElement("div"); d.textContent = p; tip.appendChild(d); });
    tip.style.display = "block";
    const r = el.getBoundingClientRect(), w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = `${Math.max(4, Math.min(r.left, window.innerWidth - w - 4))}px`;
    tip.style.top = `${r.bottom + h + 6 < window.innerHeight ? r.bottom + 4 : Math.max(4, r.top - h - 4)}px`;
    return el;
  }
  function hideTip() { if (tip) tip.style.display = "none"; }

  // The Train tab's hold countdown (train_tab.status_html): data-left seconds as of when the line appeared.
  setInterval(() => {
    document.querySelectorAll(".tr-count[data-left]").forEach((el) => {
      if (!el.cllmT0) el.cllmT0 = Date.now();
      const left = Math.max(0, Number(el.dataset.left) - Math.floor((Date.now() - el.cllmT0) / 1000));
      el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    });
  }, 1000);
  document.addEventListener("pointerdown", (e) => { if (!e.target.closest || !e.target.closest(".cr [data-tip]")) hideTip(); });
  document.addEventListener("scroll", hideTip, true);

  function readPanel(section) {
    let start = 0;
    const blocks = Array.from(section.querySelectorAll("table.cr-grid")).map((table) => {
      const b = {
        table, rows: Array.from(table.tBodies[0].rows), commit: nums(table.dataset.commit),
        secs: nums(table.dataset.secs), width: Number(table.dataset.width), start,
        text: section.querySelector(`.cr-tb[data-block="${table.dataset.block}"]`),
      };
      start += b.secs.length;
      return b;
    });
    const map = Array.from(section.querySelectorAll(".cr-map button"));
    const field = (k) => section.querySelector(`[data-k="${k}"]`);
    return { section, blocks, map, passes: start, total: blocks.reduce((n, b) => n + b.width, 0),
             grids: section.querySelector(".cr-grids"), bar: section.querySelector(".cr-progress i"),
             it: field("it"), tok: field("tok"), tpf: field("tpf"), time: field("time"), where: field("where") };
  }

  // Which block a panel works on after t passes, and how many of that block's iterations are done.
  function locate(panel, t) {
    const bl = panel.blocks;
    for (let k = 0; k < bl.length; k++) {
      if (t <= bl[k].start + bl[k].secs.length) return [k, Math.max(0, t - bl[k].start)];
    }
    const k = bl.length - 1;
    return [k, bl[k].secs.length];
  }

  // Show pass t on one panel; returns how many grid rows it shows (the panels share the taller height).
  function showPanel(panel, t, partial) {
    const [k, j] = locate(panel, t);
    let tokens = 0, seconds = 0;
    panel.blocks.forEach((b, i) => {
      b.table.classList.toggle("cr-off", i !== k);
      if (i < k) { tokens += b.width; seconds += sum(b.secs, b.secs.length); }
      if (panel.map[i]) panel.map[i].classList.toggle("cr-cur", i === k);
      if (b.text) {
        b.text.classList.toggle("cr-off", i > k);
        Array.from(b.text.children).forEach((span, p) => span.classList.toggle("cr-pend", i === k && p >= b.commit[j]));
      }
    });
    const b = panel.blocks[k];
    b.rows.forEach((row, r) => { row.classList.toggle("cr-off", r > j); row.classList.toggle("cr-now", r === j); });
    tokens += b.commit[j];
    seconds += sum(b.secs, j);
    const passes = Math.min(t, panel.passes), done = !partial && t >= panel.passes;
    panel.it.textContent = passes;
    panel.tok.textContent = tokens;
    panel.tpf.textContent = passes ? (tokens / passes).toFixed(2) : "–";
    panel.time.textContent = seconds < 10 ? `${(seconds * 1000).toFixed(0)} ms` : `${seconds.toFixed(1)} s`;
    panel.where.textContent = done ? `✓ done in ${panel.passes} passes`
      : partial ? `block ${k + 1}, decoding…` : `block ${k + 1} of ${panel.blocks.length}`;
    panel.section.classList.toggle("cr-done", done);
    if (panel.bar) panel.bar.style.width = `${(100 * tokens) / Math.max(1, panel.total)}%`;
    return j + 1;
  }

  function attach(element, props, watch) {
    const st = { run: null, t: 0, ticks: 0, partial: false, timer: null, speed: 4, panels: [], root: null, shift: false };
    const q = (sel) => st.root && st.root.querySelector(sel);

    function render() {
      if (!st.root) return;
      // both grids take the taller one's height, so the texts below stay side by side (measured: a compact
      // grid's rows are shorter)
      st.panels.forEach((p) => { showPanel(p, st.t, st.partial); p.grids.style.minHeight = ""; });
      const tall = Math.max(...st.panels.map((p) => p.grids.offsetHeight));
      const row = new Set(st.panels.map((p) => p.section.offsetTop)).size === 1; // stacked panels need no match
      if (row) st.panels.forEach((p) => { p.grids.style.minHeight = `${tall}px`; });
      q(".cr-scrub").value = st.t;
      q(".cr-clock").innerHTML = `pass <b>${st.t}</b> / ${st.ticks}`;
      q(".cr-play").textContent = st.timer ? "❚❚ Pause" : "▶ Play";
      st.root.dataset.t = st.t; // for tests and for anyone reading the DOM
    }
    function stop() { clearInterval(st.timer); st.timer = null; }
    function play() {
      stop();
      if (st.t >= st.ticks && !st.partial) st.t = 0;
      st.timer = setInterval(() => {
        if (!element.isConnected) return stop(); // the tab was closed and its component unmounted
        if (st.t >= st.ticks && st.partial) return; // more of this run is on its way: wait for it
        st.t = Math.min(st.t + 1, st.ticks);
        if (st.t >= st.ticks && !st.partial) stop();
        render();
      }, 1000 / st.speed);
      render();
    }
    function focusCell() {
      const cell = q(".cr-focus");
      if (cell) cell.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    function go(t) { stop(); st.t = Math.max(0, Math.min(st.ticks, t)); render(); }

    // (Re)read the markup: a new run restarts from pass 0 and plays; an update of the same run keeps its place.
    function setup() {
      st.root = element.querySelector(".cr");
      if (!st.root) { stop(); st.run = null; return; }
      const same = st.root.dataset.run === st.run, playing = !!st.timer;
      st.run = st.root.dataset.run;
      st.ticks = Number(st.root.dataset.ticks);
      st.partial = st.root.dataset.partial === "1";
      st.panels = Array.from(st.root.querySelectorAll(".cr-panel")).map(readPanel);
      q(".cr-speed select").value = String(st.speed);
      const box = q("[data-act=shift]"); // the "right token, wrong position" layer stays as the visitor set it
      if (box) box.checked = st.shift;
      st.root.classList.toggle("cr-show-shift", st.shift);
      // a race opened at a moment (data-open: a lesson, a collocation row) waits there, paused
      const open = st.root.dataset.open;
      if (!same && open !== undefined) { stop(); st.t = Math.min(Number(open), st.ticks); render(); focusCell(); }
      else if (!same) { st.t = 0; play(); } else if (playing) { play(); } else { render(); }
    }

    element.addEventListener("click", (e) => {
      const act = e.target.closest("[data-act]");
      if (!act || !st.root) return;
      const a = act.dataset.act;
      if (a === "play") { st.timer ? (stop(), render()) : play(); }
      if (a === "back") go(st.t - 1);
      if (a === "fwd") go(st.t + 1);
      if (a === "block") { // a mini-map bar: show that block whole (the pass that ends it)
        const panel = st.panels.find((p) => p.section.contains(act)), b = panel && panel.blocks[Number(act.dataset.k)];
        if (b) go(b.start + b.secs.length);
      }
    });
    // tooltips: hover with a mouse; a tap (touch, pen) shows one and a tap elsewhere hides it
    let tipped = null;
    element.addEventListener("pointerover", (e) => {
      const el = e.pointerType === "mouse" && e.target.closest("[data-tip]");
      if (el && element.contains(el)) tipped = showTip(el);
    });
    element.addEventListener("pointerout", (e) => {
      if (e.pointerType === "mouse" && tipped && !tipped.contains(e.relatedTarget)) { hideTip(); tipped = null; }
    });
    element.addEventListener("pointerdown", (e) => {
      const el = e.pointerType !== "mouse" && e.target.closest("[data-tip]");
      if (el && element.contains(el)) tipped = showTip(el);
    });
    element.addEventListener("input", (e) => {
      if (e.target.classList.contains("cr-scrub")) go(Number(e.target.value));
    });
    element.addEventListener("change", (e) => {
      if (e.target.matches("[data-act=shift]") && st.root) {
        st.shift = e.target.checked;
        st.root.classList.toggle("cr-show-shift", st.shift);
        return;
      }
      if (!e.target.closest(".cr-speed")) return;
      st.speed = Number(e.target.value);
      if (st.timer) play();
    });
    element.addEventListener("keydown", (e) => {
      if (!st.root || e.target.closest("select, input")) return;
      const keys = { " ": () => (st.timer ? (stop(), render()) : play()),
                     ArrowLeft: () => go(st.t - 1), ArrowRight: () => go(st.t + 1) };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    watch("value", setup);
    setup();
  }

  window.cllmPlayer = { attach, locate, showTip, hideTip };
})();
