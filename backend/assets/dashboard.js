// The live dashboard's script, bundled with Apache ECharts (Apache-2.0) by
// esbuild when the backend is built (backend/build.rs) and served by
// `clickstream serve` at /dashboard/app.js: no CDN, works offline.
//
// The page's own code is fetching, layout, formatting and tables; ECharts
// draws the charts (time series, bar lists, the retention heatmap) with
// their tooltips, legends and zoom. Everything a visitor sent (page paths,
// product ids, referrers) reaches the DOM as text, or escaped in a tooltip.
import * as echarts from 'echarts/core';
import { BarChart, HeatmapChart, LineChart } from 'echarts/charts';
import { AriaComponent, DataZoomComponent, GridComponent, LegendComponent, MarkAreaComponent, TooltipComponent,
  VisualMapComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

// SVG rather than canvas: crisp text at any zoom, and the charts' labels are
// in the DOM for the browser test (and for a screen reader's aria label).
echarts.use([BarChart, HeatmapChart, LineChart, AriaComponent, DataZoomComponent, GridComponent, LegendComponent,
  MarkAreaComponent, TooltipComponent, VisualMapComponent, SVGRenderer]);

// The presets' lengths (calendar ranges and custom ones take theirs from the summary's from/to).
var RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3, today: 86400e3, yesterday: 86400e3,
  this_month: 31 * 86400e3, custom: 86400e3 };
// Bucket a range uses when a response does not say (the API's own defaults).
var DEFAULT_BUCKET = { traffic: { '1h': '1m', '24h': '5m', '7d': '1h', '30d': '1d' }, revenue: { '1h': '5m', '24h': '5m', '7d': '1h', '30d': '1d' } };
var REFRESH_MS = 5000, TIMEOUT_MS = 15000;
var PALETTE = ['#4263eb', '#f59f00', '#12b886', '#e64980', '#7950f2', '#15aabf', '#fa5252', '#82c91e'];
var OTHER = '#c1c7d0';
var FUNNEL = ['#3b5bdb', '#4263eb', '#4c6ef5', '#5c7cfa', '#748ffc']; // each step a shade lighter: one funnel
var DASH = '–';
var FONT = getComputedStyle(document.body).fontFamily;

// ---------- formatting ----------
function nf(o) { return new Intl.NumberFormat(undefined, o); }
var F = {
  int: nf({ maximumFractionDigits: 0 }),
  dec1: nf({ maximumFractionDigits: 1 }),
  pct: nf({ style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 }),
  compact: nf({ notation: 'compact', maximumFractionDigits: 1 })
};
function isNum(v) { return typeof v === 'number' && isFinite(v); }
function num(v) { return isNum(v) ? v : 0; }
function fInt(v) { return isNum(v) ? F.int.format(v) : DASH; }
function fDec1(v) { return isNum(v) ? F.dec1.format(v) : DASH; }
function fPct(v) { return isNum(v) ? F.pct.format(v) : DASH; }
function fCompact(v) { return isNum(v) ? F.compact.format(v) : DASH; }
// A duration: "42 s", "3 min 5 s", "1 h 12 min".
function fDuration(ms) {
  if (!isNum(ms)) return DASH;
  var s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
  return Math.floor(s / 3600) + ' h' + (Math.floor(s / 60) % 60 ? ' ' + (Math.floor(s / 60) % 60) + ' min' : '');
}
var moneyCache = {};
function money(v, cur, compact) {
  if (!isNum(v)) return DASH;
  var key = (cur || '') + (compact ? '|c' : '');
  if (!(key in moneyCache)) {
    try {
      moneyCache[key] = cur ? nf(compact ? { style: 'currency', currency: cur, notation: 'compact', maximumFractionDigits: 1 }
        : { style: 'currency', currency: cur }) : null;
    } catch (e) { moneyCache[key] = null; } // an unknown currency code: plain number plus the code
  }
  var f = moneyCache[key];
  if (f) return f.format(v);
  return (compact ? F.compact : nf({ minimumFractionDigits: 2, maximumFractionDigits: 2 })).format(v) + (cur ? ' ' + cur : '');
}
function pad(n) { return (n < 10 ? '0' : '') + n; }
// Times are shown in the viewer's local time, 24-hour clock.
function hhmm(ms) { var d = new Date(ms); return pad(d.getHours()) + ':' + pad(d.getMinutes()); }
function hhmmss(ms) { var d = new Date(ms); return hhmm(ms) + ':' + pad(d.getSeconds()); }
var WEEKDAY = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
function dayLabel(ms) { return WEEKDAY.format(new Date(ms)) + ' ' + new Date(ms).getDate(); }
function dayTime(ms) { return dayLabel(ms) + ', ' + hhmm(ms); }
var regionNames = null;
try { regionNames = new Intl.DisplayNames(undefined, { type: 'region' }); } catch (e) { /* old browser: show codes */ }
function countryName(code) {
  if (regionNames && /^[A-Z]{2}$/.test(code)) { try { return regionNames.of(code) || code; } catch (e) { /* not a region */ } }
  return code;
}
// The range's length: the summary's from/to when known, else the preset's.
function rangeLen(ctx) { return isNum(ctx.from) && isNum(ctx.to) && ctx.to > ctx.from ? ctx.to - ctx.from : RANGES[ctx.range] || 86400e3; }
function shortRange(ctx) { return rangeLen(ctx) <= 2 * 3600e3; }
function cap(s) { return s ? s.charAt(0).toUpperCase() + s.slice(1) : s; }
function parseBucket(s) {
  var m = /^(\d+)\s*([smhd])$/.exec(String(s || ''));
  return m ? +m[1] * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]] : 0;
}
function bucketWords(ms) {
  if (ms === 60e3) return 'minute';
  if (ms === 3600e3) return 'hour';
  if (ms < 3600e3) return (ms / 60e3) + ' minutes';
  return (ms / 3600e3) + ' hours';
}

// ---------- DOM helpers (textContent only: page paths, ids and keys come from visitors) ----------
function el(tag, attrs, kids) {
  var e = document.createElement(tag);
  if (attrs) for (var k in attrs) if (attrs[k] != null) e.setAttribute(k, attrs[k]);
  add(e, kids);
  return e;
}
function add(e, kids) {
  if (kids == null) return;
  if (!Array.isArray(kids)) kids = [kids];
  kids.forEach(function (k) { if (k != null && k !== false) e.appendChild(typeof k === 'string' ? document.createTextNode(k) : k); });
}
var measureCtx = document.createElement('canvas').getContext('2d');
function textW(s, size, weight) {
  measureCtx.font = (weight || 400) + ' ' + (size || 12) + 'px ' + FONT;
  return measureCtx.measureText(String(s)).width;
}
function boxWidth(box) { return Math.max(240, box.clientWidth || 600); }
function meta(name, parts) {
  var m = document.getElementById('meta-' + name);
  if (m) { m.replaceChildren(); add(m, parts); }
}
function emptyState(box, title, hint) {
  release(box);
  box.replaceChildren(el('div', { class: 'empty' }, [el('div', { class: 'et' }, title), hint ? el('div', { class: 'eh' }, hint) : null]));
}
function noData(box, hint) { emptyState(box, 'No data in this range yet', hint); }
// A table of the first ten rows: a text first column (its full text as the title), numbers after it.
function textTable(rows, head, cells) {
  return el('table', { class: 'tbl' }, [
    el('thead', null, el('tr', null, head.map(function (h, i) { return el('th', i ? { class: 'num' } : null, h); }))),
    el('tbody', null, rows.slice(0, 10).map(function (r) {
      return el('tr', null, cells(r).map(function (c, i) { return el('td', i ? { class: 'num' } : { class: 'id', title: String(c) }, c); }));
    }))]);
}

