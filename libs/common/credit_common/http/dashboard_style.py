"""The dashboard's style sheet and its one script, as constants: the page's Content-Security-Policy
allows exactly these two by their hashes, so they must not vary per request (the script reads the
reload interval from `<body data-refresh>`)."""

from __future__ import annotations

STYLE = """
:root{--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--dim:#677085;--line:#e1e4ea;--track:#eef0f4;
--c0:#2f6fdf;--c1:#e8590c;--c2:#7048e8;--c3:#2b8a3e;--c4:#c2255c;--c5:#0b7285;--ok:#2b8a3e;--bad:#c92a2a;
color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#14171d;--card:#1c2027;--fg:#e4e7ee;--dim:#98a0b3;
--line:#2c313b;--track:#272c35;--c0:#5c8ff0;--c1:#f08c4a}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",
"Noto Sans","PingFang SC","Microsoft YaHei",sans-serif}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.5rem;padding:.7rem 1.2rem;
background:var(--card);border-bottom:1px solid var(--line)}
h1{font-size:1.15rem;margin:0}
h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.06em;color:var(--dim);margin:1.4rem 0 .6rem}
h3{font-size:.95rem;margin:0 0 .4rem}h4{font-size:.85rem;margin:.9rem 0 .3rem}
nav{display:flex;flex-wrap:wrap;gap:.25rem}
nav a{padding:.2rem .6rem;border-radius:999px;text-decoration:none;color:var(--fg);border:1px solid var(--line)}
nav a[aria-current]{background:var(--c0);border-color:var(--c0);color:#fff}
nav.tools{margin-left:auto}nav.tools a{border:0;color:var(--dim)}
a{color:var(--c0)}
main{padding:.4rem 1.2rem 2rem;max-width:1600px}
.status{color:var(--dim);margin:.5rem 0}
.stale-note{display:none;color:var(--bad)}body.stale .stale-note{display:inline}body.stale main{opacity:.6}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.7rem}
.tile{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}
.tile .label{color:var(--dim);font-size:.8rem}.big{font-size:1.6rem;font-weight:600;margin:.1rem 0 .2rem}
.big .unit{font-size:.85rem;font-weight:400}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:.8rem;align-items:start;
grid-auto-flow:row dense}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.7rem .9rem;min-width:0}
.card.wide{grid-column:1/-1}
h3 a{color:inherit}
.note,.dim,.unit,.empty{color:var(--dim)}.note{font-size:.8rem;margin:.1rem 0 .5rem}
.num{font-variant-numeric:tabular-nums}
.approx{font-size:.75rem;color:var(--dim);text-decoration:none;border:1px dotted var(--dim);border-radius:3px;
padding:0 .2rem}
svg.spark{width:100%;height:40px;display:block}
svg.spark .line{fill:none;stroke:var(--c0);stroke-width:1.5;vector-effect:non-scaling-stroke}
svg.spark .area{fill:var(--c0);opacity:.13}
.track{fill:var(--track)}.tick{stroke:var(--line)}.band{fill:var(--dim);opacity:.35}
.s0{fill:var(--c0);background:var(--c0)}.s1{fill:var(--c1);background:var(--c1)}.s2{fill:var(--c2);background:var(--c2)}
.s3{fill:var(--c3);background:var(--c3)}.s4{fill:var(--c4);background:var(--c4)}.s5{fill:var(--c5);background:var(--c5)}
.key{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin:0 .25rem 0 .5rem;vertical-align:-1px}
.legend{margin:.1rem 0 .4rem;font-size:.8rem;color:var(--dim)}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:500}
table.bars th{width:35%;padding:.2rem .5rem .2rem 0;word-break:break-word}
table.bars td{padding:.2rem .3rem;vertical-align:middle}
table.rows th,table.rows td{padding:.25rem .45rem;border-bottom:1px solid var(--line);vertical-align:top}
table.rows thead th{color:var(--dim);font-size:.78rem}
table.rows td,table.rows th{white-space:nowrap}
.series{font-size:.8rem}.series .key{margin-left:0}.series .num{margin-right:.7rem}
td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.parts{display:flex;flex-wrap:wrap;gap:.15rem .6rem;font-size:.78rem;color:var(--dim)}
.parts .num{color:var(--fg)}
dl.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:.5rem;margin:0}
dl.kv dt{color:var(--dim);font-size:.8rem}dl.kv dd{margin:0;font-size:1.25rem;font-weight:600}
dl.kv dd .unit{font-size:.8rem;font-weight:400}
ul.health{list-style:none;padding:0;margin:0}ul.health li{padding:.2rem 0}
.badge{display:inline-block;min-width:3.2rem;text-align:center;border-radius:4px;padding:0 .4rem;color:#fff;
font-size:.8rem}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.error{color:var(--bad);font-size:.82rem;word-break:break-word}
"""

SCRIPT = """
(function () {
  var every = Number(document.body.getAttribute("data-refresh"));
  if (!(every > 0)) return;
  setInterval(function () {
    if (document.hidden) return;
    fetch(location.href, {cache: "no-store", headers: {accept: "text/html"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("dash");
        if (next) document.getElementById("dash").replaceWith(next);
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); });
  }, every * 1000);
})();
"""
