// Extra embedded PostgreSQL servers for tests that need a differently configured upstream (TLS, md5, password).
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { EmbeddedOptions } from '../../src/demo/embedded';

export interface ChildPostgres {
  url: string;
  stop(): Promise<void>;
}

export function startEmbeddedChild(options: Omit<EmbeddedOptions, 'onLog'> = {}): Promise<ChildPostgres> {
  const child = spawn(process.execPath, [path.join(__dirname, 'embedded-child.js'), JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const { url } = JSON.parse(out.slice(0, nl)) as { url: string };
      resolve({
        url,
        stop: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.once('exit', (code) => reject(new Error(`embedded PostgreSQL child exited with ${code}: ${stderr}`)));
  });
}
