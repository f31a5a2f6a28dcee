require('/work/main/dist/analysis/wasm-tiering').keepParserOnBaselineCompiler();
const { ParserInstance } = require('/work/main/dist/analysis/wasm-parser');
const { statements } = require('/work/main/bench/first-seen');
(async () => {
  const p = await ParserInstance.load();
  const sts = (await statements(3000)).map(s => s.proxy);
  for (let i=0;i<500;i++) p.parse(sts[i]);
  let t = process.hrtime.bigint(); for (let i=500;i<3000;i++) p.parse(sts[i]); console.log('hot loop', (Number(process.hrtime.bigint()-t)/1e3/2500).toFixed(1));
  let tot = 0n; for (let i=500;i<1500;i++) { await new Promise(r => setTimeout(r, 1)); const t0 = process.hrtime.bigint(); p.parse(sts[i]); tot += process.hrtime.bigint()-t0; } console.log('with 1ms sleeps', (Number(tot)/1e3/1000).toFixed(1));
  const keep = []; tot = 0n; for (let i=0;i<3000;i++) { const t0 = process.hrtime.bigint(); keep.push(p.parse(sts[i])); tot += process.hrtime.bigint()-t0; } console.log('retained', (Number(tot)/1e3/3000).toFixed(1));
})();
