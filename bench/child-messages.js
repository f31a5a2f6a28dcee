// The messages a forked child sends, read in order: the bench's child processes (the idle
// scenario's proxy, the first-seen scenario's client) answer each request with one message.

/**
 * A reader of `child`'s messages: each call resolves with the next one, or rejects once the child
 * has exited (`what` names it in the error).
 */
function messages(child, what) {
  const queue = [];
  const waiters = [];
  let gone;
  child.on('message', (m) => (waiters.length > 0 ? waiters.shift().resolve(m) : queue.push(m)));
  child.on('exit', (code, signal) => {
    gone = new Error(`${what} exited (${signal ?? code})`);
    for (const w of waiters.splice(0)) w.reject(gone);
  });
  return () => (queue.length > 0 ? Promise.resolve(queue.shift()) : gone ? Promise.reject(gone) : new Promise((resolve, reject) => waiters.push({ resolve, reject })));
}

module.exports = { messages };
