#!/usr/bin/env bash
# Runs one benchmark in two built trees, alternating (A, B, A, B, …), so both see the same machine load.
# Usage: bench/interleave.sh <tree-A> <tree-B> <bench> [rounds]     e.g. bench/interleave.sh /tmp/before . durable 3
# Each tree must be built (`npm run build`). Output: the benches' JSON lines, each with "tree" ("A"/"B"), "round"
# and the 1-minute load average added, then one summary line per metric: median A, median B and B/A.
set -euo pipefail
A=$(cd "$1" && pwd); B=$(cd "$2" && pwd); BENCH=$3; ROUNDS=${4:-3}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for t in A B; do
    dir=$A; [ "$t" = B ] && dir=$B
    load=$(cut -d' ' -f1 /proc/loadavg)
    (cd "$dir" && node "dist/bench/$BENCH.js") 2>/dev/null | grep '^{' \
      | node -e "const rl=require('readline').createInterface({input:process.stdin});rl.on('line',l=>{try{const o=JSON.parse(l);if(o&&o.name!==undefined&&typeof o.value==='number'){o.tree='$t';o.round=$r;o.load1=$load;console.log(JSON.stringify(o));}}catch{}})" \
      | tee -a "$OUT"
  done
done
node -e "
const lines=require('fs').readFileSync('$OUT','utf8').trim().split('\n').filter(Boolean).map(l=>JSON.parse(l));
const med=a=>{const s=[...a].sort((x,y)=>x-y);const m=s.length>>1;return s.length%2?s[m]:(s[m-1]+s[m])/2;};
const names=[...new Set(lines.map(o=>o.name))];
for(const n of names){const a=lines.filter(o=>o.name===n&&o.tree==='A').map(o=>o.value);const b=lines.filter(o=>o.name===n&&o.tree==='B').map(o=>o.value);
if(!a.length||!b.length)continue;const ma=med(a),mb=med(b);
console.log(JSON.stringify({name:n+'.interleaved',unit:lines.find(o=>o.name===n).unit,medianA:ma,medianB:mb,value:ma?+(mb/ma).toFixed(3):null,ratio:'B/A',rounds:a.length}));}
"
