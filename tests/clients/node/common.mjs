// Shared by the Node.js client checks: argument parsing, checks that exit
// non-zero with a message, and waiting on a condition with a deadline.

export function addresses() {
  const [a, b] = process.argv.slice(2).map((address) => {
    const at = address.lastIndexOf(':');
    return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
  });
  if (!a || !b) {
    fail('usage: <script> HOST:PORT HOST:PORT');
  }
  return [a, b];
}

export function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

export function check(what, condition, detail = '') {
  if (!condition) {
    fail(`${what} ${detail}`);
  }
  console.log(`ok: ${what}`);
}

export async function waitFor(what, deadlineMs, probe) {
  const giveUp = Date.now() + deadlineMs;
  for (;;) {
    if (await probe()) {
      return;
    }
    if (Date.now() > giveUp) {
      fail(`timed out after ${deadlineMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// Fails the run if it has not finished in time (a client that retries
// forever must not hang the test).
export function deadline(ms) {
  const timer = setTimeout(() => fail(`the checks did not finish within ${ms} ms`), ms);
  timer.unref();
}
