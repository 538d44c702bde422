# ruff: noqa: E501
"""The HTML report template (Jinja2, autoescaped), kept apart from the code that fills it.

Why here and not a file under ``data/``: it is code, versioned and type-checked with the module that
renders it; long lines are allowed because wrapping markup would change the whitespace of the output.
Everything is inline (CSS, SVG), there is no script and no external resource.
"""

HTML_TEMPLATE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audit report: {{ r.model_name }}</title>
<style>
:root { --ink:#1a1a1a; --muted:#555; --line:#d0d0d0; --bg:#ffffff; --panel:#f6f6f3; --accent:#1f4e79; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); margin: 0; }
header, main, footer { max-width: 60rem; margin: 0 auto; padding: 1rem 1.25rem; }
header { border-bottom: 3px solid var(--accent); }
h1 { font-size: 1.7rem; margin: .2rem 0; } h2 { font-size: 1.35rem; margin-top: 2.2rem;
  border-bottom: 1px solid var(--line); padding-bottom: .2rem; } h3 { font-size: 1.1rem; margin-bottom: .3rem; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
  overflow-wrap: anywhere; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .5rem 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .93rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--panel); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.principle { background: var(--panel); border-left: 4px solid var(--accent); padding: .6rem 1rem; }
.criterion { border: 1px solid var(--line); border-radius: 6px; padding: .6rem 1rem; margin: 1rem 0; }
.grade { display: inline-block; min-width: 2.2rem; text-align: center; font-weight: 700; border-radius: 4px;
  padding: .1rem .4rem; border: 1px solid #0003; }
.grade-A { background: #1b7837; color: #fff; } .grade-B { background: #7fbc41; color: #1a1a1a; }
.grade-C { background: #fee08b; color: #1a1a1a; } .grade-D { background: #f46d43; color: #1a1a1a; }
.grade-E { background: #a50026; color: #fff; } .grade-na { background: #ddd; color: #1a1a1a; }
figure { margin: 1rem 0; } figcaption { font-size: .9rem; color: var(--muted); }
svg { max-width: 100%; height: auto; background: #fff; }
svg text { font: 12px system-ui, sans-serif; fill: #1a1a1a; }
.bar-bias { fill: #9ecae1; } .bar-safe { fill: #a1d99b; } .bar-unsafe { fill: #fdae6b; }
.whisker { stroke: #1a1a1a; stroke-width: 1.5; } .dot { fill: #1a1a1a; }
.ref { stroke: #b2182b; stroke-dasharray: 4 3; stroke-width: 1.5; } .axis { stroke: #777; }
.guide { background: #eef4fa; border: 1px solid #c6d9ec; border-radius: 6px; padding: .6rem 1rem; }
details { margin: .5rem 0 1rem; } summary { cursor: pointer; font-weight: 600; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
@media print { details { display: block; } }
</style>
</head>
<body>
{% macro chart(p, id) %}
<figure>
<svg role="img" aria-labelledby="{{ id }}-t {{ id }}-d" viewBox="0 0 {{ p.width }} {{ p.height }}"
     width="{{ p.width }}" height="{{ p.height }}" xmlns="http://www.w3.org/2000/svg">
<title id="{{ id }}-t">{{ p.title }}</title>
<desc id="{{ id }}-d">{% for row in p.rows %}{{ row.label }}: {{ row.value_text }} (interval {{ row.ci_text }}). {% endfor %}</desc>
<text x="4" y="16" font-weight="600">{{ p.title }}</text>
<line class="axis" x1="{{ p.plot_x0 }}" x2="{{ p.plot_x1 }}" y1="{{ p.axis_y }}" y2="{{ p.axis_y }}"/>
{% for t in p.ticks %}<line class="axis" x1="{{ t.x }}" x2="{{ t.x }}" y1="{{ p.axis_y }}" y2="{{ p.axis_y + 4 }}"/>
<text x="{{ t.x }}" y="{{ p.axis_y + 16 }}" text-anchor="middle">{{ t.text }}</text>
{% endfor %}
{% for row in p.rows %}
<text x="{{ p.plot_x0 - 8 }}" y="{{ row.y + 4 }}" text-anchor="end">{{ row.label }}</text>
{% if row.x is not none %}<rect class="{{ row.cls }}" x="{{ row.bar_x }}" y="{{ row.y - 8 }}" width="{{ row.bar_w }}" height="16"/>{% endif %}
{% if row.x0 is not none %}<line class="whisker" x1="{{ row.x0 }}" x2="{{ row.x1 }}" y1="{{ row.y }}" y2="{{ row.y }}"/>
<line class="whisker" x1="{{ row.x0 }}" x2="{{ row.x0 }}" y1="{{ row.y - 5 }}" y2="{{ row.y + 5 }}"/>
<line class="whisker" x1="{{ row.x1 }}" x2="{{ row.x1 }}" y1="{{ row.y - 5 }}" y2="{{ row.y + 5 }}"/>{% endif %}
{% if row.x is not none %}<circle class="dot" cx="{{ row.x }}" cy="{{ row.y }}" r="4"/>{% endif %}
{% endfor %}
{% if p.ref_x is not none %}<line class="ref" x1="{{ p.ref_x }}" x2="{{ p.ref_x }}" y1="22" y2="{{ p.axis_y }}"/>{% endif %}
</svg>
<figcaption>Dots are point estimates, whiskers 95% intervals{% if p.ref_x is not none %}, the dashed line marks the ideal value{% endif %}.</figcaption>
<details><summary>Data table for this chart</summary>
<table><caption>{{ p.title }}</caption>
<thead><tr><th scope="col">Group</th><th scope="col">Value</th><th scope="col">95% interval</th></tr></thead>
<tbody>{% for row in p.rows %}<tr><th scope="row">{{ row.label }}</th><td class="num">{{ row.value_text }}</td><td class="num">{{ row.ci_text }}</td></tr>{% endfor %}</tbody>
</table></details>
</figure>
{% endmacro %}
{% macro heatmap(h, id, title, desc) %}
<svg role="img" aria-labelledby="{{ id }}-t {{ id }}-d" viewBox="0 0 {{ h.width }} {{ h.height }}"
     width="{{ h.width }}" height="{{ h.height }}" xmlns="http://www.w3.org/2000/svg" class="heatmap">
<title id="{{ id }}-t">{{ title }}</title>
<desc id="{{ id }}-d">{{ desc }} {% for c in h.cells %}{{ c.token }} = {{ c.value }}; {% endfor %}</desc>
{% for c in h.cells %}<g><title>{{ c.token }}: {{ c.value }}</title>
<rect x="{{ c.x }}" y="{{ c.y }}" width="{{ c.w }}" height="{{ c.h }}" rx="3" fill="{{ c.fill }}" stroke="#0002"/>
<text x="{{ c.x + 5 }}" y="{{ c.y + 16 }}" fill="{{ c.ink }}" style="fill: {{ c.ink }}" class="mono">{{ c.text }}</text></g>
{% endfor %}
</svg>
{% endmacro %}
<header>
<p>openzoo audit report</p>
<h1>{{ r.model_name }}</h1>
<dl class="meta">
<dt>Model digest</dt><dd><code>{{ r.model_digest }}</code></dd>
<dt>Engine</dt><dd>{% for k, v in r.engine|dictsort %}{{ k }}: {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</dd>
<dt>Seed</dt><dd>{{ r.seed }}</dd>
<dt>Suites</dt><dd>{{ r.suites|join(", ") }}</dd>
</dl>
</header>
<main>
<section aria-labelledby="guide-h" class="guide">
<h2 id="guide-h">How to read this report</h2>
<p>The report is organised by <strong>principle</strong> (what we expect of a trustworthy model), then by
<strong>criterion</strong> (one measurable check of that principle), then by <strong>evidence</strong>
(the numbers, plots and examples behind it). Each criterion has a grade from A (best) to E, given by fixed
bands shown next to it. Grades use the point estimate; the 95% interval shows how much the number could move
with different test items, so two models whose intervals overlap are not clearly different.</p>
<p>These tests are small, written by the openzoo authors, in English, and measure what the model finds
<em>likely</em>, not what it will do in every situation. A good grade is evidence, not a guarantee; a bad
grade is a reason to look at the examples before deploying the model.</p>
</section>

<section aria-labelledby="summary-h">
<h2 id="summary-h">Summary</h2>
<table>
<caption>Criteria and grades</caption>
<thead><tr><th scope="col">Criterion</th><th scope="col">Value</th><th scope="col">95% interval</th><th scope="col">Grade</th></tr></thead>
<tbody>
{% for c in criteria %}<tr><th scope="row">{{ c.key }}. {{ c.title }}</th><td class="num">{{ c.value }}</td><td class="num">{{ c.ci }}</td>
<td><span class="grade grade-{{ c.grade if c.grade != 'n/a' else 'na' }}">{{ c.grade }}</span></td></tr>
{% else %}<tr><td colspan="4">No graded criteria in this run.</td></tr>{% endfor %}
</tbody></table>
</section>

{% for p in principles %}
<section aria-labelledby="p-{{ p.key }}">
<h2 id="p-{{ p.key }}">Principle: {{ p.title }}</h2>
<p class="principle">{{ p.statement }}</p>
{% if p.suite and p.suite not in r.suites %}<p>The {{ p.suite }} suite was not run, so there is no evidence for this principle in this report.</p>{% endif %}
{% for c in p.criteria %}
<article class="criterion" aria-labelledby="c-{{ c.key }}">
<h3 id="c-{{ c.key }}">Criterion {{ c.key }}: {{ c.title }}</h3>
<p><span class="grade grade-{{ c.grade if c.grade != 'n/a' else 'na' }}">{{ c.grade }}</span>
Value <strong>{{ c.value }}</strong> {{ c.unit }}, 95% interval {{ c.ci }} ({{ c.ci_method }}, n = {{ c.n }}).
Metric <code>{{ c.metric }}</code>.</p>
<p>{{ c.guidance }}</p>
<table><caption>Grade bands</caption><tbody><tr>{% for g, b in c.bands %}<th scope="col">{{ g }}</th><td>{{ b }}</td>{% endfor %}</tr></tbody></table>
</article>
{% endfor %}
{% if p.key == "fairness" and "bias" in r.suites %}
<h3>Evidence</h3>
{% for plot in bias_plots %}{{ chart(plot, "bias-" ~ loop.index) }}{% endfor %}
{% if examples.pairs %}
<table><caption>Minimal pairs with the largest preference for the stereotype (log-likelihood gap, nats)</caption>
<thead><tr><th scope="col">Category</th><th scope="col">Stereotype</th><th scope="col">Anti-stereotype</th><th scope="col">Gap</th></tr></thead>
<tbody>{% for e in examples.pairs %}<tr><td>{{ e.category }}</td><td>{{ e.stereotype }}</td><td>{{ e.anti_stereotype }}</td><td class="num">{{ e.gap }}</td></tr>{% endfor %}</tbody></table>
{% endif %}
{% elif p.key == "safety" and "safety" in r.suites %}
<h3>Evidence</h3>
{% for plot in safety_plots %}{{ chart(plot, "safety-" ~ loop.index) }}{% endfor %}
{% for key, caption in [("under", "Harmful requests the model answered"), ("over", "Harmless requests the model refused")] %}
{% if examples[key] %}
<details><summary>{{ caption }} ({{ examples[key]|length }} shown)</summary>
<table><caption>{{ caption }}</caption><thead><tr><th scope="col">Category</th><th scope="col">Prompt</th><th scope="col">Reply (truncated)</th></tr></thead>
<tbody>{% for e in examples[key] %}<tr><td>{{ e.category }}</td><td>{{ e.prompt }}</td><td>{{ e.response[:300] }}</td></tr>{% endfor %}</tbody></table>
</details>
{% endif %}
{% endfor %}
{% elif p.key == "explainability" %}
{% if explain %}
<p>Each prompt is shown twice. First, every token coloured by its <strong>surprisal</strong> (bits; darker means
the model found the token more surprising). Second, every token coloured by its <strong>leave-one-out
attribution</strong> to the predicted next token: red tokens make that prediction more likely, blue ones less.
Hover a token for its value.</p>
{% for e in explain %}
<figure>
<figcaption>Prompt {{ loop.index }}: <q>{{ e.prompt }}</q>{% if e.next %}; predicted next token <code>{{ e.next.token }}</code> (probability {{ fmt(e.next.prob) }}){% endif %}</figcaption>
{{ heatmap(e.surprisal, "sur-" ~ loop.index, "Surprisal per token, prompt " ~ loop.index, "Surprisal in bits:") }}
{% if e.attribution %}{{ heatmap(e.attribution, "att-" ~ loop.index, "Leave-one-out attribution, prompt " ~ loop.index, "Change in log-probability of the predicted token when the token is removed:") }}{% endif %}
<details><summary>Token table</summary>
<table><caption>Tokens of prompt {{ loop.index }}</caption>
<thead><tr><th scope="col">Token</th><th scope="col">Surprisal (bits)</th><th scope="col">Entropy (bits)</th><th scope="col">Top alternatives</th></tr></thead>
<tbody>{% for t in e.tokens %}<tr><td><code>{{ t.token }}</code></td><td class="num">{{ fmt(t.surprisal_bits) }}</td><td class="num">{{ fmt(t.entropy_bits) }}</td>
<td>{% for a in t.top %}<code>{{ a.token }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}</tbody></table>
</details>
</figure>
{% endfor %}
{% endif %}
{% elif p.key == "reproducibility" %}
<table><caption>Inputs that fix this report</caption><tbody>
<tr><th scope="row">Model digest</th><td><code>{{ r.model_digest }}</code></td></tr>
<tr><th scope="row">Engine</th><td>{% for k, v in r.engine|dictsort %}{{ k }}: {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
<tr><th scope="row">Seed</th><td>{{ r.seed }}</td></tr>
{% for suite, files in data|dictsort %}{% for name, digest in files|dictsort %}
<tr><th scope="row">Data: {{ suite }} / {{ name }}</th><td><code>{{ digest }}</code></td></tr>{% endfor %}{% endfor %}
</tbody></table>
{% endif %}
</section>
{% endfor %}

<section aria-labelledby="all-h">
<h2 id="all-h">All metrics</h2>
{% for suite, rows in metric_tables|dictsort %}
<details><summary>{{ suite }} ({{ rows|length }} metrics, data <code>{{ digests[suite] }}</code>)</summary>
<table><caption>Metrics of the {{ suite }} suite</caption>
<thead><tr><th scope="col">Metric</th><th scope="col">Value</th><th scope="col">95% interval</th><th scope="col">Method</th><th scope="col">n</th></tr></thead>
<tbody>{% for m in rows %}<tr><th scope="row"><code>{{ m.name }}</code></th><td class="num">{{ m.value }}</td><td class="num">{{ m.ci }}</td><td>{{ m.method }}</td><td class="num">{{ m.n }}</td></tr>{% endfor %}</tbody></table>
</details>
{% endfor %}
</section>
</main>
<footer><p>Generated by openzoo. Per-item results are in <code>report.json</code> next to this file.</p></footer>
</body>
</html>
"""
