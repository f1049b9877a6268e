/**
 * The status page: one self-contained HTML document (inline CSS, inline script, SVG charts drawn
 * by the script; no external asset, so it works offline and under a `default-src 'none'` content
 * security policy). The script fetches `<page>.json` every few seconds and redraws counts, charts
 * and the dead-letter list in place; a dead letter's Replay button posts `{kind, id}` to
 * `<page>/replay`. Data is put in the page with `textContent` and attributes only, never as HTML.
 */

/** Bar colours of the charts (the browser test looks for them in a screenshot). */
export const CHART_COLORS = { throughput: '#2563eb', errors: '#dc2626' } as const;

/** Options of {@link renderStatusPage}. */
export interface StatusPageRenderOptions {
  /** Seconds between two data refreshes (the page's `?refresh=` overrides it). */
  readonly refreshSeconds: number;
}

/**
 * @param options - Refresh interval.
 * @returns The page.
 */
export function renderStatusPage(options: StatusPageRenderOptions): string {
  const config = JSON.stringify({ refreshSeconds: options.refreshSeconds, colors: CHART_COLORS });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Integration hub status</title>
<style>
  :root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #ffffff; --panel: #f9fafb; --ok: ${CHART_COLORS.throughput}; --err: ${CHART_COLORS.errors}; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 16px 24px; border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
  h1 { font-size: 20px; margin: 0; }
  h2 { font-size: 16px; margin: 0 0 8px; }
  main { padding: 16px 24px; display: grid; gap: 24px; }
  #meta { color: var(--muted); }
  #meta.stale { color: var(--err); }
  .cards { display: flex; gap: 12px; flex-wrap: wrap; }
  .card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 110px; }
  .card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .card .label { color: var(--muted); font-size: 12px; }
  .card.bad .value { color: var(--err); }
  #chart { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px; width: 760px; max-width: 100%; }
  #chart svg { display: block; }
  .legend { display: flex; gap: 16px; color: var(--muted); font-size: 12px; margin-top: 4px; }
  .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-size: 12px; color: var(--muted); font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.err { color: var(--err); max-width: 420px; word-break: break-word; }
  tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
  .kind { color: var(--muted); font-size: 12px; text-transform: uppercase; margin-right: 6px; }
  button.replay { font: inherit; padding: 2px 10px; border: 1px solid var(--ok); background: var(--bg); color: var(--ok); border-radius: 4px; cursor: pointer; }
  button.replay:disabled { opacity: 0.5; cursor: default; }
  #replay-result:empty, #unavailable:empty { display: none; }
  #replay-result, #unavailable { padding: 6px 10px; border-radius: 4px; background: var(--panel); border: 1px solid var(--line); margin-bottom: 8px; }
  .empty { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>Integration hub status</h1>
  <div id="meta" aria-live="polite">loading…</div>
</header>
<main>
  <section aria-label="Totals"><div class="cards" id="totals"></div></section>
  <section>
    <h2>Throughput and errors, all channels</h2>
    <div id="chart" role="img" aria-label="Messages received per time bucket, and errors among them"></div>
    <div class="legend"><span><span class="swatch" style="background: var(--ok)"></span>received</span><span><span class="swatch" style="background: var(--err)"></span>errors (rejected, dead-lettered, resolved later, retrying)</span></div>
  </section>
  <section>
    <h2>Channels</h2>
    <div id="unavailable"></div>
    <table id="channels">
      <thead><tr><th>channel</th><th class="num">received</th><th class="num">committed</th><th class="num">rejected</th><th class="num">dead-lettered</th><th class="num">resolved</th><th class="num">delivered</th><th class="num">retrying</th><th class="num">pending</th><th class="num">oldest pending</th><th>last error</th><th>trend</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Open dead letters</h2>
    <div id="replay-result" role="status"></div>
    <table id="dead-letters">
      <thead><tr><th>received</th><th>kind</th><th>channel</th><th>entry</th><th>what</th><th>error</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="queues" hidden>
    <h2>Server job queues</h2>
    <div id="queue-depth"></div>
  </section>
</main>
<script>
'use strict';
(() => {
  const CONFIG = ${config};
  const COUNTS = ['received', 'committed', 'rejected', 'deadLettered', 'resolved', 'delivered', 'retrying', 'pending'];
  const LABELS = { received: 'received', committed: 'committed', rejected: 'rejected', deadLettered: 'dead-lettered', resolved: 'resolved', delivered: 'delivered', retrying: 'retrying', pending: 'pending' };
  const SVG = 'http://www.w3.org/2000/svg';
  const query = new URLSearchParams(location.search);
  const refreshSeconds = Math.max(1, Number(query.get('refresh')) || CONFIG.refreshSeconds);
  query.delete('refresh');
  const base = location.pathname.replace(/\\/+$/, '');
  let names = new Map();
  let failures = 0;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    if (seconds < 120) return seconds + ' s';
    if (seconds < 7200) return Math.round(seconds / 60) + ' min';
    if (seconds < 172800) return Math.round(seconds / 3600) + ' h';
    return Math.round(seconds / 86400) + ' d';
  }
  function time(iso) {
    const d = new Date(iso);
    return isNaN(d) ? '' : d.toLocaleString();
  }

  /** Stacked bars: received (blue) with the errors among them (red) at the bottom. */
  function chart(buckets, width, height, withAxis) {
    const pad = withAxis ? { l: 36, r: 8, t: 8, b: 22 } : { l: 0, r: 0, t: 1, b: 1 };
    const root = svg('svg', { width, height, viewBox: '0 0 ' + width + ' ' + height });
    const max = Math.max(1, ...buckets.map((b) => b.throughput));
    const plotW = width - pad.l - pad.r;
    const plotH = height - pad.t - pad.b;
    const step = plotW / Math.max(1, buckets.length);
    const barW = Math.max(1, step * 0.75);
    if (withAxis) {
      for (const v of [0, max]) {
        const y = pad.t + plotH - (v / max) * plotH;
        root.append(svg('line', { x1: pad.l, x2: width - pad.r, y1: y, y2: y, stroke: '#e5e7eb' }));
        const label = svg('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#6b7280' });
        label.textContent = String(v);
        root.append(label);
      }
    }
    buckets.forEach((b, i) => {
      const x = pad.l + i * step + (step - barW) / 2;
      const total = (b.throughput / max) * plotH;
      const errors = (b.errors / max) * plotH;
      if (b.throughput > 0) {
        const bar = svg('rect', { class: 'bar throughput', x, y: pad.t + plotH - total, width: barW, height: Math.max(0, total - errors), fill: CONFIG.colors.throughput, 'data-start': b.start, 'data-count': b.throughput });
        const tip = svg('title');
        tip.textContent = time(b.start) + ': ' + b.throughput + ' received, ' + b.errors + ' errors';
        bar.append(tip);
        root.append(bar);
      }
      if (b.errors > 0) {
        root.append(svg('rect', { class: 'bar errors', x, y: pad.t + plotH - errors, width: barW, height: errors, fill: CONFIG.colors.errors, 'data-start': b.start, 'data-count': b.errors }));
      }
      if (withAxis && i % Math.max(1, Math.round(buckets.length / 6)) === 0) {
        const label = svg('text', { x: x + barW / 2, y: height - 6, 'text-anchor': 'middle', 'font-size': 11, fill: '#6b7280' });
        const d = new Date(b.start);
        label.textContent = d.getHours().toString().padStart(2, '0') + ':' + d.getMinutes().toString().padStart(2, '0');
        root.append(label);
      }
    });
    return root;
  }

  function renderTotals(total) {
    const cards = document.getElementById('totals');
    cards.replaceChildren(
      ...COUNTS.map((key) =>
        el('div', { class: 'card' + ((key === 'deadLettered' || key === 'rejected') && total.counts[key] > 0 ? ' bad' : ''), 'data-count': key },
          el('div', { class: 'value' }, total.counts[key]), el('div', { class: 'label' }, LABELS[key])))
    );
  }

  function channelRow(channel, isTotal) {
    const label = el('td', { class: 'name' });
    if (!isTotal) label.append(el('span', { class: 'kind' }, channel.kind));
    label.append(channel.name);
    const row = el('tr', { 'data-channel': channel.key, 'data-name': channel.name, class: isTotal ? 'total' : '' }, label);
    for (const key of COUNTS) row.append(el('td', { class: 'num', 'data-count': key }, channel.counts[key]));
    row.append(el('td', { class: 'num', 'data-age': channel.oldestPendingAgeSeconds ?? '' }, age(channel.oldestPendingAgeSeconds)));
    row.append(el('td', { class: 'err', title: channel.lastError ? time(channel.lastError.time) : '' }, channel.lastError ? channel.lastError.text : ''));
    const spark = el('td', { class: 'spark' });
    spark.append(chart(channel.buckets, 120, 24, false));
    row.append(spark);
    return row;
  }

  function renderChannels(data) {
    const body = document.querySelector('#channels tbody');
    const rows = data.channels.map((c) => channelRow(c, false));
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 12, class: 'empty' }, 'No channel is readable with these credentials.')));
    rows.push(channelRow(data.total, true));
    body.replaceChildren(...rows);
    const unavailable = document.getElementById('unavailable');
    unavailable.replaceChildren(...data.unavailable.map((u) => el('div', {}, 'Not shown: ' + u.source + ' (' + u.reason + ')')));
  }

  function renderDeadLetters(data) {
    const body = document.querySelector('#dead-letters tbody');
    const rows = data.deadLetters.map((d) => {
      const action = el('td', {});
      if (d.replayable) {
        const button = el('button', { type: 'button', class: 'replay', 'data-kind': d.kind, 'data-id': d.id }, 'Replay');
        button.addEventListener('click', () => replay(button, d));
        action.append(button);
      } else {
        action.append(el('span', { class: 'empty' }, 'fix the file and put it back'));
      }
      const entry = (d.kind === 'hl7-message' ? 'MessageHeader/' : 'Task/') + d.id;
      return el('tr', { 'data-kind': d.kind, 'data-id': d.id },
        el('td', {}, time(d.time)), el('td', {}, d.kind), el('td', {}, names.get(d.channel) || d.channel), el('td', {}, entry),
        el('td', {}, d.detail), el('td', { class: 'err' }, d.error), action);
    });
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No open dead letters.')));
    if (data.deadLettersTruncated) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'More open dead letters exist than are listed (oldest first).')));
    body.replaceChildren(...rows);
  }

  function renderQueues(data) {
    const section = document.getElementById('queues');
    const target = document.getElementById('queue-depth');
    if (!data.queueDepth) { section.hidden = true; return; }
    section.hidden = false;
    if (!data.queueDepth.reachable) { target.replaceChildren(el('div', {}, 'queue depth: not reachable (' + data.queueDepth.reason + ')')); return; }
    target.replaceChildren(...data.queueDepth.queues.map((q) => el('div', { 'data-queue': q.name }, q.name + ': ' + q.waiting + ' waiting, ' + q.delayed + ' delayed, ' + q.active + ' active, ' + q.failed + ' failed')));
  }

  function render(data) {
    names = new Map(data.channels.map((c) => [c.key, c.kind + ' ' + c.name]));
    renderTotals(data.total);
    document.getElementById('chart').replaceChildren(chart(data.total.buckets, 740, 220, true));
    renderChannels(data);
    renderDeadLetters(data);
    renderQueues(data);
    const meta = document.getElementById('meta');
    meta.className = '';
    meta.dataset.generatedAt = data.generatedAt;
    meta.textContent = 'updated ' + time(data.generatedAt) + ' · items received since ' + time(data.since) + ' · ' + (data.invariantHolds ? 'counts add up' : 'COUNTS DO NOT ADD UP') + ' · refresh every ' + refreshSeconds + ' s';
  }

  async function load() {
    try {
      const response = await fetch(base + '.json' + (query.toString() ? '?' + query : ''), { cache: 'no-store', credentials: 'same-origin' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      render(await response.json());
      failures = 0;
    } catch (err) {
      failures++;
      const meta = document.getElementById('meta');
      meta.className = 'stale';
      meta.textContent = 'refresh failed (' + err.message + '); retrying';
    }
  }

  async function replay(button, d) {
    button.disabled = true;
    const result = document.getElementById('replay-result');
    try {
      const response = await fetch(base + '/replay', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ kind: d.kind, id: d.id }), credentials: 'same-origin' });
      const body = await response.json().catch(() => ({}));
      result.dataset.status = String(response.status);
      result.textContent = response.ok ? 'Replay requested: ' + body.text : 'Replay refused: ' + (body.error || 'HTTP ' + response.status);
    } catch (err) {
      result.textContent = 'Replay failed: ' + err.message;
    }
    await load();
  }

  async function loop() {
    await load();
    setTimeout(loop, refreshSeconds * 1000 * Math.min(4, 1 + failures));
  }
  loop();
})();
</script>
</body>
</html>
`;
}
