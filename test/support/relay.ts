// A TCP relay between the proxy and PostgreSQL that can cut connections: the only network fault tests fake.
import net from 'node:net';

export interface Relay {
  port: number;
  /** Destroys every relayed connection (as if the server died mid-stream). */
  cut(): void;
  /** While down, new connections are closed at once (the server is unreachable). */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

/** `tap` sees every byte the target sends back to clients (what a client of the relay receives). */
export async function startRelay(targetHost: string, targetPort: number, tap?: (chunk: Buffer) => void): Promise<Relay> {
  const live = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    live.add(client);
    live.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    if (tap) upstream.on('data', tap);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      for (const s of live) s.destroy();
      live.clear();
    },
    setDown: (d) => {
      down = d;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}
