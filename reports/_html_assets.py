"""The HTML report's inline style sheet and script (no file is fetched: the page works offline)."""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --card:#fff; --accent:#b3261e;
  --api:#3b6fd8; --gpu:#d9822b; --energy:#2e9e6a; --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 48px; }
header h1 { font-size: 22px; margin: 0 0 2px; }
header .sub { color: var(--muted); }
h2 { font-size: 16px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.src { color: var(--muted); font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(178px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card.big { grid-column: span 2; border-left: 4px solid var(--accent); }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card.big .value { font-size: 28px; }
.card .parts { font-size: 12px; margin-top: 2px; }
.card .parts span { white-space: nowrap; margin-right: 8px; }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 3px; }
.splitbar { display: flex; height: 6px; border-radius: 3px; overflow: hidden; margin-top: 6px;
  background: var(--line); }
.card .src { margin-top: 4px; }
ul.insights { list-style: none; padding: 0; margin: 0; display: grid; gap: 6px; }
ul.insights li { background: var(--card); border: 1px solid var(--line); border-left: 4px solid #98a2b3;
  border-radius: 6px; padding: 8px 12px; }
ul.insights li.warn { border-left-color: #d9822b; }
ul.insights li.good { border-left-color: #2e9e6a; }
ul.insights li b { font-variant-numeric: tabular-nums; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px; overflow-x: auto; }
.panel svg { display: block; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 10px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg .muted { fill: var(--muted); }
svg .axis { stroke: #d0d5dd; stroke-width: 1; }
svg .grid { stroke: #eef0f3; stroke-width: 1; }
.tree { font-variant-numeric: tabular-nums; font-size: 12.5px; }
.tree .row { display: grid; align-items: center;
  grid-template-columns: minmax(240px, 1fr) 100px 56px 50px 64px 60px 100px 66px 60px 66px 60px 66px 92px 86px;
  border-bottom: 1px solid #f0f2f5; min-height: 22px; }
.tree .row > span { padding: 1px 6px; text-align: right; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.tree .row > span.name { text-align: left; }
.tree .row > span.kind { text-align: left; color: var(--muted); }
.tree .row > span.self { color: var(--muted); }
.tree .head { font-weight: 600; background: #f2f4f7; position: sticky; top: 0; z-index: 1; }
.tree .head > span { white-space: normal; line-height: 1.15; }
.tree .total { font-weight: 600; border-top: 2px solid var(--line); }
.tree details > summary { list-style: none; cursor: pointer; }
.tree details > summary::-webkit-details-marker { display: none; }
.tree details > summary .name::before { content: "\\25B8"; display: inline-block; width: 12px; color: var(--muted); }
.tree details[open] > summary .name::before { content: "\\25BE"; }
.tree .leaf .name::before { content: ""; display: inline-block; width: 12px; }
.tree .row:hover { background: #f5f8ff; }
.tree .error .name { color: var(--accent); }
.tree .sessionrow { background: #fafbfc; }
.k-chat { color: var(--api); } .k-execute_tool { color: #2e7d5b; } .k-invoke_agent { color: #7a4cc2; }
table.grid { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 12.5px;
  background: var(--card); }
table.grid th, table.grid td { padding: 3px 8px; border-bottom: 1px solid #f0f2f5; text-align: right;
  white-space: nowrap; }
table.grid th { background: #f2f4f7; font-weight: 600; }
table.grid th:first-child, table.grid td:first-child { text-align: left; white-space: normal; overflow-wrap: anywhere;
  min-width: 200px; }
td .bar { display: inline-block; height: 8px; background: var(--accent); opacity: .6; border-radius: 2px;
  vertical-align: middle; margin-right: 4px; }
.tops { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 10px; }
.breakdowns { display: grid; grid-template-columns: 1fr; gap: 10px; }
ul.notes { margin: 0; padding-left: 18px; color: var(--muted); font-size: 12.5px; }
.toolbar { margin: 0 0 6px; }
.toolbar button { font: inherit; font-size: 12px; padding: 2px 8px; border: 1px solid var(--line); background: #fff;
  border-radius: 4px; cursor: pointer; }
.empty { color: var(--muted); font-style: italic; padding: 8px; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print { .toolbar { display: none; } body { background: #fff; } }
"""

#: Runs first: records script errors, console errors and blocked loads into the page itself, so a
#: headless browser's DOM dump shows them; then enables the tree's expand/collapse buttons.
JS_HEAD = """
(function () {
  var errors = [];
  function note(message) { errors.push(String(message)); flush(); }
  function flush() {
    var box = document.getElementById('page-errors');
    if (!box) { return; }
    box.setAttribute('data-count', String(errors.length));
    box.textContent = errors.join('\\n');
    if (errors.length) { box.hidden = false; }
  }
  window.addEventListener('error', function (e) {
    var source = e.target && (e.target.src || e.target.href || e.target.tagName);
    var target = e.target && e.target !== window ? ' (' + source + ')' : '';
    note('error: ' + (e.message || 'resource failed') + target);
  }, true);
  window.addEventListener('unhandledrejection', function (e) { note('unhandled rejection: ' + e.reason); });
  document.addEventListener('securitypolicyviolation', function (e) {
    note('blocked: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
  ['error', 'warn'].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      note('console.' + level + ': ' + Array.prototype.join.call(arguments, ' '));
      return original.apply(console, arguments);
    };
  });
  function ready() {
    flush();
    var resources = (performance.getEntriesByType ? performance.getEntriesByType('resource') : []);
    document.body.setAttribute('data-resources', String(resources.length));
    document.body.setAttribute('data-js', 'ok');
  }
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-tree-toggle]').forEach(function (button) {
      button.hidden = false;
      button.addEventListener('click', function () {
        var open = button.getAttribute('data-tree-toggle') === 'open';
        document.querySelectorAll('.tree details').forEach(function (d) { d.open = open; });
      });
    });
    ready();
  });
  window.addEventListener('load', ready);
})();
"""

#: The one inline script, by its SHA-256: a script injected into the page (through a name in a
#: trace that escaped escaping) would not match it, and does not run.
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(JS_HEAD.encode("utf-8")).digest()).decode("ascii")
#: Nothing may be loaded from anywhere: inline style, the one script above, images as data: URIs.
CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'; "
                           "img-src data:; base-uri 'none'; form-action 'none'")
