// A recording TCP relay between a client and PostgreSQL: every Query and Parse text the client sends,
// decoded with the proxy's own frontend decoder. SSLRequest/GSSENCRequest are answered 'N' here so
// the stream stays readable.
'use strict';
const net = require('node:net');

async function startCaptureRelay(distDir, targetHost, targetPort) {
  const { FrontendDecoder } = require(`${distDir}/protocol/frontend/decoder`);
  const statements = [];
  const seen = new Set();
  const record = (sql) => {
    const text = sql.trim();
    if (text && !seen.has(text)) {
      seen.add(text);
      statements.push(text);
    }
  };
  const live = new Set();
  const server = net.createServer((client) => {
    const decoder = new FrontendDecoder({ maxMessageSize: 1 << 30 });
    let upstream = null;
    let pending = [];
    const end = () => {
      client.destroy();
      upstream?.destroy();
    };
    live.add(client);
    client.on('close', () => live.delete(client));
    client.on('error', end);
    client.on('data', (chunk) => {
      let packets;
      try {
        packets = decoder.push(Buffer.from(chunk));
      } catch {
        packets = [];
      }
      let forward = chunk;
      for (const p of packets) {
        if (p.type === 'SSLRequest' || p.type === 'GSSENCRequest') {
          // 8 bytes; clients send nothing after it until they have the answer.
          client.write('N');
          forward = chunk.subarray(8);
        } else if (p.type === 'Query' || p.type === 'Parse') {
          record(p.sql);
        }
      }
      if (forward.length === 0) return;
      if (!upstream) {
        upstream = net.connect(targetPort, targetHost);
        live.add(upstream);
        upstream.on('close', () => live.delete(upstream));
        upstream.on('error', end).on('close', end);
        upstream.on('connect', () => {
          for (const b of pending) upstream.write(b);
          pending = [];
        });
        upstream.pipe(client);
      }
      if (upstream.connecting) pending.push(forward);
      else upstream.write(forward);
    });
    client.on('end', () => upstream?.end());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    statements,
    close: () =>
      new Promise((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}

module.exports = { startCaptureRelay };