// ---------- charts: Apache ECharts, drawn as SVG ----------
// One chart per card, kept across the 5-second refreshes (setOption merges the new data in), so a zoom,
// a legend toggle or an open tooltip survives them; another range or site starts a fresh chart.
var TOOLTIP = { backgroundColor: '#1d2433', borderWidth: 0, padding: [7, 10], confine: true,
  textStyle: { color: '#fff', fontSize: 12, fontFamily: FONT }, extraCssText: 'box-shadow:0 4px 14px rgba(16,24,40,.18);border-radius:7px' };
var AXIS_TEXT = { color: '#8c95a6', fontSize: 11, fontFamily: FONT };
function plot(box, height, option, key) {
  var c = box._chart, onCreate = option.onCreate;
  delete option.onCreate;
  if (!c || c.isDisposed() || !box.contains(c.getDom()) || box._chartKey !== key) {
    if (c && !c.isDisposed()) c.dispose();
    var div = el('div', { class: 'plot', style: 'height:' + height + 'px' });
    box.replaceChildren(div);
    c = box._chart = echarts.init(div, null, { renderer: 'svg' });
    box._chartKey = key;
    // No animation: the charts change every five seconds, and a moving chart reads as noise.
    c.setOption(Object.assign({ animation: false, textStyle: { fontFamily: FONT } }, option, onCreate || {}));
  } else {
    var dom = c.getDom();
    while (box.lastChild !== dom) box.removeChild(box.lastChild);
    if (dom.style.height !== height + 'px') dom.style.height = height + 'px';
    c.resize();
    c.setOption(option, { replaceMerge: ['series'] });
  }
  return c;
}
// A card that shows a table or a message now: its chart goes.
function release(box) {
  if (box._chart && !box._chart.isDisposed()) box._chart.dispose();
  box._chart = null;
}
// Tooltips are HTML: what visitors sent (page paths, product ids) is escaped.
function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); }
function tipRow(color, label, value) {
  return '<div><i style="display:inline-block;width:8px;height:8px;border-radius:2px;margin-right:6px;background:' + color + '"></i>' +
    esc(label) + '<b style="float:right;margin-left:14px">' + esc(value) + '</b></div>';
}

// ---------- the time grid ----------
// Lay the range out as buckets of `bucket * k` and drop each point into its bucket (slots are arrays of points;
// missing buckets are empty, i.e. 0). k > 1 merges k API buckets into one bar when bars would be too thin to read.
// The grid takes its phase from the points' own timestamps, so it works whatever the server aligns buckets to.
function timeGrid(points, bucket, ctx, k) {
  var big = bucket * (k || 1);
  var ts = points.map(function (p) { return Date.parse(p.t); });
  var from = ctx.from, to = ctx.to;
  if (!isNum(from) || !isNum(to)) { // no summary this round: infer from the points
    to = ts.length ? Math.max.apply(null, ts) + bucket : Date.now();
    from = to - rangeLen(ctx);
  }
  var phase = ts.length && isNum(ts[0]) ? ((ts[0] % bucket) + bucket) % bucket : 0;
  var start = Math.floor((from - phase) / big) * big + phase;
  var n = Math.max(1, Math.ceil((to - start) / big));
  // Half an API bucket of slack, so timestamps a little off the grid still land in their bucket.
  var idx = ts.map(function (t) { return isNum(t) ? Math.floor((t - start + bucket / 2) / big) : -1; });
  var maxIdx = Math.max.apply(null, idx.concat([0]));
  if (maxIdx === n) n++; // a point stamped exactly at "to": the bucket that just started
  var slots = [];
  for (var i = 0; i < n; i++) slots.push([]);
  idx.forEach(function (i, j) { if (i >= 0 && i < n) slots[i].push(points[j]); });
  // partial: the last bucket has not ended yet (its counts are still growing).
  return { start: start, end: start + n * big, bucket: big, n: n, slots: slots, partial: start + n * big > to + 1000 };
}
function sumSlot(slot, f) { return slot.reduce(function (a, p) { return a + num(f(p)); }, 0); }

// ---------- time chart: area + line (optional right axis) or stacked bars ----------
// o: { grid, series: [{label, color, kind: 'area'|'line'|'bar', axis: 0|1, vals: []}], fmt: [f0, f1], integer: [b0, b1],
//      tipTitle(i), tipValue(series, v), tipTotal(i), legend: {label: text beside it}, label }
// Drag or ctrl + wheel zooms into the range, the slider under it too; a double click on it zooms back out.
function timeChart(box, o, key) {
  var g = o.grid, stacked = o.series.some(function (s) { return s.kind === 'bar'; });
  var hasRight = o.series.some(function (s) { return s.axis === 1; });
  var x = function (i) { return g.start + (i + 0.5) * g.bucket; };
  var slotOf = function (t) { return Math.min(g.n - 1, Math.max(0, Math.floor((t - g.start) / g.bucket))); };
  var series = o.series.map(function (s, k) {
    return {
      name: s.label, type: s.kind === 'bar' ? 'bar' : 'line', stack: s.kind === 'bar' ? 'total' : null, yAxisIndex: s.axis,
      color: s.color, showSymbol: false, symbolSize: 7, barCategoryGap: '20%',
      areaStyle: s.kind === 'area' ? { opacity: 0.13 } : null, lineStyle: { width: s.kind === 'area' ? 1.8 : 2 },
      emphasis: { disabled: true },
      data: s.vals.map(function (v, i) { return [x(i), v]; }),
      // The bucket still in progress is only partly counted: shaded, so its dip reads as "so far".
      markArea: k === 0 && g.partial ? { silent: true, itemStyle: { color: 'rgba(140,149,166,.1)' },
        data: [[{ xAxis: g.end - g.bucket }, { xAxis: g.end }]] } : null
    };
  });
  var axis = function (i) {
    return { type: 'value', minInterval: o.integer && o.integer[i] ? 1 : 0, alignTicks: i === 1,
      axisLabel: Object.assign({ formatter: function (v) { return o.fmt[i](v); } }, AXIS_TEXT, i === 1 ? { color: o.series.filter(function (s) { return s.axis === 1; })[0].color } : {}),
      splitLine: { show: i === 0, lineStyle: { color: '#edf0f4' } } };
  };
  var legendText = o.legend || {};
  plot(box, o.height || 270, {
    aria: { enabled: true, label: { description: o.label } },
    grid: { left: 4, right: 8, top: 10, bottom: 58, containLabel: true },
    xAxis: { type: 'time', min: g.start, max: g.end, axisLabel: Object.assign({ hideOverlap: true,
      formatter: { year: '{yyyy}', month: '{MMM}', day: '{ee} {d}', hour: '{HH}:{mm}', minute: '{HH}:{mm}', second: '{HH}:{mm}:{ss}' } }, AXIS_TEXT),
      axisLine: { lineStyle: { color: '#d5dae3' } }, splitLine: { show: false } },
    yAxis: hasRight ? [axis(0), axis(1)] : [axis(0)],
    // One line; more products than fit scroll with arrows.
    legend: { type: 'scroll', bottom: 0, left: 0, right: 0, icon: 'roundRect', itemWidth: 10, itemHeight: 10, textStyle: { color: '#6a7385', fontSize: 12 },
      formatter: function (name) { return legendText[name] ? name + '  ' + legendText[name] : name; } },
    tooltip: Object.assign({ trigger: 'axis', axisPointer: { type: stacked ? 'shadow' : 'line' },
      formatter: function (ps) {
        if (!ps.length) return '';
        var i = slotOf(ps[0].value[0]);
        var out = '<div style="color:#c5cbd6;margin-bottom:2px">' + esc(o.tipTitle(i) + (g.partial && i === g.n - 1 ? ' (so far)' : '')) + '</div>';
        // Stacked bars list the top of the stack first, as drawn.
        (stacked ? ps.slice().reverse() : ps).forEach(function (p) {
          if (stacked && !(p.value[1] > 0)) return;
          out += tipRow(p.color, p.seriesName, o.tipValue(p, p.value[1]));
        });
        if (o.tipTotal) out += '<div style="border-top:1px solid #3a4254;margin-top:3px;padding-top:3px">Total<b style="float:right;margin-left:14px">' + esc(o.tipTotal(i)) + '</b></div>';
        return out;
      } }, TOOLTIP),
    series: series,
    onCreate: { dataZoom: [{ type: 'inside', zoomOnMouseWheel: 'ctrl', moveOnMouseWheel: false, filterMode: 'none' },
      { type: 'slider', height: 16, bottom: 26, showDetail: false, filterMode: 'none', borderColor: '#e3e7ee' }] }
  }, key);
}

