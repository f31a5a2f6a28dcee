// A TCP relay between the proxy and PostgreSQL that can cut connections: the only network fault tests fake.
import net from 'node:net';

export interface Relay {
  port: number;
  /** Destroys every relayed connection (as if the server died mid-stream). */
  cut(): void;
  /** While down, new connections are closed at once (the server is unreachable). */
  setDown(down: boolean): void;
  /** While stalled, what clients send is held (the server hangs); un-stalling delivers it. */
  stall(stalled: boolean): void;
  /**
   * Drops every relayed connection without telling its client, as a NAT or firewall timeout
   * does: the server's side is closed, and the client learns of it only when it next sends, by a
   * reset. Returns how many connections were dropped.
   */
  forget(): number;
  close(): Promise<void>;
}

/** `tap` sees every byte the target sends back to clients (what a client of the relay receives). */
export async function startRelay(targetHost: string, targetPort: number, tap?: (chunk: Buffer) => void): Promise<Relay> {
  const live = new Set<net.Socket>();
  let down = false;
  let stalled = false;
  const held: Array<[net.Socket, Buffer]> = [];
  /** One per relayed connection: drops it silently (forget()). */
  const forgetters = new Set<() => void>();
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    live.add(client);
    live.add(upstream);
    let forgotten = false;
    const forget = (): void => {
      forgotten = true;
      upstream.unpipe(client);
      upstream.destroy();
      live.delete(upstream);
    };
    forgetters.add(forget);
    const end = () => {
      // A forgotten connection's client stays open, knowing nothing, until it sends.
      if (forgotten && !client.destroyed) return;
      forgetters.delete(forget);
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (forgotten) client.resetAndDestroy();
      else if (stalled) held.push([upstream, chunk]);
      else upstream.write(chunk);
    });
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
    forget: () => {
      const all = [...forgetters];
      forgetters.clear();
      for (const f of all) f();
      return all.length;
    },
    stall: (s) => {
      stalled = s;
      if (!s) for (const [to, chunk] of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A relay in front of the database of `url`, and the same URL through it (for a sink or an upstream the test can cut). */
export async function relayTo(url: string): Promise<{ relay: Relay; url: string }> {
  const target = new URL(url);
  const relay = await startRelay(target.hostname, Number(target.port || 5432));
  target.port = String(relay.port);
  return { relay, url: target.toString() };
}