// ---------- horizontal bar list ----------
// rows: [{label, title, value, note, color}]; o: {fmt, color, label, colors}
function hbars(box, rows, o, key) {
  var vals = rows.map(function (r) { return o.fmt(r.value); });
  var notes = rows.map(function (r) { return r.note ? '  ' + r.note : ''; });
  var W = Math.max(240, box.clientWidth || 600);
  var rightW = Math.max.apply(null, rows.map(function (r, i) { return textW(vals[i], 12, 600) + textW(notes[i], 12); })) + 12;
  var labelW = Math.min(Math.max.apply(null, rows.map(function (r) { return textW(r.label, 12); })) + 4, Math.max(90, W * 0.36));
  plot(box, rows.length * 28 + 4, {
    aria: { enabled: true, label: { description: o.label } },
    grid: { left: labelW + 10, right: rightW, top: 2, bottom: 2 },
    // The longest bar fills the column (ECharts would round the axis up to a "nice" maximum).
    xAxis: { type: 'value', show: false, min: 0, max: Math.max.apply(null, rows.map(function (r) { return num(r.value); }).concat([1e-9])) },
    yAxis: { type: 'category', inverse: true, data: rows.map(function (r) { return r.label; }),
      axisLine: { show: false }, axisTick: { show: false },
      // Left-aligned at the card's edge, cut with an ellipsis past the label column.
      axisLabel: { width: labelW, overflow: 'truncate', color: '#1d2433', fontSize: 12, align: 'left', margin: labelW + 8 } },
    tooltip: Object.assign({ trigger: 'item', formatter: function (p) {
      var r = rows[p.dataIndex];
      return esc(r.title || r.label) + '<br><b>' + esc(vals[p.dataIndex]) + '</b>' + esc(notes[p.dataIndex]);
    } }, TOOLTIP),
    series: [{ type: 'bar', barWidth: 10, showBackground: true, backgroundStyle: { color: '#f0f2f6', borderRadius: 3 },
      itemStyle: { borderRadius: 3 }, emphasis: { disabled: true },
      data: rows.map(function (r, i) { return { value: num(r.value), itemStyle: { color: r.color || (o.colors && o.colors[i % o.colors.length]) || o.color || PALETTE[0] } }; }),
      label: { show: true, position: 'right', distance: 8, formatter: function (p) { return '{v|' + vals[p.dataIndex] + '}{n|' + notes[p.dataIndex] + '}'; },
        rich: { v: { color: '#1d2433', fontWeight: 600, fontSize: 12 }, n: { color: '#8c95a6', fontSize: 12 } } } }]
  }, key);
}

// ---------- renderers, one per chart; ctx = {range, from, to, currency} ----------
var RENDER = {
  traffic: function (box, d, ctx) {
    var pts = Array.isArray(d.points) ? d.points : [];
    if (!pts.length) { meta('traffic', null); return noData(box); }
    var bucket = parseBucket(d.bucket) || parseBucket(DEFAULT_BUCKET.traffic[ctx.range] || '1h');
    var g = timeGrid(pts, bucket, ctx);
    var pick = function (k) { return g.slots.map(function (sl) { return sumSlot(sl, function (p) { return p[k]; }); }); };
    var ev = pick('events'), au = pick('active_users');
    document.getElementById('cap-traffic').textContent = 'Events per ' + bucketWords(bucket) + ' (area, left axis) and active users (line, right axis)';
    var total = ev.reduce(function (a, b) { return a + b; }, 0);
    meta('traffic', [el('b', null, fInt(total)), ' events']);
    timeChart(box, {
      grid: g, label: 'Traffic over time',
      series: [{ label: 'Events', color: PALETTE[0], kind: 'area', axis: 0, vals: ev },
               { label: 'Active users', color: PALETTE[1], kind: 'line', axis: 1, vals: au }],
      fmt: [fCompact, fCompact], integer: [true, true],
      tipTitle: function (i) { return slotTitle(g, i, ctx); },
      tipValue: function (s, v) { return fInt(v); },
      legend: { 'Active users': '(right axis)' }
    }, ctx.key);
  },

  revenue: function (box, d, ctx) {
    var pts = Array.isArray(d.points) ? d.points : [];
    var cur = d.currency || ctx.currency;
    var products = Array.isArray(d.products) ? d.products.slice() : [];
    // Any product present in points but missing from "products" still gets drawn; "other" always last.
    pts.forEach(function (p) { Object.keys(p.by_product || {}).forEach(function (k) { if (products.indexOf(k) < 0) products.push(k); }); });
    products = products.filter(function (k) { return k !== 'other'; }).concat(products.indexOf('other') >= 0 ? ['other'] : []);
    var sum = pts.reduce(function (a, p) { return a + num(p.total); }, 0);
    if (!pts.length || !(sum > 0)) { meta('revenue', null); return noData(box, pts.length ? 'No orders in this range' : null); }
    var bucket = parseBucket(d.bucket) || parseBucket(DEFAULT_BUCKET.revenue[ctx.range] || '1h');
    // Bars under ~7px (288 five-minute bars in a day) read as noise: merge 2, 3, 6 or 12 buckets per bar.
    var k = 1, approxW = boxWidth(box) - 70, nb = rangeLen(ctx) / bucket;
    [1, 2, 3, 6, 12].some(function (f) { k = f; return approxW / (nb / f) >= 7; });
    var g = timeGrid(pts, bucket, ctx, k);
    var color = function (k, i) { return k === 'other' ? OTHER : PALETTE[i % PALETTE.length]; };
    var series = products.map(function (k, i) {
      return { label: k, color: color(k, i), kind: 'bar', axis: 0, vals: g.slots.map(function (sl) { return sumSlot(sl, function (p) { return p.by_product && p.by_product[k]; }); }) };
    });
    // Whatever "total" holds beyond the listed products (rounding, or a server that omits by_product) goes to "other".
    var slotTotal = g.slots.map(function (sl) { return sumSlot(sl, function (p) { return p.total; }); });
    var rest = slotTotal.map(function (t, i) {
      var extra = t - series.reduce(function (a, s) { return a + s.vals[i]; }, 0);
      return extra > 0.005 ? extra : 0;
    });
    if (rest.some(function (v) { return v > 0; })) {
      var o = series.filter(function (s) { return s.label === 'other'; })[0];
      if (o) o.vals = o.vals.map(function (v, i) { return v + rest[i]; });
      else series.push({ label: 'other', color: OTHER, kind: 'bar', axis: 0, vals: rest });
    }
    var totals = {};
    (Array.isArray(d.totals) ? d.totals : []).forEach(function (t) { totals[t.product_id] = t; });
    document.getElementById('cap-revenue').textContent = 'Revenue per ' + bucketWords(g.bucket) + ', stacked by the top products';
    meta('revenue', [el('b', null, money(sum, cur)), ' in range']);
    timeChart(box, {
      grid: g, label: 'Revenue over time',
      series: series,
      fmt: [function (v) { return money(v, cur, true); }],
      tipTitle: function (i) { return slotTitle(g, i, ctx); },
      tipValue: function (s, v) { return money(v, cur); },
      tipTotal: function (i) { return money(slotTotal[i], cur); },
      // Beside each product in the legend: its revenue, orders and units in the range.
      legend: Object.fromEntries(series.map(function (s) {
        var t = totals[s.label], v = t && isNum(t.revenue) ? t.revenue : s.vals.reduce(function (a, b) { return a + b; }, 0);
        return [s.label, money(v, cur) + (t ? ' · ' + fInt(t.orders) + ' orders, ' + fInt(t.units) + ' units' : '')];
      }))
    }, ctx.key);
  },

  top_pages: function (box, d, ctx) {
    var rows = (Array.isArray(d.pages) ? d.pages : []).map(function (p) {
      return { label: String(p.page_path), value: p.views, note: fInt(p.unique_visitors) + ' visitors' };
    });
    meta('top_pages', null);
    if (!rows.length) return noData(box);
    hbars(box, rows, { fmt: fInt, color: PALETTE[0], label: 'Top pages by views' }, ctx.key);
  },

  funnel: function (box, d, ctx) {
    var names = { sessions: 'Sessions', product_view: 'Product view', add_to_cart: 'Add to cart', checkout: 'Checkout', purchase: 'Purchase' };
    var steps = Array.isArray(d.steps) ? d.steps : [];
    var first = steps.length ? num(steps[0].count) : 0;
    meta('funnel', ['Conversion ', el('b', null, fPct(d.conversion_rate))]);
    if (!steps.length || !(first > 0)) return noData(box);
    var rows = steps.map(function (s, i) {
      var name = names[s.step] || s.step;
      return { label: name, value: s.count, note: i ? fPct(num(s.count) / first) + ' · step ' + fPct(s.rate) : '',
        title: name + (i ? ': ' + fPct(s.rate) + ' of the step before, ' + fPct(num(s.count) / first) + ' of sessions' : '') };
    });
    hbars(box, rows, { fmt: fInt, colors: FUNNEL, label: 'Purchase funnel' }, ctx.key);
    box.appendChild(el('div', { class: 'legend' }, ['Beside each count: share of all sessions, and of the step before.']));
  },

  sessions_by_source: breakdown('sessions_by_source', function (k) { return k; }),
  sessions_by_country: breakdown('sessions_by_country', countryName),
  sessions_by_device: breakdown('sessions_by_device', cap),

  bots: function (box, d, ctx) {
    var rows = (Array.isArray(d.anomalies) ? d.anomalies : []).slice()
      .sort(function (a, b) { return num(b.events) - num(a.events); });
    meta('bots', isNum(d.visitors) ? [el('b', null, fInt(d.visitors)), d.visitors === 1 ? ' visitor flagged' : ' visitors flagged'] : null);
    if (!rows.length) return noData(box, 'No bot-like visitors were flagged');
    var shown = rows.slice(0, 8);
    var maxEv = Math.max.apply(null, shown.map(function (r) { return num(r.events); }));
    var tbody = el('tbody', null, shown.map(function (r) {
      var id = String(r.anonymous_id == null ? DASH : r.anonymous_id);
      var short = id.length > 14 ? id.slice(0, 10) + '…' : id;
      var t = Date.parse(r.window_start);
      var bar = el('span', { style: 'display:inline-block;vertical-align:middle;height:6px;border-radius:3px;margin-right:8px;background:#fa5252;opacity:.75;width:' + Math.max(2, num(r.events) / (maxEv || 1) * 60).toFixed(0) + 'px' });
      return el('tr', null, [
        el('td', { class: 'id', title: id }, short),
        el('td', null, isNum(t) ? (shortRange(ctx) ? hhmm(t) : dayTime(t)) : DASH),
        el('td', { class: 'num' }, [bar, fInt(r.events)])
      ]);
    }));
    box.replaceChildren(el('table', { class: 'tbl' }, [
      el('thead', null, el('tr', null, [el('th', null, 'Visitor'), el('th', null, 'Window start'), el('th', { class: 'num' }, 'Events in the minute')])), tbody]));
    if (rows.length > shown.length) box.appendChild(el('div', { class: 'more' }, '+' + fInt(rows.length - shown.length) + ' more'));
  },

  pages: function (box, d) {
    var entry = Array.isArray(d.entry) ? d.entry : [], exit = Array.isArray(d.exit) ? d.exit : [];
    var started = entry.reduce(function (a, r) { return a + num(r.sessions); }, 0);
    meta('pages', entry.length ? [el('b', null, fInt(started)), ' sessions on these entry pages'] : null);
    if (!entry.length && !exit.length) return noData(box);
    box.replaceChildren(el('div', { class: 'split' }, [
      textTable(entry, ['Entry page', 'Sessions', 'Bounce rate'], function (r) { return [String(r.page_path), fInt(r.sessions), fPct(r.bounce_rate)]; }),
      textTable(exit, ['Exit page', 'Exits', 'Exit rate'], function (r) { return [String(r.page_path), fInt(r.exits), fPct(r.exit_rate)]; })
    ]));
  },

  sources: function (box, d, ctx) {
    var channels = Array.isArray(d.channels) ? d.channels : [], sources = Array.isArray(d.sources) ? d.sources : [];
    var total = channels.reduce(function (a, r) { return a + num(r.sessions); }, 0);
    meta('sources', channels.length ? [el('b', null, fInt(total)), total === 1 ? ' session' : ' sessions'] : null);
    if (!channels.length) return noData(box);
    var cur = d.currency || ctx.currency;
    box.replaceChildren(el('div', { class: 'split' }, [
      textTable(channels, ['Channel', 'Sessions', 'Visitors', 'Conversion', 'Revenue'], function (r) {
        return [String(r.channel), fInt(r.sessions), fInt(r.visitors), fPct(r.conversion_rate), money(r.revenue, cur)];
      }),
      textTable(sources, ['Source / medium', 'Sessions', 'Bounce rate', 'Conversion'], function (r) {
        return [String(r.source) + ' / ' + String(r.medium), fInt(r.sessions), fPct(r.bounce_rate), fPct(r.conversion_rate)];
      })
    ]));
  },

  // A cohort heatmap: one row per cohort, one cell per period since, shaded by the share still active.
  retention: function (box, d, ctx) {
    var cohorts = Array.isArray(d.cohorts) ? d.cohorts : [], unit = d.period === 'day' ? 'Day' : 'Week';
    var people = cohorts.reduce(function (a, c) { return a + num(c.size); }, 0);
    meta('retention', cohorts.length ? [el('b', null, fInt(people)), people === 1 ? ' person in ' : ' people in ', fInt(cohorts.length), cohorts.length === 1 ? ' cohort' : ' cohorts'] : null);
    if (!cohorts.length) return noData(box, 'Nobody was first seen in this range');
    var shown = cohorts.slice(-12), periods = Math.min(13, Math.max.apply(null, shown.map(function (c) { return (c.active || []).length; })));
    var columns = [];
    for (var k = 0; k < periods; k++) columns.push(unit + ' ' + k);
    var cells = [];
    shown.forEach(function (c, y) {
      (Array.isArray(c.rates) ? c.rates : []).slice(0, periods).forEach(function (r, k) {
        // A period still to come has no rate: no cell.
        if (isNum(r)) cells.push({ value: [k, y, r], label: { color: r > 0.45 ? '#fff' : '#1d2433' } });
      });
    });
    plot(box, 30 * shown.length + 30, {
      aria: { enabled: true, label: { description: 'Retention by cohort' } },
      grid: { left: 4, right: 4, top: 24, bottom: 2, containLabel: true },
      xAxis: { type: 'category', position: 'top', data: columns, axisLine: { show: false }, axisTick: { show: false }, axisLabel: AXIS_TEXT },
      yAxis: { type: 'category', inverse: true, axisLine: { show: false }, axisTick: { show: false },
        data: shown.map(function (c) { return String(c.cohort); }),
        axisLabel: { color: '#1d2433', fontSize: 12, fontFamily: 'ui-monospace, Menlo, Consolas, monospace',
          formatter: function (v, i) { return v + '  ·  ' + fInt(shown[i] ? shown[i].size : 0); } } },
      visualMap: { show: false, min: 0, max: 1, dimension: 2, inRange: { color: ['#e8edff', '#3b5bdb'] } },
      tooltip: Object.assign({ trigger: 'item', formatter: function (p) {
        var c = shown[p.value[1]], k = p.value[0], active = Array.isArray(c.active) ? c.active[k] : null;
        return esc(String(c.cohort)) + ', ' + unit.toLowerCase() + ' ' + k + '<br><b>' + esc(fInt(active)) + '</b> of ' + esc(fInt(c.size)) + ' people (' + esc(fPct(p.value[2])) + ')';
      } }, TOOLTIP),
      series: [{ type: 'heatmap', data: cells, itemStyle: { borderColor: '#fff', borderWidth: 2, borderRadius: 3 },
        emphasis: { disabled: true }, label: { show: true, fontSize: 12, formatter: function (p) { return fPct(p.value[2]); } } }]
    }, ctx.key + '|' + unit);
    var note = cohorts.length > shown.length ? 'The latest ' + shown.length + ' of ' + fInt(cohorts.length) + ' cohorts. ' : '';
    box.appendChild(el('div', { class: 'legend' }, [note + 'Beside each cohort: its people.']));
  },

  next_pages: function (box, d, ctx) {
    var sel = document.getElementById('next-from');
    var pages = Array.isArray(d.pages) ? d.pages : [];
    sel.replaceChildren.apply(sel, pages.map(function (p) { return el('option', { value: p.page_path }, String(p.page_path)); }));
    if (d.page != null && !pages.some(function (p) { return p.page_path === d.page; })) sel.appendChild(el('option', { value: d.page }, String(d.page)));
    sel.value = d.page == null ? '' : d.page;
    var rows = (Array.isArray(d.next) ? d.next : []).map(function (r) {
      return { label: String(r.next_page), title: String(r.next_page), value: r.transitions, note: fPct(r.share) };
    });
    meta('next_pages', isNum(d.total) && d.total ? [el('b', null, fInt(d.total)), ' steps from this page'] : null);
    if (!rows.length) return noData(box, pages.length ? 'No page was viewed right after this one' : 'Visitors have not gone from one page to another yet');
    hbars(box, rows, { fmt: fInt, color: PALETTE[2], label: 'Pages viewed next' }, ctx.key + '|' + d.page);
  },

  goals: function (box, d, ctx) {
    var rows = Array.isArray(d.goals) ? d.goals : [];
    var done = rows.reduce(function (a, r) { return a + num(r.completions); }, 0);
    meta('goals', rows.length ? [el('b', null, fInt(done)), done === 1 ? ' completion' : ' completions'] : null);
    if (!rows.length) return noData(box, 'Goals are [[goals]] in the config file (see examples/shop.toml)');
    var tbody = el('tbody', null, rows.slice(0, 10).map(function (r) {
      return el('tr', null, [
        el('td', null, String(r.goal)),
        el('td', { class: 'num' }, fInt(r.completions)),
        el('td', { class: 'num' }, fPct(r.conversion_rate)),
        el('td', { class: 'num' }, money(r.revenue, d.currency || ctx.currency))
      ]);
    }));
    box.replaceChildren(el('table', { class: 'tbl' }, [
      el('thead', null, el('tr', null, [el('th', null, 'Goal'), el('th', { class: 'num' }, 'Completions'),
        el('th', { class: 'num' }, 'Conversion'), el('th', { class: 'num' }, 'Revenue')])), tbody]));
  },

  // Pages by engaged time per view, with how far down they were read and how often viewed.
  engagement: function (box, d, ctx) {
    var pages = Array.isArray(d.pages) ? d.pages : [];
    meta('engagement', isNum(d.engaged_ms_per_session) ? [el('b', null, fDuration(d.engaged_ms_per_session)), ' engaged per session'] : null);
    if (!pages.length) return noData(box, 'Pages are read once the tracker reports them left (page_leave)');
    var rows = pages.slice().sort(function (a, b) { return num(b.avg_engaged_ms) - num(a.avg_engaged_ms); }).map(function (r) {
      return { label: String(r.page_path), value: r.avg_engaged_ms,
        note: (isNum(r.avg_scroll_depth) ? F.int.format(r.avg_scroll_depth) + '% scrolled · ' : '') + fInt(r.page_views) + (r.page_views === 1 ? ' view' : ' views') };
    });
    hbars(box, rows, { fmt: fDuration, color: PALETTE[4], label: 'Engaged time per page view' }, ctx.key);
  },

  links: function (box, d) {
    var outbound = Array.isArray(d.outbound) ? d.outbound : [], downloads = Array.isArray(d.downloads) ? d.downloads : [];
    var total = outbound.concat(downloads).reduce(function (a, r) { return a + num(r.clicks); }, 0);
    meta('links', total ? [el('b', null, fInt(total)), total === 1 ? ' click' : ' clicks'] : null);
    if (!total) return noData(box, 'No link to another site or to a file was clicked');
    var cells = function (r) { return [String(r.url), fInt(r.clicks), fInt(r.visitors)]; };
    box.replaceChildren(el('div', { class: 'split' }, [
      textTable(outbound, ['Outbound link', 'Clicks', 'Visitors'], cells),
      textTable(downloads, ['File downloaded', 'Clicks', 'Visitors'], cells)
    ]));
  },

  custom_events: function (box, d) {
    var rows = Array.isArray(d.events) ? d.events : [];
    var total = rows.reduce(function (a, r) { return a + num(r.events); }, 0);
    meta('custom_events', rows.length ? [el('b', null, fInt(total)), ' events'] : null);
    if (!rows.length) return noData(box, 'Custom events come from clickstream.track(name, props)');
    var tbody = el('tbody', null, rows.slice(0, 10).map(function (r) {
      // Each chosen prop's top values, e.g. "placement: home 69 · footer 18".
      var props = Object.keys(r.props || {}).map(function (k) {
        return k + ': ' + r.props[k].slice(0, 3).map(function (v) { return v.value + ' ' + fInt(v.events); }).join(' · ');
      }).join('; ');
      return el('tr', null, [
        el('td', null, [el('div', null, String(r.event_name)), props ? el('div', { class: 'more' }, props) : null]),
        el('td', { class: 'num' }, fInt(r.events)),
        el('td', { class: 'num' }, fInt(r.visitors))
      ]);
    }));
    box.replaceChildren(el('table', { class: 'tbl' }, [
      el('thead', null, el('tr', null, [el('th', null, 'Event'), el('th', { class: 'num' }, 'Events'),
        el('th', { class: 'num' }, 'Visitors')])), tbody]));
  },

  rejects: function (box, d, ctx) {
    var rows = (Array.isArray(d.reasons) ? d.reasons : []).slice()
      .sort(function (a, b) { return num(b.count) - num(a.count); })
      .map(function (r) { var k = String(r.reason); return { label: k.replace(/_/g, ' '), title: k, value: r.count }; });
    meta('rejects', isNum(d.total) ? [el('b', null, fInt(d.total)), ' rejected'] : null);
    if (!rows.length) return noData(box, 'Every event passed validation');
    hbars(box, rows.slice(0, 10), { fmt: fInt, color: '#fa5252', label: 'Rejected events by reason' }, ctx.key);
  }
};

function breakdown(name, labelOf) {
  return function (box, d, ctx) {
    var cur = ctx.currency;
    var all = (Array.isArray(d.rows) ? d.rows : []).slice().sort(function (a, b) { return num(b.sessions) - num(a.sessions); });
    var total = all.reduce(function (a, r) { return a + num(r.sessions); }, 0);
    meta(name, total ? [el('b', null, fInt(total)), ' sessions'] : null);
    if (!all.length) return noData(box);
    var cut = all.length > 9 ? 8 : all.length; // never an "Other" row for a single leftover
    var rows = all.slice(0, cut).map(function (r) {
      var k = String(r.key == null ? '(unknown)' : r.key);
      return { label: labelOf(k), title: k, value: r.sessions,
        note: fInt(r.converted) + ' conv.' + (isNum(r.revenue) && r.revenue > 0 ? ' · ' + money(r.revenue, cur, true) : '') };
    });
    if (all.length > cut) {
      var rest = all.slice(cut);
      rows.push({ label: 'Other (' + rest.length + ')', value: rest.reduce(function (a, r) { return a + num(r.sessions); }, 0), color: OTHER,
        note: fInt(rest.reduce(function (a, r) { return a + num(r.converted); }, 0)) + ' conv.' });
    }
    hbars(box, rows, { fmt: fInt, color: PALETTE[0], label: name.replace(/_/g, ' ') }, ctx.key);
  };
}

function slotTitle(g, i, ctx) {
  var t = g.start + i * g.bucket, e = t + g.bucket;
  return (shortRange(ctx) ? '' : dayLabel(t) + ', ') + hhmm(t) + '–' + hhmm(e);
}

// ---------- CSV export of a card's data ----------
// The card's main list (points, pages, rows, …) as CSV: one column per field, nested objects as "a.b",
// lists as JSON. Cells a spreadsheet would run as a formula (=, +, -, @ first) are prefixed with '.
var LISTS = ['points', 'next', 'pages', 'rows', 'steps', 'goals', 'events', 'anomalies', 'reasons', 'totals', 'entry', 'channels', 'cohorts', 'outbound'];
function csvOf(data) {
  var key = LISTS.filter(function (k) { return Array.isArray(data && data[k]); })[0];
  var items = key ? data[key] : [];
  // Entry and exit pages: both lists, each row saying which.
  if (key === 'entry' && Array.isArray(data.exit)) {
    items = data.entry.map(function (r) { return Object.assign({ list: 'entry' }, r); })
      .concat(data.exit.map(function (r) { return Object.assign({ list: 'exit' }, r); }));
  }
  // Links: outbound ones, then downloads, each row saying which.
  if (key === 'outbound' && Array.isArray(data.downloads)) {
    items = data.outbound.map(function (r) { return Object.assign({ kind: 'outbound' }, r); })
      .concat(data.downloads.map(function (r) { return Object.assign({ kind: 'download' }, r); }));
  }
  // Sources: the channels, then the sources, each row saying which.
  if (key === 'channels' && Array.isArray(data.sources)) {
    items = data.channels.map(function (r) { return Object.assign({ list: 'channel' }, r); })
      .concat(data.sources.map(function (r) { return Object.assign({ list: 'source' }, r); }));
  }
  var cols = [], rows = items.map(function (it) {
    var flat = {};
    Object.keys(it || {}).forEach(function (k) {
      var v = it[k];
      if (v && typeof v === 'object' && !Array.isArray(v)) Object.keys(v).forEach(function (j) { flat[k + '.' + j] = v[j]; });
      else flat[k] = v;
    });
    Object.keys(flat).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); });
    return flat;
  });
  var cell = function (v) {
    if (v == null) return '';
    var t = typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (typeof v === 'string' && /^[=+\-@\t\r]/.test(t)) t = "'" + t;
    return /[",\n\r]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  };
  return [cols.map(cell).join(',')].concat(rows.map(function (r) { return cols.map(function (c) { return cell(r[c]); }).join(','); })).join('\r\n') + '\r\n';
}
function exportCsv(name) {
  var cur = shown[name];
  if (!cur || !cur.data) return;
  var a = el('a', { href: URL.createObjectURL(new Blob([csvOf(cur.data)], { type: 'text/csv' })),
    download: name + '-' + (state.range === 'custom' ? state.from + '_' + state.to : state.range) + (state.site ? '-' + state.site : '') + '.csv' });
  document.body.appendChild(a);
  a.click();
  setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
document.querySelectorAll('.card header').forEach(function (h) {
  var chart = h.parentNode.querySelector('[data-chart]');
  if (!chart) return;
  var name = chart.dataset.chart;
  var b = el('button', { type: 'button', class: 'csv', 'data-csv': name, title: 'Download this card\'s data as CSV' }, 'CSV');
  b.addEventListener('click', function () { exportCsv(name); });
  h.appendChild(b);
});

// ---------- headline cards ----------
function setMetric(name, raw, text) {
  var e = document.querySelector('[data-metric="' + name + '"]');
  // data-value is the API's number untouched (String(0.0312) === "0.0312"); "null" when there is none.
  e.setAttribute('data-value', isNum(raw) ? String(raw) : 'null');
  e.textContent = text;
  e.title = text;
}
function renderSummary(r) {
  var s = r && r.ok ? r.data : null;
  if (!s && r && !r.nodata) return; // an error: keep the last numbers on screen
  s = s || {};
  setMetric('active_visitors', s.active_visitors, fInt(s.active_visitors));
  setMetric('events_per_minute', s.events_per_minute, fDec1(s.events_per_minute));
  setMetric('revenue_today', s.revenue_today, money(s.revenue_today, s.currency));
  setMetric('conversion_rate', s.conversion_rate, fPct(s.conversion_rate));
  setMetric('bounce_rate', s.bounce_rate, fPct(s.bounce_rate));
  var prev = s.previous || {};
  setDelta('conversion_rate', s.conversion_rate, prev.conversion_rate, false);
  setDelta('bounce_rate', s.bounce_rate, prev.bounce_rate, true);
  document.getElementById('sub-events').textContent = isNum(s.events) ? fInt(s.events) + ' events in range' + change(s.events, prev.events) : '\u00a0';
  document.getElementById('sub-orders').textContent = isNum(s.converted_sessions) ? fInt(s.converted_sessions) + (s.converted_sessions === 1 ? ' session' : ' sessions') + ' with a purchase in range' : '\u00a0';
  document.getElementById('sub-sessions').textContent = isNum(s.sessions) ? 'of ' + fInt(s.sessions) + (s.sessions === 1 ? ' session' : ' sessions') + ' in range' + change(s.sessions, prev.sessions) : '\u00a0';
}
// The change of a rate against the previous period, in percentage points; `lowerIsBetter` colours a fall green.
function setDelta(name, now, before, lowerIsBetter) {
  var e = document.querySelector('[data-delta="' + name + '"]');
  if (!isNum(now) || !isNum(before)) { e.textContent = ''; e.className = 'kd'; e.removeAttribute('data-value'); return; }
  var d = (now - before) * 100;
  e.setAttribute('data-value', String(now - before));
  e.textContent = (d > 0 ? '+' : d < 0 ? '−' : '±') + F.dec1.format(Math.abs(d)) + ' pp';
  e.title = 'vs ' + fPct(before) + ' in the period before';
  e.className = 'kd ' + (Math.abs(d) < 0.05 ? 'flat' : (d > 0) !== lowerIsBetter ? 'up' : 'down');
}
// " (+12% vs before)" for a count against the previous period's.
function change(now, before) {
  if (!isNum(now) || !isNum(before) || before === 0) return '';
  var d = (now - before) / before;
  return ' (' + (d >= 0 ? '+' : '−') + F.pct.format(Math.abs(d)).replace(/\.0%/, '%') + ' vs before)';
}

// ---------- state: range and site, kept in the URL hash ----------
var DATE = /^\d{4}-\d{2}-\d{2}$/;
var state = readHash();
function readHash() {
  var p = new URLSearchParams(location.hash.replace(/^#/, ''));
  var r = p.get('range'), from = p.get('from') || '', to = p.get('to') || '';
  var custom = r === 'custom' && DATE.test(from) && DATE.test(to);
  return { range: custom ? 'custom' : (RANGES[r] && r !== 'custom' ? r : '1h'), site: p.get('site') || '', from: custom ? from : '', to: custom ? to : '' };
}
function writeHash() {
  var p = new URLSearchParams();
  p.set('range', state.range);
  if (state.range === 'custom') { p.set('from', state.from); p.set('to', state.to); }
  if (state.site) p.set('site', state.site);
  var h = '#' + p.toString();
  // replaceState: switching ranges should not fill the back button's history.
  if (location.hash !== h) history.replaceState(null, '', h);
}
function stateKey() { return state.range + '|' + state.from + '|' + state.to + '|' + state.site; }
function qs() {
  var r = state.range === 'custom' ? 'from=' + encodeURIComponent(state.from) + '&to=' + encodeURIComponent(state.to) : 'range=' + encodeURIComponent(state.range);
  return r + (state.site ? '&site=' + encodeURIComponent(state.site) : '');
}
function syncControls() {
  document.querySelectorAll('#ranges button').forEach(function (b) { b.setAttribute('aria-pressed', String(b.dataset.range === state.range)); });
  document.getElementById('custom').setAttribute('aria-pressed', String(state.range === 'custom'));
  if (state.range === 'custom') { document.getElementById('from').value = state.from; document.getElementById('to').value = state.to; }
  var sel = document.getElementById('site');
  if (state.site && !Array.prototype.some.call(sel.options, function (o) { return o.value === state.site; })) sel.appendChild(el('option', { value: state.site }, state.site));
  sel.value = state.site;
}

// ---------- fetching ----------
var ENDPOINTS = [
  ['summary', '/api/summary?', ''],
  ['traffic', '/api/traffic?', ''],
  ['revenue', '/api/revenue?', '&top=5'],
  ['top_pages', '/api/top_pages?', '&limit=10'],
  ['funnel', '/api/funnel?', ''],
  ['sessions_by_source', '/api/sessions/breakdown?', '&by=source'],
  ['sessions_by_country', '/api/sessions/breakdown?', '&by=country'],
  ['sessions_by_device', '/api/sessions/breakdown?', '&by=device'],
  ['pages', '/api/pages?', '&limit=10'],
  ['sources', '/api/sources?', '&limit=10'],
  ['retention', '/api/retention?', function () { return '&period=' + (state.period === 'day' ? 'day' : 'week'); }],
  ['next_pages', '/api/next_pages?', function () { return '&limit=10' + (state.page ? '&page=' + encodeURIComponent(state.page) : ''); }],
  ['goals', '/api/goals?', ''],
  ['custom_events', '/api/custom_events?', '&limit=10'],
  ['links', '/api/links?', '&limit=10'],
  ['engagement', '/api/engagement?', '&limit=10'],
  ['bots', '/api/bots?', ''],
  ['rejects', '/api/rejects?', '']
];
var TITLES = { summary: 'summary', traffic: 'traffic', revenue: 'revenue', top_pages: 'top pages', funnel: 'funnel',
  sessions_by_source: 'sources', sessions_by_country: 'countries', sessions_by_device: 'devices', pages: 'entry and exit pages', sources: 'channels', retention: 'retention', next_pages: 'next pages', goals: 'goals', custom_events: 'custom events', links: 'links', engagement: 'engagement', bots: 'bots', rejects: 'rejects' };

// -> {ok, data} | {nodata} | {error}. A 503 "no_data" is the normal state of an empty store, not an error.
function getJson(url) {
  var ctl = new AbortController(), timer = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
  return fetch(url, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } }).then(function (res) {
    return res.text().then(function (text) {
      var body = null;
      try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
      if (res.ok && body && typeof body === 'object') return { ok: true, data: body };
      if (res.status === 503 && body && body.error === 'no_data') return { nodata: true };
      // Signed out (or the session ended): the page itself asks for a token.
      if (res.status === 401) { location.reload(); return { error: 'signed out' }; }
      if (res.ok) return { error: 'unreadable response' };
      return { error: 'HTTP ' + res.status + (body && (body.message || body.error) ? ': ' + (body.message || body.error) : '') };
    });
  }, function (e) {
    return { error: e && e.name === 'AbortError' ? 'timed out' : 'server unreachable', network: true };
  }).finally(function () { clearTimeout(timer); });
}

var shown = {};     // chart -> {key, data} currently on screen (redrawn on resize)
var lastCtx = null;

function draw(name, data, ctx) {
  var box = document.querySelector('[data-chart="' + name + '"]');
  try {
    if (data) RENDER[name](box, data, ctx); else { meta(name, null); noData(box, 'Waiting for the first events to be aggregated'); }
    if (box._chart && !box.contains(box._chart.getDom())) release(box); // the card drew a table instead
  } catch (e) {
    console.error('chart ' + name + ':', e); // a bug or an unexpected shape: say so in the card, keep the page alive
    emptyState(box, 'Could not draw this chart', 'The data had an unexpected shape');
  }
  box.dataset.drawn = '1';
}

function renderRound(res, key) {
  var s = res.summary.ok ? res.summary.data : null;
  var ctx = { range: state.range, from: s ? Date.parse(s.from) : NaN, to: s ? Date.parse(s.to) : NaN,
    currency: (s && s.currency) || (res.revenue.ok && res.revenue.data.currency) || null };
  if (!ctx.currency && lastCtx && lastCtx.key === key) ctx.currency = lastCtx.currency;
  ctx.key = key;
  lastCtx = ctx;
  renderSummary(res.summary);
  ENDPOINTS.slice(1).forEach(function (ep) {
    var name = ep[0], r = res[name], box = document.querySelector('[data-chart="' + name + '"]');
    if (r.ok || r.nodata) {
      shown[name] = { key: key, data: r.ok ? r.data : null };
      draw(name, shown[name].data, ctx);
    } else if (!shown[name] || shown[name].key !== key) {
      // Nothing for this range on screen yet: say so; otherwise leave the last good chart up.
      shown[name] = null;
      meta(name, null);
      emptyState(box, 'Data unavailable', 'Retrying every ' + REFRESH_MS / 1000 + ' seconds');
      box.dataset.drawn = '1';
    }
  });

  var errs = ENDPOINTS.filter(function (ep) { return res[ep[0]].error; });
  var banner = document.getElementById('banner');
  var offline = false;
  if (errs.length) {
    var msg;
    offline = errs.length === ENDPOINTS.length && errs.every(function (ep) { return res[ep[0]].network; });
    var anyShown = Object.keys(shown).some(function (k) { return shown[k]; });
    if (offline) msg = 'The server is unreachable. ' + (anyShown ? 'Showing the last data we had; retrying' : 'Retrying') + ' every ' + REFRESH_MS / 1000 + ' s.';
    else msg = 'Could not refresh ' + errs.map(function (ep) { return TITLES[ep[0]] + ' (' + res[ep[0]].error + ')'; }).join(', ') + '. Retrying every ' + REFRESH_MS / 1000 + ' s.';
    banner.firstChild.textContent = msg.length > 300 ? msg.slice(0, 297) + '…' : msg;
    banner.firstChild.title = msg;
    banner.hidden = false;
  } else banner.hidden = true;
  document.body.classList.toggle('degraded', errs.length > 0);
  document.getElementById('live').textContent = offline ? 'Offline' : 'Live';
  document.getElementById('updated').textContent = 'updated ' + hhmmss(Date.now());
}

// One round = every endpoint in parallel. The next round is scheduled only after this one has rendered,
// so requests never pile up behind a slow server. A change of range/site while a round is in flight
// discards that round's answers and starts a new round as soon as it ends.
var timer = null, inFlight = false, again = false;
function tick() {
  clearTimeout(timer); timer = null;
  if (inFlight) { again = true; return; }
  inFlight = true;
  var key = stateKey(), q = qs();
  Promise.all(ENDPOINTS.map(function (ep) { return getJson(ep[1] + q + (typeof ep[2] === 'function' ? ep[2]() : ep[2])); })).then(function (results) {
    if (key !== stateKey()) return;
    var res = {};
    ENDPOINTS.forEach(function (ep, i) { res[ep[0]] = results[i]; });
    renderRound(res, key);
    document.getElementById('main').classList.remove('loading');
    document.body.dataset.range = state.range; // the range the numbers on screen belong to
    document.body.dataset.ready = '1';
  }).catch(function (e) { console.error(e); }).then(function () {
    inFlight = false;
    if (again) { again = false; tick(); } else timer = setTimeout(tick, REFRESH_MS);
  });
}

function applyState(next) {
  if (next.range === state.range && next.site === state.site && next.from === state.from && next.to === state.to) return;
  // The cards' own choices (next pages' page, retention's period) stay.
  next.page = state.page;
  next.period = state.period;
  state = next;
  writeHash();
  syncControls();
  document.getElementById('main').classList.add('loading');
  tick();
}

document.getElementById('ranges').addEventListener('click', function (ev) {
  var b = ev.target.closest('button[data-range]');
  if (b) applyState({ range: b.dataset.range, site: state.site, from: '', to: '' });
});
document.getElementById('custom').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var from = document.getElementById('from').value, to = document.getElementById('to').value;
  if (DATE.test(from) && DATE.test(to)) applyState({ range: 'custom', site: state.site, from: from <= to ? from : to, to: from <= to ? to : from });
});
// The page whose next pages are shown: not part of the URL, kept while ranges change.
document.getElementById('next-from').addEventListener('change', function (ev) { state.page = ev.target.value; tick(); });
document.getElementById('retention-period').addEventListener('change', function (ev) { state.period = ev.target.value; tick(); });
document.getElementById('site').addEventListener('change', function (ev) { applyState({ range: state.range, site: ev.target.value, from: state.from, to: state.to }); });
window.addEventListener('hashchange', function () { applyState(readHash()); });

// Redraw from the data on screen when the width changes (charts are drawn at their pixel size).
var resizeTimer = null, lastW = window.innerWidth;
window.addEventListener('resize', function () {
  if (window.innerWidth === lastW) return;
  lastW = window.innerWidth;
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(function () {
    if (!lastCtx) return;
    Object.keys(shown).forEach(function (name) { if (shown[name] && shown[name].key === stateKey()) draw(name, shown[name].data, lastCtx); });
  }, 150);
});

// Site list for the filter: optional. GET /api/sites -> {"sites": ["shop", ...]} (strings or {site_id}).
// Without it the filter offers "All sites" (plus a site given in the hash).
function loadSites() {
  getJson('/api/sites').then(function (r) {
    if (!r.ok) return;
    var list = Array.isArray(r.data) ? r.data : (r.data.sites || []);
    var sel = document.getElementById('site');
    list.map(function (s) { return typeof s === 'string' ? s : s && (s.site_id || s.id); }).filter(Boolean).forEach(function (id) {
      id = String(id);
      if (!Array.prototype.some.call(sel.options, function (o) { return o.value === id; })) sel.appendChild(el('option', { value: id }, id));
    });
    sel.value = state.site;
  });
}

writeHash();
syncControls();
loadSites();
tick();
